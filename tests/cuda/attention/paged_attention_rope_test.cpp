// Rope inside decode attention (PagedAttentionRope) vs what the executor runs
// without it: the CPU rope (kernels/ref/rope) of q and of the new key, the new
// K/V written into the pools at the row's slot, then the CPU reference
// attention. Grid: head_dim 64 / 128, GQA 1..8 (and 20 query heads per KV head:
// two head chunks), rotary_dim = head_dim or half of it, neox and interleaved
// pairs, a YaRN-like attention factor, KV lengths 1..2000 under short and long
// bounds (split geometries), a padded row (slot -1: nothing written). Checks the
// output, the pools at each slot, and that nothing else in the pools changed.
// GTEST_SKIP without a device; the argument checks run everywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "attention_case.h"
#include "kernels/cuda/attention/paged_attention.h"
#include "kernels/ref/rope.h"
#include "runtime/common/dtype.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"

namespace ds::cuda::testing {
namespace {

struct RopeCase {
  int heads = 8, kv_heads = 2, dim = 128, rotary = 128;
  bool interleaved = false;
  double factor = 1.0;  // > 1: YaRN scaling (attention factor != 1)
  std::vector<int> kv_lens;  // one decode row each; 0: a padded row (kv 1, slot -1)
  int bound = 0;             // kv bound (0: the longest)
};

std::string describe(const RopeCase& c) {
  std::string s = "H " + std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " D " + std::to_string(c.dim) +
                  " rot " + std::to_string(c.rotary) + (c.interleaved ? " interleaved" : " neox") +
                  (c.factor > 1 ? " yarn" : "") + " kv";
  for (int l : c.kv_lens) s += " " + std::to_string(l);
  return s + " bound " + std::to_string(c.bound);
}

template <typename T>
DeviceBuffer upload(const std::vector<T>& h) {
  auto b = DeviceBuffer::allocate(std::max<size_t>(h.size() * sizeof(T), 16));
  EXPECT_TRUE(b.ok());
  if (!h.empty()) EXPECT_TRUE(b->copy_from_host(h.data(), h.size() * sizeof(T)).ok());
  return std::move(b).value();
}

std::vector<uint16_t> round_bf16(const std::vector<float>& f) {
  std::vector<uint16_t> h(f.size());
  for (size_t i = 0; i < f.size(); ++i) h[i] = f32_to_bf16(f[i]);
  return h;
}

void run_case(const RopeCase& c) {
  // Pools, page table and per-sequence lengths from the plain attention case.
  AttnCase ac;
  ac.name = "rope";
  ac.num_heads = c.heads;
  ac.num_kv_heads = c.kv_heads;
  ac.head_dim = c.dim;
  for (int l : c.kv_lens) ac.seqs.push_back({1, std::max(l, 1)});
  ac.max_kv_len_bound = c.bound;
  ac.seed = static_cast<unsigned>(c.kv_lens.size() * 131 + c.dim + c.heads);
  Result<AttnData> dr = make_case_data(ac);
  ASSERT_TRUE(dr.ok()) << dr.status().message();
  const AttnData& d = dr.value();
  const int n = static_cast<int>(c.kv_lens.size());
  const int64_t qw = int64_t{c.heads} * c.dim, kvw = int64_t{c.kv_heads} * c.dim;
  const int64_t ld = qw + 2 * kvw + 8;  // fused qkv rows, a pad column block
  const int64_t koff = qw, voff = qw + kvw;

  std::mt19937 rng(7u + static_cast<unsigned>(n));
  std::uniform_real_distribution<float> dist(-1.5f, 1.5f);
  std::vector<uint16_t> qkv(static_cast<size_t>(n) * ld);
  for (auto& x : qkv) x = f32_to_bf16(dist(rng));
  std::vector<int32_t> positions(n), slots(n);
  for (int s = 0; s < n; ++s) {
    const int kn = std::max(c.kv_lens[s], 1) - 1;
    positions[s] = kn;
    const int32_t page = d.page_table[s * d.pt_stride + kn / ac.page_size];
    slots[s] = c.kv_lens[s] == 0 ? -1 : page * ac.page_size + kn % ac.page_size;
  }

  ref::RopeParams rp;
  rp.num_heads = c.heads;
  rp.head_dim = c.dim;
  rp.rotary_dim = c.rotary;
  rp.style = c.interleaved ? ref::RopeStyle::kInterleaved : ref::RopeStyle::kNeox;
  if (c.factor > 1) {
    rp.scaling = ref::RopeScaling::kYarn;
    rp.factor = c.factor;
    rp.original_max_position = 512;
  }
  Result<ref::RopeTables> tables = ref::rope_tables(rp);
  ASSERT_TRUE(tables.ok()) << tables.status().message();

  // The unfused path: rope(q), rope(k) rounded to bf16, K/V written at the slot.
  auto rope_rows = [&](int64_t off, int heads) {
    std::vector<float> x(static_cast<size_t>(n) * heads * c.dim), y(x.size());
    for (int s = 0; s < n; ++s)
      for (int64_t i = 0; i < heads * c.dim; ++i) x[s * heads * c.dim + i] = bf16_to_f32(qkv[s * ld + off + i]);
    ref::RopeParams p = rp;
    p.num_heads = heads;
    EXPECT_TRUE(ref::rope(x.data(), positions.data(), n, p, tables.value(), y.data()).ok());
    return round_bf16(y);
  };
  const std::vector<uint16_t> q_r = rope_rows(0, c.heads), k_r = rope_rows(koff, c.kv_heads);
  std::vector<uint16_t> k_want = d.k, v_want = d.v;
  for (int s = 0; s < n; ++s) {
    if (slots[s] < 0) continue;
    for (int64_t i = 0; i < kvw; ++i) {
      k_want[slots[s] * kvw + i] = k_r[s * kvw + i];
      v_want[slots[s] * kvw + i] = qkv[s * ld + voff + i];
    }
  }
  std::vector<float> qf(q_r.size());
  for (size_t i = 0; i < qf.size(); ++i) qf[i] = bf16_to_f32(q_r[i]);
  Result<std::vector<float>> want_r = reference_attention(ac, d, qf, k_want, v_want);
  ASSERT_TRUE(want_r.ok()) << want_r.status().message();
  const std::vector<float>& want = want_r.value();
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.dim));

