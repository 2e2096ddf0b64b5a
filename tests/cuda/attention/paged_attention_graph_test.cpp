// Paged attention inside a captured CUDA graph (the decode path must stay
// valid for any kv_len <= the bound it was captured with), and argument
// validation (no GPU needed: errors are returned before any CUDA call).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "attention_case.h"
#include "kernels/cuda/attention/attention_internal.h"
#include "kernels/cuda/attention/paged_attention.h"
#include "runtime/common/dtype.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda::testing {
namespace {

template <typename T>
void put(DeviceBuffer& b, const std::vector<T>& h) {
  ASSERT_LE(h.size() * sizeof(T), b.bytes());
  ASSERT_TRUE(b.copy_from_host(h.data(), h.size() * sizeof(T)).ok());
}

double max_err(const std::vector<uint16_t>& out, const std::vector<float>& ref) {
  double e = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double g = bf16_to_f32(out[i]);
    e = std::isfinite(g) ? std::max(e, std::fabs(g - ref[i])) : INFINITY;
  }
  return e;
}

TEST(PagedAttentionGpu, DecodeCudaGraphReplayWithNewLengths) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver";
  constexpr int kBound = 2048;
  AttnCase a{"graph-a", 28, 4, 128, 16, {{1, 5}, {1, 700}, {1, 16}, {1, 2048}}, kBound, 0, 31};
  AttnCase b{"graph-b", 28, 4, 128, 16, {{1, 1900}, {1, 1}, {0, 0}, {1, 129}}, kBound, 0, 32};
  Result<AttnData> da = make_case_data(a), db = make_case_data(b);
  ASSERT_TRUE(da.ok() && db.ok());
  const AttnData& A = da.value();
  const AttnData& B = db.value();
  auto bytes16 = [](size_t n) { return std::max<size_t>(n * 2, 16); };
  auto alloc = [](size_t bytes) {
    Result<DeviceBuffer> r = DeviceBuffer::allocate(bytes);
    EXPECT_TRUE(r.ok());
    return std::move(r).value();
  };
  DeviceBuffer dq = alloc(bytes16(std::max(A.q.size(), B.q.size())));
  DeviceBuffer dk = alloc(bytes16(std::max(A.k.size(), B.k.size())));
  DeviceBuffer dv = alloc(bytes16(std::max(A.v.size(), B.v.size())));
  DeviceBuffer dqs = alloc(sizeof(int32_t) * A.q_start.size());
  DeviceBuffer dkv = alloc(sizeof(int32_t) * A.kv_len.size());
  DeviceBuffer dpt = alloc(sizeof(int32_t) * std::max(A.page_table.size(), B.page_table.size()));
  const int64_t row = 28 * 128;
  DeviceBuffer dout = alloc(sizeof(uint16_t) * row * 4);
  Result<Stream> sr = Stream::create();
  ASSERT_TRUE(sr.ok());
  cudaStream_t stream = sr.value().get();

  PagedAttentionParams p;
  p.num_heads = 28;
  p.num_kv_heads = 4;
  p.head_dim = p.v_head_dim = 128;
  p.scale = static_cast<float>(1.0 / std::sqrt(128.0));
  PagedAttentionBatch batch;
  batch.num_seqs = 4;
  batch.q_start = static_cast<const int32_t*>(dqs.data());
  batch.kv_len = static_cast<const int32_t*>(dkv.data());
  batch.page_table = static_cast<const int32_t*>(dpt.data());
  batch.page_table_stride = A.pt_stride;
  batch.num_tokens = 4;  // graph shape: 4 rows; B pads one sequence (q_len 0)
  batch.max_q_len = 1;
  batch.max_kv_len = kBound;
  const size_t ws_bytes = paged_attention_workspace_bytes(p, 4, 4, kBound);
  DeviceBuffer ws = alloc(std::max<size_t>(ws_bytes, 16));
  ASSERT_TRUE(ws.zero().ok());

  put(dq, A.q), put(dk, A.k), put(dv, A.v), put(dqs, A.q_start), put(dkv, A.kv_len), put(dpt, A.page_table);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // pageable uploads may still be in flight
  // Warm-up outside capture (first call configures the kernels).
  ASSERT_TRUE(paged_attention(dq.data(), 0, dk.data(), dv.data(), dout.data(), p, batch, ws.data(), ws_bytes, stream).ok());
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);

  Result<GraphExec> g = capture_graph(stream, [&] {
    return paged_attention(dq.data(), 0, dk.data(), dv.data(), dout.data(), p, batch, ws.data(), ws_bytes, stream);
  });
  ASSERT_TRUE(g.ok()) << g.status().message();

  std::vector<uint16_t> out(row * 4);
  ASSERT_EQ(cudaGraphLaunch(g->get(), stream), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  ASSERT_TRUE(dout.copy_to_host(out.data(), out.size() * 2).ok());
  const double err_a = max_err(out, A.ref_out);
  std::printf("graph replay, lengths A: max abs err %.3e\n", err_a);
  EXPECT_LE(err_a, kAbsTol);

  put(dq, B.q), put(dk, B.k), put(dv, B.v), put(dqs, B.q_start), put(dkv, B.kv_len), put(dpt, B.page_table);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(g->get(), stream), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  ASSERT_TRUE(dout.copy_to_host(out.data(), out.size() * 2).ok());
  out.resize(B.ref_out.size());  // B has 3 query rows
  const double err_b = max_err(out, B.ref_out);
  std::printf("graph replay, lengths B: max abs err %.3e\n", err_b);
  EXPECT_LE(err_b, kAbsTol);
}

