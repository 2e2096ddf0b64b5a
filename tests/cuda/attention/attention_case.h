// One paged-attention test case: random bf16 Q / paged K,V with a shuffled
// (non-contiguous) page table, run on the GPU through ds::cuda::paged_attention
// and on the CPU through ds::ref::paged_attention (f32 copies of the same bf16
// values); reports the max abs error over every output element.
#pragma once

#include <cstdint>
#include <cuda_runtime_api.h>
#include <string>
#include <vector>

#include "runtime/common/status.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda::testing {

struct SeqSpec {
  int q_len = 1;   // query rows this step (0: padding)
  int kv_len = 1;  // history length including this step's rows
};

struct AttnCase {
  std::string name;
  int num_heads = 8;
  int num_kv_heads = 2;
  int head_dim = 128;
  int page_size = 16;
  std::vector<SeqSpec> seqs;
  int max_kv_len_bound = 0;  // 0: the actual max kv_len
  int q_ld_pad = 0;          // extra elements per q row (tests q_ld)
  unsigned seed = 1;
};

// Host-side data of a case (bf16 bit patterns + f32 copies).
struct AttnData {
  int num_tokens = 0, max_q_len = 0, max_kv_len = 0, num_pages = 0;
  int64_t q_ld = 0, pt_stride = 0;
  std::vector<int32_t> q_start, kv_len, page_table;
  std::vector<uint16_t> q, k, v;  // bf16
  std::vector<float> ref_out;     // [num_tokens, num_heads * head_dim]
};

// Builds the random data and the CPU reference output.
Result<AttnData> make_case_data(const AttnCase& c);

// The CPU reference attention of case `c` over d's page table and lengths, for
// dense f32 q rows [num_tokens, num_heads * head_dim] and bf16 pools k, v.
Result<std::vector<float>> reference_attention(const AttnCase& c, const AttnData& d, const std::vector<float>& q,
                                               const std::vector<uint16_t>& k, const std::vector<uint16_t>& v);

struct AttnResult {
  double max_abs_err = 0.0;
  double max_abs_ref = 0.0;
  int bad_rows = 0;        // rows with NaN/Inf or an element over tolerance
  int first_bad_row = -1;  // its query row, head and element error
  int first_bad_head = -1;
  double first_bad_err = 0.0;
  bool sentinel_ok = true; // the spare output row past num_tokens is untouched
};

// Runs the GPU kernel on `d` (on `stream`) and compares with d.ref_out; with its own
// zeroed workspace, or `shared_ws` (sized and zeroed by the caller, reused across cases).
Result<AttnResult> run_case_gpu(const AttnCase& c, const AttnData& d, cudaStream_t stream,
                                DeviceBuffer* shared_ws = nullptr);

// Tolerance on |gpu - ref| for bf16 outputs of values in [-1, 1].
constexpr double kAbsTol = 2e-2;

}  // namespace ds::cuda::testing