  // The fused path on the GPU: raw qkv, stale pools.
  DeviceBuffer dqkv = upload(qkv), dk = upload(d.k), dv = upload(d.v), dqs = upload(d.q_start),
               dkv = upload(d.kv_len), dpt = upload(d.page_table), dpos = upload(positions), dslot = upload(slots),
               dinv = upload(tables.value().inv_freq);
  std::vector<uint16_t> out(static_cast<size_t>(n) * qw, 0x7fc1);
  DeviceBuffer dout = upload(out);
  PagedAttentionParams p;
  p.num_heads = c.heads;
  p.num_kv_heads = c.kv_heads;
  p.head_dim = p.v_head_dim = c.dim;
  p.page_size = ac.page_size;
  p.scale = static_cast<float>(scale);
  PagedAttentionBatch b;
  b.num_seqs = n;
  b.q_start = static_cast<const int32_t*>(dqs.data());
  b.kv_len = static_cast<const int32_t*>(dkv.data());
  b.page_table = static_cast<const int32_t*>(dpt.data());
  b.page_table_stride = d.pt_stride;
  b.num_tokens = n;
  b.max_q_len = 1;
  b.max_kv_len = d.max_kv_len;
  const auto* base = static_cast<const uint16_t*>(dqkv.data());
  PagedAttentionRope r;
  r.k = base + koff;
  r.v = base + voff;
  r.ld = ld;
  r.k_cache = dk.data();
  r.v_cache = dv.data();
  r.positions = static_cast<const int32_t*>(dpos.data());
  r.slots = static_cast<const int32_t*>(dslot.data());
  r.inv_freq = static_cast<const float*>(dinv.data());
  r.rotary_dim = c.rotary;
  r.interleaved = c.interleaved;
  r.attention_factor = tables.value().attention_factor;
  auto ws = DeviceBuffer::allocate(std::max<size_t>(paged_attention_workspace_bytes(p, n, n, d.max_kv_len), 16));
  ASSERT_TRUE(ws.ok());
  ASSERT_TRUE(ws->zero().ok());
  Result<Stream> stream = Stream::create();
  ASSERT_TRUE(stream.ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  Status st = paged_attention(base, ld, dk.data(), dv.data(), dout.data(), p, b, ws->data(), ws->bytes(),
                              stream->get(), &r);
  ASSERT_TRUE(st.ok()) << describe(c) << ": " << st.message();
  ASSERT_EQ(cudaStreamSynchronize(stream->get()), cudaSuccess);
  std::vector<uint16_t> k_got(d.k.size()), v_got(d.v.size());
  ASSERT_TRUE(dout.copy_to_host(out.data(), out.size() * 2).ok());
  ASSERT_TRUE(dk.copy_to_host(k_got.data(), k_got.size() * 2).ok());
  ASSERT_TRUE(dv.copy_to_host(v_got.data(), v_got.size() * 2).ok());

  double max_err = 0, max_cache_err = 0;
  int bad = 0, cache_bad = 0;
  for (int s = 0; s < n; ++s) {
    if (c.kv_lens[s] == 0) continue;  // padded row: its output is not used
    for (int64_t i = 0; i < qw; ++i) {
      const double g = bf16_to_f32(out[s * qw + i]), e = std::fabs(g - want[s * qw + i]);
      if (!std::isfinite(g) || e > kAbsTol) ++bad;
      max_err = std::max(max_err, std::isfinite(g) ? e : INFINITY);
    }
  }
  // The slot rows hold the roped k / the v (one bf16 step of rounding slack for
  // the GPU's fused multiply-adds); every other element is untouched.
  for (size_t i = 0; i < k_got.size(); ++i) {
    const double ek = std::fabs(bf16_to_f32(k_got[i]) - bf16_to_f32(k_want[i]));
    const double tol = 1e-2 * std::max(1.0, std::fabs(static_cast<double>(bf16_to_f32(k_want[i]))));
    max_cache_err = std::max(max_cache_err, ek);
    if (ek > tol || v_got[i] != v_want[i]) ++cache_bad;
  }
  std::printf("%-78s max abs err %.3e, cache %.3e\n", describe(c).c_str(), max_err, max_cache_err);
  EXPECT_EQ(bad, 0) << describe(c) << ": max abs err " << max_err;
  EXPECT_EQ(cache_bad, 0) << describe(c) << ": cache elements off, max k err " << max_cache_err;
}

TEST(PagedAttentionGpu, DecodeRopeInsideAttention) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver";
  const std::vector<std::pair<int, int>> heads = {{4, 4}, {8, 4}, {8, 2}, {28, 4}, {16, 2}, {40, 2}};
  for (int dim : {64, 128}) {
    for (auto [h, kvh] : heads) {
      for (bool interleaved : {false, true}) {
        RopeCase c;
        c.heads = h, c.kv_heads = kvh, c.dim = dim, c.rotary = dim, c.interleaved = interleaved;
        c.kv_lens = {1, 17, 64, 65, 288, 0};
        run_case(c);  // short bound (<= 512): 64-key splits
        c.kv_lens = {300, 513, 2000};
        c.bound = 2048;  // long bound: fewer, longer splits
        run_case(c);
      }
    }
  }
  RopeCase partial;  // rotary_dim < head_dim: the last dims pass through; YaRN scaling
  partial.rotary = 64;
  partial.factor = 4.0;
  for (bool interleaved : {false, true}) {
    partial.interleaved = interleaved;
    partial.kv_lens = {5, 100, 700};
    partial.bound = 2048;
    run_case(partial);
  }
  RopeCase many;  // 64 sequences (batch decode graphs)
  for (int i = 0; i < 64; ++i) many.kv_lens.push_back(1 + (i * 37) % 500);
  run_case(many);
}

