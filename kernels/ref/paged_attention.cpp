#include "kernels/ref/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/ref/convert.h"
#include "kernels/ref/parallel.h"

namespace ds::ref {
namespace {

int64_t slot_offset(const AttnSequence& s, int64_t j, const PagedKvLayer& l, int64_t dim) {
  const int64_t page = s.pages[j / l.page_size];
  return ((page * l.page_size + j % l.page_size) * l.num_kv_heads) * dim;
}

}  // namespace

Status check_sequences(const AttnSequence* seqs, int64_t num_seqs, int64_t num_tokens, const PagedKvLayer& layer) {
  if (layer.page_size <= 0 || layer.num_kv_heads <= 0 || layer.k_dim <= 0 || layer.v_dim < 0)
    return Status::Error("kv cache layer has invalid geometry");
  DS_RETURN_IF_ERROR(check_float_dtype(layer.dtype, "kv cache"));
  std::vector<char> covered(static_cast<size_t>(num_tokens), 0);
  for (int64_t i = 0; i < num_seqs; ++i) {
    const AttnSequence& s = seqs[i];
    if (s.first_token < 0 || s.num_tokens < 0 || s.first_token + s.num_tokens > num_tokens || s.num_cached < 0)
      return Status::Error(StrCat() << "sequence " << i << ": tokens [" << s.first_token << ", "
                                    << s.first_token + s.num_tokens << ") / cached " << s.num_cached
                                    << " do not fit a step of " << num_tokens << " tokens");
    for (int64_t t = s.first_token; t < s.first_token + s.num_tokens; ++t) {
      if (covered[t]) return Status::Error(StrCat() << "sequence " << i << " overlaps another at step token " << t);
      covered[t] = 1;
    }
    const int64_t history = s.num_cached + s.num_tokens;
    const int64_t need = (history + layer.page_size - 1) / layer.page_size;
    if (s.num_pages < need || (need > 0 && !s.pages))
      return Status::Error(StrCat() << "sequence " << i << ": " << history << " tokens need " << need
                                    << " pages but its page table has " << s.num_pages);
    for (int64_t p = 0; p < need; ++p)
      if (s.pages[p] < 0 || s.pages[p] >= layer.num_pages)
        return Status::Error(StrCat() << "sequence " << i << ": page table entry " << p << " = " << s.pages[p]
                                      << " is outside the pool [0, " << layer.num_pages << ")");
  }
  return Status::Ok();
}

Status kv_cache_write(const float* k, const float* v, int64_t num_tokens, const AttnSequence* seqs, int64_t num_seqs,
                      const PagedKvLayer& layer) {
  DS_RETURN_IF_ERROR(check_sequences(seqs, num_seqs, num_tokens, layer));
  const int64_t kw = layer.num_kv_heads * layer.k_dim, vw = layer.num_kv_heads * layer.v_dim;
  for (int64_t i = 0; i < num_seqs; ++i) {
    const AttnSequence& s = seqs[i];
    for (int64_t t = 0; t < s.num_tokens; ++t) {
      const int64_t j = s.num_cached + t;
      const int64_t row = s.first_token + t;
      store_row(k + row * kw, kw, layer.k, layer.dtype, slot_offset(s, j, layer, layer.k_dim));
      if (vw > 0) store_row(v + row * vw, vw, layer.v, layer.dtype, slot_offset(s, j, layer, layer.v_dim));
    }
  }
  return Status::Ok();
}

Status paged_attention(const float* q, int64_t num_tokens, const AttnSequence* seqs, int64_t num_seqs,
                       const PagedKvLayer& layer, const PagedAttentionParams& p, float* out) {
  if (p.num_heads <= 0 || p.num_kv_heads <= 0 || p.num_heads % p.num_kv_heads != 0)
    return Status::Error(StrCat() << "paged_attention: num_heads " << p.num_heads << " is not a positive multiple of num_kv_heads "
                                  << p.num_kv_heads);
  if (p.num_kv_heads != layer.num_kv_heads || p.head_dim != layer.k_dim || p.v_head_dim != layer.v_dim || p.v_head_dim <= 0)
    return Status::Error(StrCat() << "paged_attention: heads/dims (" << p.num_kv_heads << " kv heads, head_dim " << p.head_dim
                                  << ", v_head_dim " << p.v_head_dim << ") do not match the cache layer ("
                                  << layer.num_kv_heads << ", " << layer.k_dim << ", " << layer.v_dim << ")");
  DS_RETURN_IF_ERROR(check_sequences(seqs, num_seqs, num_tokens, layer));
  const int64_t group = p.num_heads / p.num_kv_heads;
  const int64_t qw = p.num_heads * p.head_dim, ow = p.num_heads * p.v_head_dim;
  const float scale = static_cast<float>(p.scale);
  // Work items: (sequence, token) pairs, split across threads.
  std::vector<std::pair<int64_t, int64_t>> items;
  int64_t max_ctx = 1;
  for (int64_t si = 0; si < num_seqs; ++si)
    for (int64_t t = 0; t < seqs[si].num_tokens; ++t) {
      items.emplace_back(si, t);
      max_ctx = std::max(max_ctx, seqs[si].num_cached + t + 1);
    }
  const int64_t cost = max_ctx * p.num_heads * (p.head_dim + p.v_head_dim);
  parallel_for(static_cast<int64_t>(items.size()), cost, [&](int64_t begin, int64_t end) {
    std::vector<float> krow(static_cast<size_t>(p.head_dim)), vrow(static_cast<size_t>(p.v_head_dim));
    std::vector<float> scores, acc(static_cast<size_t>(p.v_head_dim));
    for (int64_t it = begin; it < end; ++it) {
      const AttnSequence& s = seqs[items[it].first];
      const int64_t t = items[it].second;
      const int64_t row = s.first_token + t;
      const int64_t ctx = s.num_cached + t + 1;  // causal: history up to itself
      scores.resize(static_cast<size_t>(ctx));
      for (int64_t h = 0; h < p.num_heads; ++h) {
        const int64_t kvh = h / group;
        const float* qh = q + row * qw + h * p.head_dim;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < ctx; ++j) {
          load_row(layer.k, layer.dtype, slot_offset(s, j, layer, p.head_dim) + kvh * p.head_dim, p.head_dim, krow.data());
          scores[j] = dot(qh, krow.data(), p.head_dim) * scale;
          mx = std::max(mx, scores[j]);
        }
        float denom = 0.0f;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t j = 0; j < ctx; ++j) {
          const float e = std::exp(scores[j] - mx);
          denom += e;
          load_row(layer.v, layer.dtype, slot_offset(s, j, layer, p.v_head_dim) + kvh * p.v_head_dim, p.v_head_dim,
                   vrow.data());
          for (int64_t d = 0; d < p.v_head_dim; ++d) acc[d] += e * vrow[d];
        }
        float* o = out + row * ow + h * p.v_head_dim;
        for (int64_t d = 0; d < p.v_head_dim; ++d) o[d] = acc[d] / denom;
      }
    }
  });
  return Status::Ok();
}

}  // namespace ds::ref
