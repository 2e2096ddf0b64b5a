// GPU paged attention (kernels/cuda/attention) vs the CPU reference
// (kernels/ref/paged_attention) over a grid: head_dim 8..256, GQA ratios
// 1, 2, 4, 7, 8, page boundaries, decode batches up to 256 x 8k, prefill up
// to 4096, chunked prefill, mixed batches, q_len 0 padding, q row stride, a
// kv_len bound above the actual lengths (graph-safe splits) and a captured
// CUDA graph replayed with new lengths. GPU cases GTEST_SKIP without a device;
// argument validation runs everywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "attention_case.h"
#include "kernels/cuda/attention/paged_attention.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda::testing {
namespace {

#define SKIP_WITHOUT_GPU()                                            \
  do {                                                                \
    if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver"; \
  } while (0)

std::string describe(const AttnCase& c) {
  std::string s = c.name + " [H " + std::to_string(c.num_heads) + "/" + std::to_string(c.num_kv_heads) + ", D " +
                  std::to_string(c.head_dim) + ", page " + std::to_string(c.page_size) + ", seqs";
  const size_t show = std::min<size_t>(c.seqs.size(), 8);
  for (size_t i = 0; i < show; ++i)
    s += " " + std::to_string(c.seqs[i].q_len) + "/" + std::to_string(c.seqs[i].kv_len);
  if (c.seqs.size() > show) s += " ... (" + std::to_string(c.seqs.size()) + " seqs)";
  if (c.max_kv_len_bound) s += ", kv bound " + std::to_string(c.max_kv_len_bound);
  return s + "]";
}

void check_case(const AttnCase& c, DeviceBuffer* shared_ws = nullptr) {
  Result<Stream> stream = Stream::create();
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  Result<AttnData> d = make_case_data(c);
  ASSERT_TRUE(d.ok()) << d.status().message();
  Result<AttnResult> r = run_case_gpu(c, d.value(), stream.value().get(), shared_ws);
  ASSERT_TRUE(r.ok()) << describe(c) << ": " << r.status().message();
  const AttnResult& res = r.value();
  std::printf("%-90s tokens %5d  max abs err %.3e (max |ref| %.3f)\n", describe(c).c_str(), d.value().num_tokens,
              res.max_abs_err, res.max_abs_ref);
  EXPECT_EQ(res.bad_rows, 0) << describe(c) << ": " << res.bad_rows << " rows over tolerance " << kAbsTol
                             << "; first: row " << res.first_bad_row << " head " << res.first_bad_head << " err "
                             << res.first_bad_err;
  EXPECT_LE(res.max_abs_err, kAbsTol) << describe(c);
  EXPECT_TRUE(res.sentinel_ok) << describe(c) << ": wrote past num_tokens rows";
}

std::vector<SeqSpec> decode_seqs(const std::vector<int>& kv_lens) {
  std::vector<SeqSpec> v;
  for (int kv : kv_lens) v.push_back({1, kv});
  return v;
}

const std::vector<std::pair<int, int>> kHeadConfigs = {{4, 4}, {8, 4}, {8, 2}, {28, 4}, {16, 2}};  // GQA 1,2,4,7,8

TEST(PagedAttentionGpu, DecodePageBoundaries) {
  SKIP_WITHOUT_GPU();
  const std::vector<int> lens = {1, 15, 16, 17, 31, 33, 64, 65, 129, 500};
  for (int dim : {16, 64, 128})
    for (auto [h, kv] : kHeadConfigs)
      check_case({"decode", h, kv, dim, 16, decode_seqs(lens), 0, 0, static_cast<unsigned>(dim + h)});
}

TEST(PagedAttentionGpu, DecodeKvBoundAboveLengths) {
  SKIP_WITHOUT_GPU();
  // Splits are sized for 8192 keys; most splits of these sequences are empty.
  check_case({"decode-bound", 8, 1, 128, 16, decode_seqs({1, 17, 300, 1000}), 8192, 0, 3});
  check_case({"decode-bound", 28, 4, 64, 16, decode_seqs({2, 63, 129}), 4096, 0, 4});
  check_case({"decode-1x8k", 40, 8, 128, 16, decode_seqs({8192}), 0, 0, 5});
  check_case({"decode-1x8k-g8", 64, 8, 128, 16, decode_seqs({8191}), 0, 0, 6});
  check_case({"decode-g16", 32, 2, 128, 16, decode_seqs({1, 100, 2000}), 0, 0, 26});  // one 16-row mma tile
  check_case({"decode-g20", 40, 2, 64, 16, decode_seqs({77, 1500}), 0, 0, 27});       // two chunks of 10 heads
  check_case({"decode-g20", 40, 2, 256, 16, decode_seqs({77, 1500}), 0, 0, 28});      // generic: 3 chunks of 7
}

TEST(PagedAttentionGpu, DecodeLargeBatch) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(7);
  // Mostly short histories, every 32nd up to 8k (keeps the CPU reference fast).
  std::vector<int> lens(256);
  for (size_t i = 0; i < lens.size(); ++i) lens[i] = 1 + static_cast<int>(rng() % (i % 32 == 5 ? 8192 : 1024));
  lens[100] = 8192;
  check_case({"decode-256", 8, 1, 128, 16, decode_seqs(lens), 8192, 0, 8});
  std::vector<int> lens2(64);
  for (int& l : lens2) l = 1 + static_cast<int>(rng() % 2048);
  check_case({"decode-64", 28, 4, 64, 16, decode_seqs(lens2), 0, 0, 9});
  check_case({"decode-2", 40, 8, 128, 16, decode_seqs({3000, 777}), 0, 0, 10});
}

TEST(PagedAttentionGpu, DecodePadding) {
  SKIP_WITHOUT_GPU();
  const std::vector<SeqSpec> seqs = {{1, 10}, {0, 0}, {1, 40}, {0, 33}, {1, 1}, {0, 5}};
  check_case({"decode-pad", 8, 2, 128, 16, seqs, 0, 0, 11});
  check_case({"decode-pad", 12, 2, 64, 16, seqs, 2048, 0, 12});
}

TEST(PagedAttentionGpu, PrefillSingleSequence) {
  SKIP_WITHOUT_GPU();
  for (int dim : {16, 64, 128})
    for (int len : {1, 2, 15, 16, 17, 63, 64, 65, 127, 129, 300, 1000})
      check_case({"prefill", 8, 2, dim, 16, {{len, len}}, 0, 0, static_cast<unsigned>(len + dim)});
  check_case({"prefill-g7", 28, 4, 128, 16, {{700, 700}}, 0, 0, 13});
  check_case({"prefill-g8", 8, 1, 64, 16, {{1500, 1500}}, 0, 0, 14});
  check_case({"prefill-4k", 4, 1, 128, 16, {{4096, 4096}}, 0, 0, 15});
}

// Enough rows x heads for the 128-row CTAs (two m-tiles per warp) on a 132-SM GPU.
TEST(PagedAttentionGpu, PrefillWideBatch128RowTiles) {
  SKIP_WITHOUT_GPU();
  check_case({"prefill-wide", 32, 4, 128, 16, std::vector<SeqSpec>(16, {256, 256}), 0, 0, 29});
  std::vector<SeqSpec> chunks;
  for (int i = 0; i < 20; ++i) chunks.push_back({150 + 7 * i, 150 + 7 * i + 13 * i});
  check_case({"prefill-wide", 16, 2, 64, 16, chunks, 0, 0, 30});
  check_case({"prefill-wide", 16, 2, 16, 16, chunks, 0, 0, 31});
}

TEST(PagedAttentionGpu, ChunkedPrefill) {
  SKIP_WITHOUT_GPU();
  // Cached prefixes that are not multiples of the page or tile size.
  const std::vector<SeqSpec> seqs = {{37, 100}, {64, 77}, {200, 1203}, {5, 5}, {2, 18}, {130, 147}};
  for (int dim : {16, 64, 128})
    for (auto [h, kv] : kHeadConfigs)
      check_case({"chunked", h, kv, dim, 16, seqs, 0, 0, static_cast<unsigned>(100 + dim + h)});
  check_case({"chunked-long", 8, 2, 128, 16, {{512, 3000}}, 4096, 0, 16});
}

TEST(PagedAttentionGpu, MixedBatch) {
  SKIP_WITHOUT_GPU();
  const std::vector<SeqSpec> seqs = {{1, 500}, {0, 20}, {100, 100}, {1, 1}, {33, 70}, {0, 0}, {1, 4000}, {65, 65}};
  check_case({"mixed", 28, 4, 128, 16, seqs, 0, 0, 17});
  check_case({"mixed", 12, 2, 64, 16, seqs, 0, 0, 18});
  check_case({"mixed", 4, 4, 16, 16, seqs, 0, 0, 19});
}

TEST(PagedAttentionGpu, GenericHeadDimsAndPageSizes) {
  SKIP_WITHOUT_GPU();
  const std::vector<SeqSpec> prefill = {{70, 70}, {3, 40}, {0, 9}, {1, 17}};
  for (int dim : {8, 40, 96, 192, 256}) {
    check_case({"generic-prefill", 8, 2, dim, 16, prefill, 0, 0, static_cast<unsigned>(dim)});
    check_case({"generic-decode", 8, 2, dim, 16, decode_seqs({1, 33, 700}), 0, 0, static_cast<unsigned>(dim + 1)});
  }
  check_case({"page8", 8, 2, 128, 8, prefill, 0, 0, 20});
  check_case({"page8", 8, 2, 128, 8, decode_seqs({1, 9, 300}), 0, 0, 21});
  check_case({"page1", 4, 2, 64, 1, {{20, 25}, {1, 3}}, 0, 0, 22});
  check_case({"page32", 8, 1, 128, 32, decode_seqs({31, 32, 33, 1000}), 0, 0, 23});
}

// One workspace for decode steps of different geometries, as the executor keeps it
// across layers and buckets: short bounds split into single-tile parts whose last
// CTA merges (arrival counters at the workspace start, left at zero), long ones
// into more and longer splits whose partials sit at its end. Interleaving them
// checks that no launch's partials clobber another's counters.
TEST(PagedAttentionGpu, DecodeSplitsShareOneWorkspace) {
  SKIP_WITHOUT_GPU();
  PagedAttentionParams p;
  p.num_heads = 28, p.num_kv_heads = 4, p.head_dim = p.v_head_dim = 128, p.page_size = 16, p.scale = 0.088f;
  const size_t bytes = paged_attention_workspace_bytes(p, 64, 64, 4096);
  ASSERT_GT(bytes, 0u);
  Result<DeviceBuffer> ws = DeviceBuffer::allocate(bytes);
  ASSERT_TRUE(ws.ok());
  ASSERT_TRUE(ws.value().zero().ok());
  std::vector<int> many(64);
  for (int i = 0; i < 64; ++i) many[static_cast<size_t>(i)] = 1 + (i * 613) % 4000;
  for (int round = 0; round < 3; ++round) {
    check_case({"ws-short", 28, 4, 128, 16, decode_seqs({288}), 512, 0, 40u + round}, &ws.value());
    check_case({"ws-long", 28, 4, 128, 16, decode_seqs(many), 4096, 0, 50u + round}, &ws.value());
    check_case({"ws-mid", 28, 4, 128, 16, decode_seqs({1, 64, 65, 500}), 512, 0, 60u + round}, &ws.value());
    check_case({"ws-one", 28, 4, 128, 16, decode_seqs({2000}), 2048, 0, 70u + round}, &ws.value());
  }
}

TEST(PagedAttentionGpu, QRowStride) {
  SKIP_WITHOUT_GPU();
  check_case({"q_ld", 8, 2, 128, 16, {{90, 100}, {1, 7}}, 0, 2 * 2 * 128, 24});  // q inside a fused QKV row
  check_case({"q_ld", 8, 2, 64, 16, decode_seqs({5, 300}), 0, 8, 25});
}

}  // namespace
}  // namespace ds::cuda::testing
