#include "tools/bench/gpu/attention_timing.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cuda/attention/paged_attention.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda {

Result<AttnTiming> time_paged_attention(const AttnShape& s, const std::vector<int>& q_lens,
                                        const std::vector<int>& kv_lens, int reps, const Stream& stream) {
  constexpr int kPage = 16;
  const int n = static_cast<int>(q_lens.size());
  std::vector<int32_t> q_start(n + 1, 0), kv(kv_lens.begin(), kv_lens.end());
  int max_q = 1, max_kv = 1;
  int64_t pages = 0;
  double ctx_sum = 0.0;
  size_t kv_bytes = 0;
  for (int i = 0; i < n; ++i) {
    q_start[i + 1] = q_start[i] + q_lens[i];
    max_q = std::max(max_q, q_lens[i]);
    max_kv = std::max(max_kv, kv_lens[i]);
    pages += (kv_lens[i] + kPage - 1) / kPage;
    for (int t = 0; t < q_lens[i]; ++t) ctx_sum += kv_lens[i] - q_lens[i] + t + 1;
    kv_bytes += static_cast<size_t>(kv_lens[i]) * s.kv_heads * s.dim * 2 * 2;
  }
  const int tokens = q_start[n];
  const int64_t stride = (max_kv + kPage - 1) / kPage;
  std::vector<int32_t> perm(pages), table(static_cast<size_t>(n) * stride, 0);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(5));
  for (int i = 0, next = 0; i < n; ++i)
    for (int p = 0; p < (kv_lens[i] + kPage - 1) / kPage; ++p) table[i * stride + p] = perm[next++];

  const size_t pool_bytes = static_cast<size_t>(pages) * kPage * s.kv_heads * s.dim * 2;
  const int layers = static_cast<int>(std::clamp<size_t>((200u << 20) / (2 * pool_bytes + 1) + 1, 1, 64));
  std::vector<DeviceBuffer> k_pools, v_pools;
  for (int l = 0; l < layers; ++l) {
    DS_ASSIGN_OR_RETURN(DeviceBuffer k, DeviceBuffer::allocate(pool_bytes));
    DS_ASSIGN_OR_RETURN(DeviceBuffer v, DeviceBuffer::allocate(pool_bytes));
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(k.data(), 0x3c, pool_bytes));  // bf16 ~0.0115: finite scores
    DS_CUDA_RETURN_IF_ERROR(cudaMemset(v.data(), 0x3c, pool_bytes));
    k_pools.push_back(std::move(k));
    v_pools.push_back(std::move(v));
  }
  const size_t row = static_cast<size_t>(s.heads) * s.dim;
  DS_ASSIGN_OR_RETURN(DeviceBuffer q, DeviceBuffer::allocate(tokens * row * 2));
  DS_ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::allocate(tokens * row * 2));
  DS_CUDA_RETURN_IF_ERROR(cudaMemset(q.data(), 0x3c, tokens * row * 2));
  DS_ASSIGN_OR_RETURN(DeviceBuffer dqs, DeviceBuffer::allocate(q_start.size() * 4));
  DS_ASSIGN_OR_RETURN(DeviceBuffer dkv, DeviceBuffer::allocate(kv.size() * 4));
  DS_ASSIGN_OR_RETURN(DeviceBuffer dpt, DeviceBuffer::allocate(table.size() * 4));
  DS_RETURN_IF_ERROR(dqs.copy_from_host(q_start.data(), q_start.size() * 4));
  DS_RETURN_IF_ERROR(dkv.copy_from_host(kv.data(), kv.size() * 4));
  DS_RETURN_IF_ERROR(dpt.copy_from_host(table.data(), table.size() * 4));

  PagedAttentionParams p;
  p.num_heads = s.heads;
  p.num_kv_heads = s.kv_heads;
  p.head_dim = p.v_head_dim = s.dim;
  p.scale = 1.0f / std::sqrt(static_cast<float>(s.dim));
  PagedAttentionBatch b;
  b.num_seqs = n;
  b.q_start = static_cast<const int32_t*>(dqs.data());
  b.kv_len = static_cast<const int32_t*>(dkv.data());
  b.page_table = static_cast<const int32_t*>(dpt.data());
  b.page_table_stride = stride;
  b.num_tokens = tokens;
  b.max_q_len = max_q;
  b.max_kv_len = max_kv;
  const size_t ws_bytes = paged_attention_workspace_bytes(p, n, tokens, max_kv);
  DS_ASSIGN_OR_RETURN(DeviceBuffer ws, DeviceBuffer::allocate(std::max<size_t>(ws_bytes, 16)));
  DS_RETURN_IF_ERROR(ws.zero());
  auto launch = [&](int i) {
    return paged_attention(q.data(), 0, k_pools[i % layers].data(), v_pools[i % layers].data(), out.data(), p, b,
                           ws.data(), ws_bytes, stream.get());
  };
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());  // pageable uploads done
  for (int i = 0; i < 3; ++i) DS_RETURN_IF_ERROR(launch(i));
  // Time a captured graph of `reps` launches: no host launch gaps in the numbers
  // (as in a decode step, which runs from a graph).
  DS_ASSIGN_OR_RETURN(GraphExec g, capture_graph(stream.get(), [&] {
                        Status captured;
                        for (int i = 0; i < reps && captured.ok(); ++i) captured = launch(i);
                        return captured;
                      }));
  DS_RETURN_IF_ERROR(g.launch(stream));  // warm-up
  DS_ASSIGN_OR_RETURN(Event start, Event::create());
  DS_ASSIGN_OR_RETURN(Event stop, Event::create());
  DS_RETURN_IF_ERROR(start.record(stream));
  DS_RETURN_IF_ERROR(g.launch(stream));
  DS_RETURN_IF_ERROR(stop.record(stream));
  DS_RETURN_IF_ERROR(stop.synchronize());
  DS_ASSIGN_OR_RETURN(float ms, stop.elapsed_ms_since(start));
  AttnTiming pt;
  pt.us = 1000.0 * ms / reps;
  pt.kv_bytes = kv_bytes;
  pt.flops = 4.0 * s.dim * s.heads * ctx_sum;
  return pt;
}

}  // namespace ds::cuda
