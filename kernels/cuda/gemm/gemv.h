// Internal launchers of ds_cuda_gemm (not part of the executor contract): the
// small-M GEMV kernels and the bias epilogue used when cuBLASLt has no fused
// bias for the requested output type. Arguments are validated by GemmRunner
// (launch_gemv re-checks what would make a kernel read out of bounds).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "kernels/cuda/gemm/gemm.h"
#include "runtime/common/status.h"

namespace ds::cuda::detail {

// Empty when the GEMV kernel can compute `a` (1 <= m <= kGemvMaxM, k % 8 == 0,
// ldx % 8 == 0, x and w 16-byte aligned; with a.norm.src set: the conditions of
// norm_prologue_unsupported_reason instead of those on x; with a.swiglu_out
// set: those of swiglu_unsupported_reason); otherwise the reason.
std::string gemv_unsupported_reason(const GemmArgs& a);

// Empty when the warp GEMV kernels can compute the SwiGLU epilogue
// (GemmArgs::swiglu_out; `a` with ldx resolved): 1 <= m <= kGemvWarpMaxM, n even,
// k % 8 == 0, ldx % 8 == 0, x and w 16-byte aligned, out_dtype bf16,
// ld_swiglu (0: n / 2) >= n / 2, no residual, no norm prologue (not
// implemented together), swiglu_out not overlapping x. A null swiglu_out passes.
std::string swiglu_unsupported_reason(const GemmArgs& a);

// Empty when the warp GEMV kernels (kWarpRows, kWarpRowsDeep) can compute the
// deferred RMSNorm of `a` (GemmArgs::norm_out / norm_in; empty when neither is
// set): m <= kDeferredNormMaxM, x read (no prologue) for norm_in, no SwiGLU
// epilogue with norm_out, out dtype f32/bf16, x' row stride >= n, gamma and x'
// 2-byte aligned. Null slot/x/gamma pass (checked at launch).
std::string deferred_norm_unsupported_reason(const GemmArgs& a);

// Empty when the warp GEMV kernels (kWarpRows, kWarpRowsDeep, kWarpAsync) can
// compute a.norm's RMSNorm prologue: 1 <= m <= kNormPrologueMaxM, k % 8 == 0,
// w 16-byte aligned, src f32/bf16 with 16-byte aligned rows (ld_src resolved,
// 0 = k), gamma 16-byte aligned, src not overlapping y. Null src/gamma pass
// (checked at launch).
std::string norm_prologue_unsupported_reason(const GemmArgs& a);

// Device scratch of the split-k GEMV: per (row tile, split) partial sums and a
// per-tile arrival counter. Counters must start at zero; the kernel leaves them
// at zero, so one scratch serves any sequence of stream-ordered launches (and
// graph replays), but not two launches running concurrently.
struct GemvScratch {
  float* partials = nullptr;     // kGemvMaxSplitBlocks * 128 floats
  unsigned* counters = nullptr;  // kGemvMaxSplitTiles, zeroed
  int num_sms = 0;               // of the device the kernel runs on
};
constexpr int64_t kGemvMaxSplitTiles = 2048;
constexpr int64_t kGemvMaxSplitBlocks = 4096;
size_t gemv_scratch_bytes();  // partials then counters, one allocation

// Number of k splits the GEMV kernel uses for `a` (1 = none).
int gemv_k_splits(const GemmArgs& a, int num_sms);

// The two GEMV kernels: warp per row (gemv_warp.cu, m <= kGemvWarpMaxM) and
// 16-row tensor-core tiles with optional split k (gemv.cu, any m <= kGemvMaxM).
// kWarpRowsDeep: the warp kernel with 16 loads in flight per lane (m = 1 only;
// fewer resident warps, twice the bytes in flight each).
// kWarpAsync: warp per row, w landing in shared memory via cp.async (m <= 4).
// kBulk: gemv_bulk.cu (m = 1, sm_90+; k_splits = its warps, 8 or 16, 0: 8; the
// default GemvBulkConfig otherwise).
enum class GemvKernel { kAuto, kWarpRows, kWarpRowsDeep, kWarpAsync, kMmaTiles, kBulk };
constexpr int64_t kGemvWarpMaxM = 4;
// kAuto's choice for m.
GemvKernel gemv_auto_kernel(int64_t m);

// y = x · wᵀ (+ bias) (+ residual) with a GEMV kernel; `a` is complete
// (ldx/ldy resolved) and gemv_unsupported_reason(a) is empty. k_splits = 0:
// automatic (kMmaTiles: gemv_k_splits, clamped to the scratch; kWarpRows:
// gemv_warp_splits, 1/2/4). With a.norm.src set (the RMSNorm prologue) only the
// warp kernels run it (kAuto: kWarpRows); kMmaTiles returns an error. The same
// holds for the SwiGLU epilogue (a.swiglu_out): k_splits 0, 1, 2 or 4 for the
// warp kernels (one warp streams a gate/up pair, gemv_swiglu.cu), 0, 1 or 2 for
// gemv-async (a block holds a pair).
Status launch_gemv(const GemmArgs& a, const GemvScratch& scratch, cudaStream_t stream, int k_splits = 0,
                   GemvKernel kernel = GemvKernel::kAuto);

// Source of x for the warp kernels: x itself, or the RMSNorm prologue of an
// f32 or bf16 src row (NormPrologue).
enum class GemvXSource : int { kX = 0, kNormF32 = 1, kNormBF16 = 2 };

struct GemvWarpParams {
  const void* x = nullptr;         // bf16 [m, ldx] (unused with a norm source)
  const void* w = nullptr;         // bf16 [n, k]
  const void* bias = nullptr;      // bf16 [n] or null
  void* y = nullptr;               // [m, ldy] bf16 or f32
  const void* residual = nullptr;  // [m, ldy] of y's dtype or null; may equal y
  int64_t m = 0, n = 0, k = 0, ldx = 0, ldy = 0;
  bool out_f32 = false;
  int splits = 1;                  // warps per row: 1, 2 or 4 (gemv_warp_splits)
  bool deep = false;               // m = 1: the kWarpRowsDeep variant
  GemvXSource source = GemvXSource::kX;
  const void* src = nullptr;       // norm source: [m, ld_src] f32 or bf16
  int64_t ld_src = 0;
  const void* gamma = nullptr;     // bf16 [k]
  float eps = 0.0f;
  // SwiGLU epilogue (source kX only): rows j and n / 2 + j of w,
  // swiglu_out[i, j] = bf16(silu(g) * u) with row stride ld_swiglu; y unused.
  // Warp kernels: each warp streams both rows of a pair (splits 1, 2 or 4);
  // gemv-async: a block holds the pair in different warps (splits 1 or 2).
  void* swiglu_out = nullptr;
  int64_t ld_swiglu = 0;
  bool prefetch_weights = false;  // GemmArgs::prefetch_weights
  // Deferred RMSNorm (GemmArgs::norm_out / norm_in; m = 1, source kX).
  DeferredNormSlot* nout_slot = nullptr;
  void* nout_x = nullptr;  // bf16 [m, ld_nout]
  int64_t ld_nout = 0;
  const void* nout_gamma = nullptr;
  DeferredNormSlot* nin_slot = nullptr;
  float nin_eps = 0.0f;
  bool early_tail = true;  // gemv_early_tail()
};
// DSRT_GEMV_EARLY_TAIL=0 turns off the GEMV epilogues' early residual / bias
// loads (GemvRowTail in gemv_common.cuh, and the mma kernel's): an A/B switch.
bool gemv_early_tail();
// The operands every GEMV kernel's parameters carry, from `a`: x, w, bias, y,
// residual, the shape and strides, the output dtype, the weight prefetch and
// the early epilogue loads (the warp kernels' GemvWarpParams and the
// tensor-core kernel's GemvParams; pointers cast to the struct's types).
template <typename Params>
void fill_gemv_operands(const GemmArgs& a, Params& p) {
  p.x = static_cast<decltype(p.x)>(a.x);
  p.w = static_cast<decltype(p.w)>(a.w);
  p.bias = static_cast<decltype(p.bias)>(a.bias);
  p.y = a.y;
  p.residual = a.residual;
  p.m = a.m, p.n = a.n, p.k = a.k, p.ldx = a.ldx, p.ldy = a.ldy;
  p.out_f32 = a.out_dtype == DType::kF32;
  p.prefetch_weights = a.prefetch_weights;
  p.early_tail = gemv_early_tail();
}
// The warp kernels' parameters for `a` (ldx/ldy resolved), source from a.norm.
GemvWarpParams gemv_warp_params(const GemmArgs& a, int splits, bool deep);
// swiglu: the SwiGLU epilogue's kernels (units: gate/up pairs).
int gemv_warp_splits(int64_t m, int64_t n, int64_t k, int num_sms, bool deep = false,
                     GemvXSource source = GemvXSource::kX, bool swiglu = false);
// With p.swiglu_out set, launches launch_gemv_swiglu.
Status launch_gemv_warp(const GemvWarpParams& p, cudaStream_t stream);
// The SwiGLU epilogue's warp kernel (gemv_swiglu.cu): splits 1, 2 or 4 warps per
// gate/up pair, p.deep at m = 1 for twice the loads in flight.
Status launch_gemv_swiglu(const GemvWarpParams& p, cudaStream_t stream);
// Resident warps per SM of that kernel for m (deep: the m = 1 deep variant).
int gemv_swiglu_resident_warps(int64_t m, bool deep);
int gemv_async_splits(int64_t m, int64_t n, int64_t k, int num_sms, GemvXSource source = GemvXSource::kX,
                      bool swiglu = false);
Status launch_gemv_async(const GemvWarpParams& p, cudaStream_t stream);

// The bulk-streaming GEMV (gemv_bulk.cu, sm_90+): m = 1, x read (no prologue,
// no SwiGLU, no deferred norm), bias and residual (f32 or bf16 out) as the warp
// kernels, and the RMSNorm prologue (also with the SwiGLU epilogue: the only
// kernel with that pair); one resident block per SM streams a contiguous row
// range through a ring of 16 shared-memory slots filled by bulk copies.
constexpr int64_t kGemvBulkMaxK = 40960;  // x is staged in shared memory
// Its layouts (kAuto's choices in gemm_choice.h):
struct GemvBulkConfig {
  int warps = 8;     // per block: 8 (2 ring slots each) or 16 (1 slot each)
  int slot_kib = 8;  // ring slot size, 2..8 KiB (16 slots per SM)
};
// Empty when it can compute `a`; otherwise the reason (the device is checked at launch).
std::string gemv_bulk_unsupported_reason(const GemmArgs& a);
// num_sms: the device's SM count (GemvScratch::num_sms).
Status launch_gemv_bulk(const GemmArgs& a, const GemvBulkConfig& config, int num_sms, cudaStream_t stream);

// y[r, c] += bias[c] for r < m, c < n; y f32 with row stride ldy, bias bf16.
Status launch_add_bias_f32(float* y, const void* bias, int64_t m, int64_t n, int64_t ldy, cudaStream_t stream);

}  // namespace ds::cuda::detail
