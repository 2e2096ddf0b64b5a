// Host side of the warp GEMV kernels (gemv.h): their parameters from a
// GemmArgs, and the DSRT_GEMV_EARLY_TAIL switch of the epilogues' early loads.
#include <cstdlib>
#include <string>

#include "kernels/cuda/gemm/gemv.h"

namespace ds::cuda::detail {

GemvWarpParams gemv_warp_params(const GemmArgs& a, int splits, bool deep) {
  GemvWarpParams p;
  fill_gemv_operands(a, p);
  p.splits = splits;
  p.deep = deep;
  if (a.norm.src != nullptr) {
    p.source = a.norm.src_dtype == DType::kF32 ? GemvXSource::kNormF32 : GemvXSource::kNormBF16;
    p.src = a.norm.src;
    p.ld_src = a.norm.ld_src == 0 ? a.k : a.norm.ld_src;
    p.gamma = a.norm.gamma;
    p.eps = a.norm.eps;
  }
  if (a.swiglu_out != nullptr) {
    p.swiglu_out = a.swiglu_out;
    p.ld_swiglu = a.ld_swiglu == 0 ? a.n / 2 : a.ld_swiglu;
  }
  p.nout_slot = a.norm_out.slot;
  p.nout_x = a.norm_out.x;
  p.ld_nout = a.norm_out.ld_x == 0 ? a.n : a.norm_out.ld_x;
  p.nout_gamma = a.norm_out.gamma;
  p.nin_slot = a.norm_in.slot;
  p.nin_eps = a.norm_in.eps;
  return p;
}

bool gemv_early_tail() {
  static const bool on = [] {
    const char* e = std::getenv("DSRT_GEMV_EARLY_TAIL");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

}  // namespace ds::cuda::detail
