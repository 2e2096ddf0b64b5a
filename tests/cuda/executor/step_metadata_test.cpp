// The step unpack kernel (runtime/executor/cuda/step_metadata.h) against a host
// computation: fixed buffers, page tables and slot mapping (padding: slot -1).
#include <gtest/gtest.h>

#include <vector>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/executor/cuda/step_metadata.h"

namespace ds::cuda {
namespace {

TEST(StepMetadata, UnpacksAndComputesSlots) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver";
  constexpr int kPage = 16, kStride = 6, kCap = 64, kSeqs = 5;
  // Sequences: (cached, new tokens, pages); the last one is padding.
  struct Seq { int cached, n; std::vector<int32_t> pages; };
  const std::vector<Seq> seqs = {{0, 20, {7, 3}}, {33, 1, {1, 2, 9}}, {15, 2, {4, 5}}, {0, 0, {}}, {0, 1, {11}}};
  const int S = kSeqs, S_real = 4;
  std::vector<int32_t> tokens, positions, rows, qs, kvl, ps, pages;
  for (const Seq& s : seqs) {
    qs.push_back(static_cast<int32_t>(tokens.size()));
    ps.push_back(static_cast<int32_t>(pages.size()));
    kvl.push_back(s.cached + s.n);
    for (int i = 0; i < s.n; ++i) {
      tokens.push_back(100 + static_cast<int32_t>(tokens.size()));
      positions.push_back(s.cached + i);
    }
    pages.insert(pages.end(), s.pages.begin(), s.pages.end());
  }
  qs.push_back(static_cast<int32_t>(tokens.size()));
  ps.push_back(static_cast<int32_t>(pages.size()));
  rows = {19, 20, 22, 23};
  const int T = static_cast<int>(tokens.size()), R = static_cast<int>(rows.size()), P = static_cast<int>(pages.size());
  std::vector<int32_t> blob = {T, R, S, S_real, P, 0, 0, 0};
  for (auto* v : {&tokens, &positions, &rows, &qs, &kvl, &ps, &pages}) blob.insert(blob.end(), v->begin(), v->end());
  ASSERT_LE(blob.size(), step_blob_words(kCap, kCap, kSeqs, kStride));

  auto dblob = DeviceBuffer::allocate(blob.size() * 4);
  auto dmeta = DeviceBuffer::allocate(sizeof(DsStepArgs) + 4 * (4 * kCap + 2 * kSeqs + 1 + kSeqs * kStride));
  ASSERT_TRUE(dblob.ok() && dmeta.ok());
  ASSERT_TRUE(dblob->copy_from_host(blob.data(), blob.size() * 4).ok());
  ASSERT_EQ(cudaMemset(dmeta->data(), 0xff, dmeta->bytes()), cudaSuccess);
  StepMetaBuffers m;
  auto* base = static_cast<uint8_t*>(dmeta->data());
  m.args = reinterpret_cast<DsStepArgs*>(base);
  auto* ints = reinterpret_cast<int32_t*>(base + sizeof(DsStepArgs));
  m.tokens = ints, m.positions = ints + kCap, m.logit_rows = ints + 2 * kCap, m.slot_mapping = ints + 3 * kCap;
  m.q_start = ints + 4 * kCap, m.kv_len = m.q_start + kSeqs + 1, m.page_table = m.kv_len + kSeqs;
  m.page_table_stride = kStride;
  m.page_size = kPage;
  Status st = launch_unpack_step(static_cast<const int32_t*>(dblob->data()), m, nullptr);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  std::vector<uint8_t> host(dmeta->bytes());
  ASSERT_TRUE(dmeta->copy_to_host(host.data(), host.size()).ok());
  const auto* args = reinterpret_cast<const DsStepArgs*>(host.data());
  const auto* h = reinterpret_cast<const int32_t*>(host.data() + sizeof(DsStepArgs));
  EXPECT_EQ(args->num_tokens, T);
  for (int t = 0; t < T; ++t) {
    EXPECT_EQ(h[t], tokens[t]) << t;
    EXPECT_EQ(h[kCap + t], positions[t]) << t;
  }
  for (int r = 0; r < R; ++r) EXPECT_EQ(h[2 * kCap + r], rows[r]);
  const int32_t* hq = h + 4 * kCap;
  const int32_t* hk = hq + kSeqs + 1;
  const int32_t* hp = hk + kSeqs;
  for (int s = 0; s <= S; ++s) EXPECT_EQ(hq[s], qs[s]) << s;
  for (int s = 0; s < S; ++s) {
    EXPECT_EQ(hk[s], kvl[s]) << s;
    for (size_t j = 0; j < seqs[s].pages.size(); ++j) EXPECT_EQ(hp[s * kStride + j], seqs[s].pages[j]) << s << "," << j;
    for (int i = qs[s]; i < qs[s + 1]; ++i) {
      const int hist = kvl[s] - (qs[s + 1] - qs[s]) + (i - qs[s]);
      const int want = s < S_real ? seqs[s].pages[hist / kPage] * kPage + hist % kPage : -1;
      EXPECT_EQ(h[3 * kCap + i], want) << "slot of token " << i << " (sequence " << s << ")";
    }
  }
}

}  // namespace
}  // namespace ds::cuda
