// Internal to ds_cuda_gemm: the problem key of GemmRunner's caches and kAuto's
// choice of kernel for GEMV-sized problems (rules, the DSRT_GEMM_KERNEL
// override, and the process-wide table of choices shared by every runner).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/gemm/gemv.h"

namespace ds::cuda::detail {

// One GEMM problem as far as kernel plans and choices are concerned: shape,
// strides, dtypes, epilogue (bias, residual, in place, SwiGLU), prologue, alignment.
struct ProblemKey {
  int64_t m = 0, n = 0, k = 0, ldx = 0, ldy = 0, ld_src = 0;
  int64_t ld_swiglu = 0;           // SwiGLU epilogue: its row stride (then ldy = 0: y is not written)
  bool swiglu = false;
  DType out = DType::kBF16;
  bool bias = false;
  bool residual = false;
  bool residual_in_place = false;  // residual == y
  uint8_t norm = 0;                // 0: x read; 1: RMSNorm prologue from f32 src; 2: from bf16 src
  uint8_t deferred = 0;            // deferred RMSNorm: 1 norm_out, 2 norm_in, 3 both
  uint32_t align = 16;             // smallest 16/8/4/2-byte alignment of the pointers
  bool operator==(const ProblemKey& o) const;
};
struct ProblemKeyHash {
  size_t operator()(const ProblemKey& key) const;
};

uint32_t pointer_alignment(const void* p);  // 16, 8, 4 or 2 (null: 16)
ProblemKey make_problem_key(const GemmArgs& a);  // a: ldx/ldy resolved

// The kernel kAuto uses for a GEMV-eligible problem. kGemvWarp picks its warps
// per row (splits) by wave fill (gemv_warp_splits), kGemvWarpS1/S2/S4 force 1,
// 2 or 4: kAuto times the forced ones (the wave-fill rule is a static guess;
// on the H200 it gave the 7B down projection 1 warp per row at 2.8 TB/s where
// 4 stream at 3.6 TB/s).
enum class Choice : uint8_t {
  kCublasLt,
  kGemvWarp,
  kGemvWarpDeep,
  kGemvAsync,
  kGemvMma,
  kGemvWarpS1,
  kGemvWarpS2,
  kGemvWarpS4,
  // The m = 1 deep kernel (twice the loads in flight, fewer resident warps) at
  // 2 / 4 warps per row: only when forced (DSRT_GEMM_KERNEL), not timed by kAuto.
  kGemvWarpDeepS2,
  kGemvWarpDeepS4,
  // The bulk-streaming GEMV (gemv_bulk.cu: m = 1, sm_90+) with 8 / 16 warps per
  // block and 8 KiB ring slots (16 per SM); W16S6: 16 warps, 6 KiB slots (long
  // rows in more, shorter segments: the 32B down projection).
  kGemvBulkW8,
  kGemvBulkW16,
  kGemvBulkW16S6
};
// Whether `c` is one of the bulk GEMV's layouts, and that layout.
bool is_bulk_choice(Choice c);
GemvBulkConfig bulk_config(Choice c);
// Whether kAuto times the bulk GEMV (sm_90+ device; DSRT_GEMV_BULK=0 turns it off
// for A/B runs; a forced DSRT_GEMM_KERNEL still runs it).
bool gemv_bulk_candidates_on();
// Warps per row of a kGemvWarp* choice (0: the wave-fill rule; -1: not a warp-row choice).
int choice_warp_splits(Choice c);
const char* choice_name(Choice c);
// Whether kernel `c` can compute a GEMV-eligible problem of m rows, with the
// RMSNorm prologue / SwiGLU epilogue or not: m limits of the warp kernels, the
// prologue and the SwiGLU epilogue only on them.
// The deferred RMSNorm (GemmArgs::norm_out / norm_in) runs on the warp-row
// kernels (not gemv-async) at m <= kDeferredNormMaxM.
bool choice_can_run(Choice c, int64_t m, bool norm, bool swiglu = false, bool deferred = false);
// choice_can_run for the problem `a` (its prologue and epilogue).
bool choice_can_run(Choice c, const GemmArgs& a);

// DSRT_GEMM_KERNEL (A/B runs), read once: either one choice name for every
// GEMV-sized problem ("gemv-warp-s4"), or comma-separated "NxK=name" entries
// for the problems whose weight is N x K ("3584x3584=gemv-async,4608x3584=cublaslt"),
// or both ("gemv-warp,3584x3584=gemv-mma": the entry wins for its shape).
struct ForcedKernels {
  bool all_set = false;
  Choice all = Choice::kCublasLt;
  struct Entry {
    int64_t n = 0, k = 0;
    Choice choice = Choice::kCublasLt;
  };
  std::vector<Entry> by_shape;
  std::string error;  // non-empty: the text was not understood (then nothing is forced)
};
ForcedKernels parse_forced_kernels(const char* text);
// The plain-name form of DSRT_GEMM_KERNEL: true and *out set when it names a kernel for every problem.
bool env_forced_kernel(Choice* out);
// The forced kernel for `a` (its shape's entry, else the plain name) when it can run `a`.
bool forced_choice(const GemmArgs& a, Choice* out);
// Long-k problems at m <= 2 under PDL take the warp GEMV: its forced splits are
// the only candidates timed (empty when the rule does not apply).
std::vector<Choice> layer_rule_candidates(const GemmArgs& a);
// Used without a measurement (first use inside a graph capture).
Choice static_choice(const GemmArgs& a);
// The kernels kAuto times for `a`.
std::vector<Choice> choice_candidates(const GemmArgs& a);

// The process-wide table of kAuto's choices, keyed by (device, problem): every
// GemmRunner of the process reads and records here, so two runners (a CUDA
// graph and an eager executor, a re-created executor) run the same kernel for
// the same problem and their results are bit-identical. The first choice
// recorded for a key wins; later records return it.
bool lookup_shared_choice(int device, const ProblemKey& key, Choice* out);
Choice record_shared_choice(int device, const ProblemKey& key, Choice c);

}  // namespace ds::cuda::detail
