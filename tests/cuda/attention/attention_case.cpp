#include "attention_case.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cuda/attention/paged_attention.h"
#include "kernels/ref/paged_attention.h"
#include "runtime/common/dtype.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda::testing {
namespace {

std::vector<float> to_f32(const std::vector<uint16_t>& h) {
  std::vector<float> f(h.size());
  for (size_t i = 0; i < h.size(); ++i) f[i] = bf16_to_f32(h[i]);
  return f;
}

void fill_bf16(std::vector<uint16_t>& v, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  for (auto& x : v) x = f32_to_bf16(dist(rng));
}

template <typename T>
Result<DeviceBuffer> upload(const std::vector<T>& h) {
  DS_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::allocate(std::max<size_t>(h.size() * sizeof(T), 16)));
  if (!h.empty()) DS_RETURN_IF_ERROR(b.copy_from_host(h.data(), h.size() * sizeof(T)));
  return b;
}

}  // namespace

Result<std::vector<float>> reference_attention(const AttnCase& c, const AttnData& d, const std::vector<float>& q,
                                               const std::vector<uint16_t>& k, const std::vector<uint16_t>& v) {
  const int n = static_cast<int>(c.seqs.size());
  const int64_t row = static_cast<int64_t>(c.num_heads) * c.head_dim;
  std::vector<float> kf = to_f32(k), vf = to_f32(v);
  ref::PagedKvLayer layer;
  layer.k = kf.data();
  layer.v = vf.data();
  layer.dtype = DType::kF32;
  layer.num_pages = d.num_pages;
  layer.page_size = c.page_size;
  layer.num_kv_heads = c.num_kv_heads;
  layer.k_dim = layer.v_dim = c.head_dim;
  std::vector<ref::AttnSequence> seqs(n);
  for (int s = 0; s < n; ++s) {
    seqs[s].first_token = d.q_start[s];
    seqs[s].num_tokens = c.seqs[s].q_len;
    seqs[s].num_cached = c.seqs[s].kv_len - c.seqs[s].q_len;
    seqs[s].pages = d.page_table.data() + s * d.pt_stride;
    seqs[s].num_pages = d.pt_stride;
  }
  ref::PagedAttentionParams rp;
  rp.num_heads = c.num_heads;
  rp.num_kv_heads = c.num_kv_heads;
  rp.head_dim = rp.v_head_dim = c.head_dim;
  rp.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  std::vector<float> out(static_cast<size_t>(d.num_tokens) * row, 0.0f);
  DS_RETURN_IF_ERROR(ref::paged_attention(q.data(), d.num_tokens, seqs.data(), n, layer, rp, out.data()));
  return out;
}

Result<AttnData> make_case_data(const AttnCase& c) {
  AttnData d;
  const int n = static_cast<int>(c.seqs.size());
  std::mt19937 rng(c.seed);
  d.q_start.assign(n + 1, 0);
  for (int s = 0; s < n; ++s) {
    if (c.seqs[s].q_len > c.seqs[s].kv_len)
      return Status::Error(StrCat() << c.name << ": seq " << s << " q_len > kv_len");
    d.q_start[s + 1] = d.q_start[s] + c.seqs[s].q_len;
    d.kv_len.push_back(c.seqs[s].kv_len);
    d.max_q_len = std::max(d.max_q_len, c.seqs[s].q_len);
    d.max_kv_len = std::max(d.max_kv_len, c.seqs[s].kv_len);
  }
  d.num_tokens = d.q_start[n];
  d.max_q_len = std::max(d.max_q_len, 1);
  d.max_kv_len = std::max({d.max_kv_len, c.max_kv_len_bound, d.max_q_len});
  d.pt_stride = (d.max_kv_len + c.page_size - 1) / c.page_size;

  // Shuffled pool with spare pages: tables are non-contiguous and out of order.
  int needed = 0;
  for (const SeqSpec& s : c.seqs) needed += (s.kv_len + c.page_size - 1) / c.page_size;
  d.num_pages = needed + 3;
  std::vector<int32_t> pool(d.num_pages);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  d.page_table.assign(static_cast<size_t>(n) * d.pt_stride, 0);
  int next = 0;
  for (int s = 0; s < n; ++s)
    for (int p = 0; p < (c.seqs[s].kv_len + c.page_size - 1) / c.page_size; ++p)
      d.page_table[s * d.pt_stride + p] = pool[next++];

  const int64_t row = static_cast<int64_t>(c.num_heads) * c.head_dim;
  d.q_ld = row + c.q_ld_pad;
  d.q.resize(static_cast<size_t>(std::max(d.num_tokens, 1)) * d.q_ld);
  const size_t pool_elems = static_cast<size_t>(d.num_pages) * c.page_size * c.num_kv_heads * c.head_dim;
  d.k.resize(pool_elems);
  d.v.resize(pool_elems);
  fill_bf16(d.q, rng, -2.0f, 2.0f);
  fill_bf16(d.k, rng, -1.0f, 1.0f);
  fill_bf16(d.v, rng, -1.0f, 1.0f);

  // CPU reference on f32 copies (q compacted to the dense row width).
  std::vector<float> qf(static_cast<size_t>(d.num_tokens) * row);
  for (int t = 0; t < d.num_tokens; ++t)
    for (int64_t i = 0; i < row; ++i) qf[t * row + i] = bf16_to_f32(d.q[t * d.q_ld + i]);
  DS_ASSIGN_OR_RETURN(d.ref_out, reference_attention(c, d, qf, d.k, d.v));
  return d;
}

