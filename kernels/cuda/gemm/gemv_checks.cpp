// Host-side checks of the GEMV kernels' arguments (gemv.h): the reason a
// problem cannot run on the GEMV kernels, with the RMSNorm prologue or with the
// SwiGLU epilogue (empty when it can).
#include <cstdint>
#include <string>

#include "kernels/cuda/gemm/gemv.h"

namespace ds::cuda::detail {
namespace {

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

std::string gemv_unsupported_reason(const GemmArgs& a) {
  if (std::string r = deferred_norm_unsupported_reason(a); !r.empty()) return r;
  // The RMSNorm prologue with the SwiGLU epilogue: the bulk GEMV's alone (m = 1; sm_90+, checked at launch).
  if (a.swiglu_out != nullptr && a.norm.src != nullptr) return gemv_bulk_unsupported_reason(a);
  if (a.swiglu_out != nullptr) return swiglu_unsupported_reason(a);
  if (a.norm.src != nullptr) return norm_prologue_unsupported_reason(a);
  if (a.m < 1 || a.m > kGemvMaxM) return StrCat() << "m = " << a.m << " is outside [1, " << kGemvMaxM << "]";
  if (a.k % 8 != 0) return StrCat() << "k = " << a.k << " is not a multiple of 8";
  if (a.ldx % 8 != 0) return StrCat() << "ldx = " << a.ldx << " is not a multiple of 8";
  if (!aligned16(a.x) || !aligned16(a.w)) return "x or w is not 16-byte aligned";
  return {};
}

std::string deferred_norm_unsupported_reason(const GemmArgs& a) {
  const bool out = a.norm_out.slot != nullptr || a.norm_out.x != nullptr;
  const bool in = a.norm_in.slot != nullptr;
  if (!out && !in) return {};
  if (a.m < 1 || a.m > kDeferredNormMaxM)
    return StrCat() << "m = " << a.m << " is outside [1, " << kDeferredNormMaxM << "] (the deferred RMSNorm)";
  if (in && a.norm.src != nullptr) return "the deferred RMSNorm scale with the RMSNorm prologue is not implemented";
  if (in && !(a.norm_in.eps >= 0.0f)) return StrCat() << "norm_in.eps = " << a.norm_in.eps << " is not >= 0";
  if (out) {
    if (a.swiglu_out != nullptr) return "the deferred RMSNorm output with the SwiGLU epilogue is not implemented";
    if (a.out_dtype != DType::kBF16 && a.out_dtype != DType::kF32)
      return StrCat() << "out_dtype " << dtype_name(a.out_dtype) << " is not bf16 or f32";
    const int64_t ld = a.norm_out.ld_x == 0 ? a.n : a.norm_out.ld_x;
    if (ld < a.n) return StrCat() << "norm_out.ld_x = " << ld << " is smaller than n = " << a.n;
    if ((reinterpret_cast<uintptr_t>(a.norm_out.x) & 1u) != 0 || (reinterpret_cast<uintptr_t>(a.norm_out.gamma) & 1u) != 0)
      return "norm_out.x or norm_out.gamma is not 2-byte aligned";
    if ((reinterpret_cast<uintptr_t>(a.norm_out.slot) & 15u) != 0) return "norm_out.slot is not 16-byte aligned";
  }
  if ((reinterpret_cast<uintptr_t>(a.norm_in.slot) & 15u) != 0) return "norm_in.slot is not 16-byte aligned";
  return {};
}

std::string norm_prologue_unsupported_reason(const GemmArgs& a) {
  if (a.m < 1 || a.m > kNormPrologueMaxM)
    return StrCat() << "m = " << a.m << " is outside [1, " << kNormPrologueMaxM << "] (kNormPrologueMaxM)";
  if (a.k % 8 != 0) return StrCat() << "k = " << a.k << " is not a multiple of 8";
  if (!aligned16(a.w)) return "w is not 16-byte aligned";
  const NormPrologue& nm = a.norm;
  if (nm.src_dtype != DType::kF32 && nm.src_dtype != DType::kBF16)
    return StrCat() << "norm.src dtype " << dtype_name(nm.src_dtype) << " is not f32 or bf16";
  const int64_t ld = nm.ld_src == 0 ? a.k : nm.ld_src;
  if (ld < a.k) return StrCat() << "norm.ld_src = " << ld << " is smaller than k = " << a.k;
  const int64_t per16 = nm.src_dtype == DType::kF32 ? 4 : 8;
  if (ld % per16 != 0)
    return StrCat() << "norm.ld_src = " << ld << " is not a multiple of 16 bytes (" << per16 << " "
                    << dtype_name(nm.src_dtype) << " elements)";
  if (!aligned16(nm.src) || !aligned16(nm.gamma)) return "norm.src or norm.gamma is not 16-byte aligned";
  if (!(nm.eps >= 0.0f)) return StrCat() << "norm.eps = " << nm.eps << " is not >= 0";
  if (nm.src != nullptr && a.y != nullptr) {
    // Other blocks still read src while y is written: they must not overlap.
    const uintptr_t s0 = reinterpret_cast<uintptr_t>(nm.src), y0 = reinterpret_cast<uintptr_t>(a.y);
    const uintptr_t s1 = s0 + static_cast<uintptr_t>(a.m * ld) * (nm.src_dtype == DType::kF32 ? 4 : 2);
    const int64_t ldy = a.ldy == 0 ? a.n : a.ldy;
    const uintptr_t y1 = y0 + static_cast<uintptr_t>(a.m * ldy) * (a.out_dtype == DType::kF32 ? 4 : 2);
    if (s0 < y1 && y0 < s1) return "norm.src overlaps y";
  }
  return {};
}

std::string swiglu_unsupported_reason(const GemmArgs& a) {
  if (a.norm.src != nullptr) return "the SwiGLU epilogue with the RMSNorm prologue is not implemented";
  if (a.residual != nullptr) return "the SwiGLU epilogue takes no residual";
  if (a.m < 1 || a.m > kGemvWarpMaxM)
    return StrCat() << "m = " << a.m << " is outside [1, " << kGemvWarpMaxM << "] (the warp GEMV kernels)";
  if (a.n % 2 != 0) return StrCat() << "n = " << a.n << " is odd (gate and up rows: n = 2I)";
  if (a.k % 8 != 0) return StrCat() << "k = " << a.k << " is not a multiple of 8";
  if (a.ldx % 8 != 0) return StrCat() << "ldx = " << a.ldx << " is not a multiple of 8";
  if (!aligned16(a.x) || !aligned16(a.w)) return "x or w is not 16-byte aligned";
  if (a.out_dtype != DType::kBF16)
    return StrCat() << "out_dtype " << dtype_name(a.out_dtype) << " is not bf16 (swiglu_out is bf16)";
  const int64_t half = a.n / 2;
  const int64_t ld = a.ld_swiglu == 0 ? half : a.ld_swiglu;
  if (ld < half) return StrCat() << "ld_swiglu = " << ld << " is smaller than n / 2 = " << half;
  if (a.swiglu_out != nullptr && a.x != nullptr && a.m > 0) {
    // Other blocks still read x while swiglu_out is written: they must not overlap.
    const uintptr_t o0 = reinterpret_cast<uintptr_t>(a.swiglu_out), x0 = reinterpret_cast<uintptr_t>(a.x);
    const uintptr_t o1 = o0 + static_cast<uintptr_t>((a.m - 1) * ld + half) * 2;
    const int64_t ldx = a.ldx == 0 ? a.k : a.ldx;
    const uintptr_t x1 = x0 + static_cast<uintptr_t>((a.m - 1) * ldx + a.k) * 2;
    if (o0 < x1 && x0 < o1) return "swiglu_out overlaps x";
  }
  return {};
}

}  // namespace ds::cuda::detail
