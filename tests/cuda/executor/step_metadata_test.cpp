// The step unpack kernel (runtime/executor/cuda/step_metadata.h) against a host
// computation: fixed buffers, page tables and slot mapping (padding: slot -1),
// previous_sample_token(r) tokens resolved from the last sampling's ids; and
// the copy of the packed step from mapped pinned staging (launch_copy_step).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/pinned_buffer.h"
#include "runtime/executor/batch.h"
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
  // Tokens 1 and 21 are the ids the last sampling drew for its rows 2 and 0.
  constexpr int kIdStride = 3;  // words per sampled row (e.g. an id followed by logprob fields)
  const std::vector<int32_t> prev = {501, -7, -7, 502, -7, -7, 503, -7, -7};
  std::vector<int32_t> want_tokens = tokens;
  tokens[1] = previous_sample_token(2), want_tokens[1] = 503;
  tokens[21] = previous_sample_token(0), want_tokens[21] = 501;
  const int T = static_cast<int>(tokens.size()), R = static_cast<int>(rows.size()), P = static_cast<int>(pages.size());
  std::vector<int32_t> blob = {T, R, S, S_real, P, 0, 0, 0};
  for (auto* v : {&tokens, &positions, &rows, &qs, &kvl, &ps, &pages}) blob.insert(blob.end(), v->begin(), v->end());
  ASSERT_LE(blob.size(), step_blob_words(kCap, kCap, kSeqs, kStride));

  auto dblob = DeviceBuffer::allocate(blob.size() * 4);
  auto dmeta = DeviceBuffer::allocate(sizeof(DsStepArgs) + 4 * (4 * kCap + 2 * kSeqs + 1 + kSeqs * kStride));
  auto dprev = DeviceBuffer::allocate(prev.size() * 4);
  auto staging = PinnedBuffer::allocate_mapped(blob.size() * 4);
  ASSERT_TRUE(dblob.ok() && dmeta.ok() && dprev.ok() && staging.ok());
  ASSERT_TRUE(dprev->copy_from_host(prev.data(), prev.size() * 4).ok());
  std::memcpy(staging->data(), blob.data(), blob.size() * 4);
  Status copied = launch_copy_step(static_cast<int32_t*>(dblob->data()),
                                   static_cast<const int32_t*>(staging->device_data()), blob.size(), nullptr);
  ASSERT_TRUE(copied.ok()) << copied.message();
  ASSERT_EQ(cudaMemset(dmeta->data(), 0xff, dmeta->bytes()), cudaSuccess);
  StepMetaBuffers m;
  auto* base = static_cast<uint8_t*>(dmeta->data());
  m.args = reinterpret_cast<DsStepArgs*>(base);
  auto* ints = reinterpret_cast<int32_t*>(base + sizeof(DsStepArgs));
  m.tokens = ints, m.positions = ints + kCap, m.logit_rows = ints + 2 * kCap, m.slot_mapping = ints + 3 * kCap;
  m.q_start = ints + 4 * kCap, m.kv_len = m.q_start + kSeqs + 1, m.page_table = m.kv_len + kSeqs;
  m.page_table_stride = kStride;
  m.page_size = kPage;
  m.prev_ids = static_cast<const int32_t*>(dprev->data());
  m.prev_ids_stride = kIdStride;
  Status st = launch_unpack_step(static_cast<const int32_t*>(dblob->data()), m, nullptr);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  std::vector<uint8_t> host(dmeta->bytes());
  ASSERT_TRUE(dmeta->copy_to_host(host.data(), host.size()).ok());
  const auto* args = reinterpret_cast<const DsStepArgs*>(host.data());
  const auto* h = reinterpret_cast<const int32_t*>(host.data() + sizeof(DsStepArgs));
  EXPECT_EQ(args->num_tokens, T);
  for (int t = 0; t < T; ++t) {
    EXPECT_EQ(h[t], want_tokens[t]) << t;
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

TEST(StepMetadata, CopiesFromMappedStaging) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver";
  constexpr size_t kMax = 20000;
  auto staging = PinnedBuffer::allocate_mapped((kMax + 8) * 4);
  auto dst = DeviceBuffer::allocate((kMax + 8) * 4);
  ASSERT_TRUE(staging.ok() && dst.ok());
  ASSERT_NE(staging->device_data(), nullptr);
  auto* host = static_cast<int32_t*>(staging->data());
  for (size_t i = 0; i < kMax + 8; ++i) host[i] = static_cast<int32_t>(i * 2654435761u);
  int cases = 0;
  // Word counts around the 16-byte and block boundaries; both ends aligned or not.
  for (size_t words : {size_t{0}, size_t{1}, size_t{3}, size_t{4}, size_t{5}, size_t{255}, size_t{1024}, size_t{1029},
                       size_t{4096}, kMax})
    for (size_t src_off : {size_t{0}, size_t{1}})
      for (size_t dst_off : {size_t{0}, size_t{3}}) {
        ASSERT_EQ(cudaMemset(dst->data(), 0xab, dst->bytes()), cudaSuccess);
        const auto* src = static_cast<const int32_t*>(staging->device_data()) + src_off;
        auto* d = static_cast<int32_t*>(dst->data()) + dst_off;
        Status st = launch_copy_step(d, src, words, nullptr);
        ASSERT_TRUE(st.ok()) << st.message();
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        std::vector<int32_t> got(kMax + 8);
        ASSERT_TRUE(dst->copy_to_host(got.data(), got.size() * 4).ok());
        int bad = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          const bool inside = i >= dst_off && i < dst_off + words;
          const int32_t want = inside ? host[src_off + i - dst_off] : static_cast<int32_t>(0xabababab);
          bad += got[i] != want;
        }
        EXPECT_EQ(bad, 0) << words << " words, src +" << src_off << ", dst +" << dst_off;
        ++cases;
      }
  EXPECT_FALSE(launch_copy_step(nullptr, static_cast<const int32_t*>(staging->device_data()), 4, nullptr).ok());
  auto unmapped = PinnedBuffer::allocate(64);
  ASSERT_TRUE(unmapped.ok());
  EXPECT_EQ(unmapped->device_data(), nullptr);
  EXPECT_FALSE(launch_copy_step(static_cast<int32_t*>(dst->data()), nullptr, 4, nullptr).ok());
  std::printf("copy_step: %d cases checked word for word\n", cases);
}

}  // namespace
}  // namespace ds::cuda