Result<AttnResult> run_case_gpu(const AttnCase& c, const AttnData& d, cudaStream_t stream, DeviceBuffer* shared_ws) {
  const int64_t row = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int n = static_cast<int>(c.seqs.size());
  DS_ASSIGN_OR_RETURN(DeviceBuffer dq, upload(d.q));
  DS_ASSIGN_OR_RETURN(DeviceBuffer dk, upload(d.k));
  DS_ASSIGN_OR_RETURN(DeviceBuffer dv, upload(d.v));
  DS_ASSIGN_OR_RETURN(DeviceBuffer dqs, upload(d.q_start));
  DS_ASSIGN_OR_RETURN(DeviceBuffer dkv, upload(d.kv_len));
  DS_ASSIGN_OR_RETURN(DeviceBuffer dpt, upload(d.page_table));
  // One spare row past num_tokens, poisoned like the rest: must stay untouched.
  std::vector<uint16_t> out(static_cast<size_t>(d.num_tokens + 1) * row, 0x7fc1);
  DS_ASSIGN_OR_RETURN(DeviceBuffer dout, upload(out));

  PagedAttentionParams p;
  p.num_heads = c.num_heads;
  p.num_kv_heads = c.num_kv_heads;
  p.head_dim = p.v_head_dim = c.head_dim;
  p.page_size = c.page_size;
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  PagedAttentionBatch b;
  b.num_seqs = n;
  b.q_start = static_cast<const int32_t*>(dqs.data());
  b.kv_len = static_cast<const int32_t*>(dkv.data());
  b.page_table = static_cast<const int32_t*>(dpt.data());
  b.page_table_stride = d.pt_stride;
  b.num_tokens = d.num_tokens;
  b.max_q_len = d.max_q_len;
  b.max_kv_len = d.max_kv_len;
  DeviceBuffer own_ws;
  if (!shared_ws) {
    const size_t ws_bytes = paged_attention_workspace_bytes(p, n, d.num_tokens, d.max_kv_len);
    DS_ASSIGN_OR_RETURN(own_ws, DeviceBuffer::allocate(std::max<size_t>(ws_bytes, 16)));
    DS_RETURN_IF_ERROR(own_ws.zero());
  }
  DeviceBuffer& ws = shared_ws ? *shared_ws : own_ws;
  // cudaMemcpy from pageable memory may return before its DMA lands; the kernel
  // runs on a non-blocking stream, so wait for the uploads explicitly.
  DS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  DS_RETURN_IF_ERROR(paged_attention(dq.data(), d.q_ld, dk.data(), dv.data(), dout.data(), p, b, ws.data(),
                                     ws.bytes(), stream));
  DS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  DS_RETURN_IF_ERROR(dout.copy_to_host(out.data(), out.size() * sizeof(uint16_t)));

  AttnResult r;
  for (int t = 0; t < d.num_tokens; ++t) {
    bool bad = false;
    for (int64_t i = 0; i < row; ++i) {
      const double g = bf16_to_f32(out[t * row + i]), ref = d.ref_out[t * row + i];
      const double err = std::fabs(g - ref);
      if (!std::isfinite(g) || err > kAbsTol) {
        if (r.first_bad_row < 0) {
          r.first_bad_row = t;
          r.first_bad_head = static_cast<int>(i / c.head_dim);
          r.first_bad_err = std::isfinite(g) ? err : INFINITY;
        }
        bad = true;
      }
      if (std::isfinite(g)) r.max_abs_err = std::max(r.max_abs_err, err);
      else r.max_abs_err = INFINITY;
      r.max_abs_ref = std::max(r.max_abs_ref, std::fabs(ref));
    }
    r.bad_rows += bad ? 1 : 0;
  }
  for (int64_t i = 0; i < row; ++i)
    if (out[d.num_tokens * row + i] != 0x7fc1) r.sentinel_ok = false;
  return r;
}

}  // namespace ds::cuda::testing