// Argument checks (no device needed: they fail before any launch).
TEST(PagedAttentionArgs, RejectsBadRope) {
  PagedAttentionParams p;
  p.num_heads = 8, p.num_kv_heads = 2, p.head_dim = p.v_head_dim = 128, p.page_size = 16, p.scale = 0.1f;
  alignas(16) static int32_t meta[64] = {0, 1, 64};
  alignas(16) static uint16_t buf[4096];
  PagedAttentionBatch b;
  b.num_seqs = 1, b.q_start = meta, b.kv_len = meta + 2, b.page_table = meta + 4, b.page_table_stride = 4;
  b.num_tokens = 1, b.max_q_len = 1, b.max_kv_len = 64;
  PagedAttentionRope r;
  r.k = buf, r.v = buf, r.ld = 2048, r.k_cache = buf, r.v_cache = buf;
  r.positions = meta, r.slots = meta, r.inv_freq = reinterpret_cast<const float*>(buf), r.rotary_dim = 128;
  auto call = [&](const PagedAttentionParams& pp, const PagedAttentionBatch& bb, const PagedAttentionRope& rr) {
    return paged_attention(buf, 0, buf, buf, buf, pp, bb, buf, sizeof(buf), nullptr, &rr);
  };
  auto expect = [](const Status& s, const char* needle) {
    ASSERT_FALSE(s.ok()) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  PagedAttentionBatch prefill = b;
  prefill.max_q_len = 2, prefill.num_tokens = 2;
  expect(call(p, prefill, r), "decode batch");
  PagedAttentionParams big = p;
  big.head_dim = big.v_head_dim = 256;
  expect(call(big, b, r), "head_dim <= 128");
  PagedAttentionRope x = r;
  x.slots = nullptr;
  expect(call(p, b, x), "null");
  x = r;
  x.k_cache = buf + 8;
  expect(call(p, b, x), "k_pool/v_pool");
  x = r;
  x.rotary_dim = 7;
  expect(call(p, b, x), "rotary_dim");
  x = r;
  x.ld = 100;
  expect(call(p, b, x), "row stride");
  EXPECT_TRUE(paged_attention_rope_supported(p, 1));
  EXPECT_FALSE(paged_attention_rope_supported(p, 2));
  EXPECT_FALSE(paged_attention_rope_supported(big, 1));
}

}  // namespace
}  // namespace ds::cuda::testing
