// Stand-ins for the generated fused kernels of one decoder layer at decode
// (ds_decode_layer_bench): same memory traffic and launch shape (one block per
// row, up to 1024 threads, 16-byte accesses), PDL-aware (runtime/cuda/pdl.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "runtime/common/status.h"

namespace ds::cuda::bench {

// An L2 prefetch a stand-in issues after its PDL wait (cp.async.bulk.prefetch.L2,
// sm_90+; fire and forget): the first `bytes` of the next linear's weights, so
// that their DRAM reads overlap this latency-bound kernel. bytes = 0: none.
struct L2Prefetch {
  const void* ptr = nullptr;
  size_t bytes = 0;
};

// resid[r] += delta[r]; out[r] = rms_norm(resid[r]) * w   (bf16 rows of `hidden`).
Status launch_add_rmsnorm(void* resid, const void* delta, const void* w, void* out, int64_t rows, int64_t hidden,
                          cudaStream_t stream, L2Prefetch pf = {});

// Neox rope on the q and k heads of qkv rows [rows, (heads + 2 kv_heads) * 128]
// at `position`; q goes to q_out [rows, heads * 128], k and v to the NHD cache
// pools at slot[r].
Status launch_rope_kv(const void* qkv, void* q_out, void* k_pool, void* v_pool, const int32_t* slot, int64_t rows,
                      int heads, int kv_heads, int position, cudaStream_t stream, L2Prefetch pf = {});

// out[r] = silu(gu[r, :inter]) * gu[r, inter:].
Status launch_silu_mul(const void* gu, void* out, int64_t rows, int64_t inter, cudaStream_t stream,
                       L2Prefetch pf = {});

}  // namespace ds::cuda::bench