PagedAttentionParams good_params() {
  PagedAttentionParams p;
  p.num_heads = 8;
  p.num_kv_heads = 2;
  p.head_dim = p.v_head_dim = 128;
  p.scale = 0.088f;
  return p;
}

Status call(const PagedAttentionParams& p, const PagedAttentionBatch& b, int64_t q_ld = 0) {
  alignas(16) static int32_t dummy[64] = {};
  return paged_attention(dummy, q_ld, dummy, dummy, dummy, p, b, nullptr, 0, nullptr);
}

PagedAttentionBatch good_batch() {
  alignas(16) static int32_t dummy[64] = {};
  PagedAttentionBatch b;
  b.num_seqs = 1;
  b.q_start = b.kv_len = b.page_table = dummy;
  b.page_table_stride = 4;
  b.num_tokens = 3;
  b.max_q_len = 3;
  b.max_kv_len = 64;
  return b;
}

void expect_error(const Status& s, const std::string& needle) {
  ASSERT_FALSE(s.ok()) << "expected an error mentioning '" << needle << "'";
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
}

TEST(PagedAttentionArgs, RejectsBadParameters) {
  PagedAttentionParams p = good_params();
  p.num_heads = 10;
  p.num_kv_heads = 4;
  expect_error(call(p, good_batch()), "num_heads");
  p = good_params();
  p.head_dim = p.v_head_dim = 12;
  expect_error(call(p, good_batch()), "head_dim");
  p.head_dim = p.v_head_dim = 264;
  expect_error(call(p, good_batch()), "head_dim");
  p = good_params();
  p.v_head_dim = 64;
  expect_error(call(p, good_batch()), "v_head_dim");
  p = good_params();
  p.page_size = 0;
  expect_error(call(p, good_batch()), "page_size");
  p = good_params();
  p.scale = NAN;
  expect_error(call(p, good_batch()), "scale");
}

TEST(PagedAttentionArgs, RejectsBadBatch) {
  const PagedAttentionParams p = good_params();
  PagedAttentionBatch b = good_batch();
  b.page_table_stride = 3;  // 64 keys / 16 = 4 pages
  expect_error(call(p, b), "page_table_stride");
  b = good_batch();
  b.kv_len = nullptr;
  expect_error(call(p, b), "null");
  b = good_batch();
  b.max_q_len = 0;
  expect_error(call(p, b), "max_q_len");
  b = good_batch();
  b.max_q_len = 1;  // decode, but 3 rows for 1 sequence
  expect_error(call(p, b), "decode batch");
  expect_error(call(p, good_batch(), 8 * 128 + 4), "q row stride");
  expect_error(call(p, good_batch(), 100), "q row stride");
  b = good_batch();
  b.num_tokens = 0;  // empty step: nothing to do
  EXPECT_TRUE(call(p, b).ok());
}

// Host-side split geometry (no device needed): short bounds split into 64-key
// parts, and one workspace sized by paged_attention_workspace_bytes keeps every
// geometry's arrival counters (at its start) clear of every geometry's partials
// (at its end), which is what lets the executor reuse it across layers, batch
// sizes and KV buckets without clearing it.
TEST(PagedAttentionArgs, DecodeSplitGeometryAndWorkspaceLayout) {
  const int sms = 132;
  // 28/4 heads, one sequence, bound 512: eight 64-key splits of four head groups.
  attn::DecodeGeometry g = attn::decode_geometry(1, 28, 4, 128, 512, sms);
  EXPECT_EQ(g.splits, 8);
  EXPECT_EQ(g.chunk_len, 64);
  EXPECT_EQ(g.counter_bytes, 16u);  // 4 counters, rounded to 16 bytes
  EXPECT_EQ(g.partial_bytes, (28u * 8 * 2 + 28u * 8 * 128) * sizeof(float));
  // Enough work items: unsplit, no workspace.
  g = attn::decode_geometry(256, 28, 4, 128, 512, sms);
  EXPECT_EQ(g.splits, 1);
  EXPECT_EQ(g.workspace_bytes, 0u);
  // Long bounds keep >= 128 keys per split.
  g = attn::decode_geometry(1, 40, 8, 128, 8192, sms);
  EXPECT_GE(g.chunk_len, 128);
  EXPECT_GT(g.splits, 1);
  // Split launches fit in one wave of two CTAs per SM: 32 sequences x 4 head groups
  // take 2 splits (256 CTAs), not 3 (384 CTAs for 264 slots).
  g = attn::decode_geometry(32, 28, 4, 128, 512, sms);
  EXPECT_EQ(g.splits, 2);
  for (int bound : {512, 2048, 8192})
    for (int a = 1; a <= 256; ++a) {
      const attn::DecodeGeometry ga = attn::decode_geometry(a, 28, 4, 128, bound, sms);
      if (ga.splits > 1) EXPECT_LE(a * 4 * ga.splits, 2 * sms) << "bound " << bound << ", " << a << " sequences";
    }

  PagedAttentionParams p;
  p.num_heads = 28, p.num_kv_heads = 4, p.head_dim = p.v_head_dim = 128, p.page_size = 16, p.scale = 0.088f;
  for (int bound : {128, 512, 2048, 8192}) {
    const int max_seqs = 64;
    const size_t ws = paged_attention_workspace_bytes(p, max_seqs, max_seqs, bound);
    for (int a = 1; a <= max_seqs; ++a) {
      const attn::DecodeGeometry ga = attn::decode_geometry(a, 28, 4, 128, bound, sms);
      if (ga.splits == 1) continue;
      EXPECT_LE(ga.workspace_bytes, ws) << "bound " << bound << ", " << a << " sequences";
      for (int b = 1; b <= max_seqs; ++b) {
        const attn::DecodeGeometry gb = attn::decode_geometry(b, 28, 4, 128, bound, sms);
        if (gb.splits == 1) continue;
        // b's partials start at (ws - partial_bytes) rounded down to 16 bytes.
        const size_t part_begin = (ws - gb.partial_bytes) / 16 * 16;
        EXPECT_GE(part_begin, ga.counter_bytes) << "bound " << bound << ": partials of " << b
                                                << " sequences overlap the counters of " << a;
      }
    }
  }
}

TEST(PagedAttentionArgs, WorkspaceIsZeroForInvalidParams) {
  PagedAttentionParams p = good_params();
  p.head_dim = 7;
  EXPECT_EQ(paged_attention_workspace_bytes(p, 8, 8, 4096), 0u);
}

}  // namespace
}  // namespace ds::cuda::testing
