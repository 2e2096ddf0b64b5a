#include "serve/tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <functional>

#include <nlohmann/json.hpp>

#include "serve/tokenizer/utf8_util.h"

namespace ds::tok {
namespace {

using json = nlohmann::json;
constexpr uint32_t kNoRank = ~uint32_t{0};
constexpr size_t kLinearMergeMax = 48;  // words up to this many symbols use the O(n^2) loop

Result<std::optional<std::string>> optional_string(const json& j, const char* key,
                                                   const std::string& what) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return Status::Error(StrCat() << what << "." << key << " must be a string or null");
  return std::optional<std::string>(it->get<std::string>());
}

Result<bool> optional_bool(const json& j, const char* key, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return false;
  if (!it->is_boolean()) return Status::Error(StrCat() << what << "." << key << " must be a boolean");
  return it->get<bool>();
}

}  // namespace

void VocabTable::reserve(size_t n) {
  entries_.reserve(n);
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap > slots_.size()) {
    slots_.assign(cap, 0);
    mask_ = cap - 1;
    for (size_t e = 0; e < entries_.size(); ++e) {
      const Entry& en = entries_[e];
      const uint64_t h = hash_bytes(std::string_view(arena_.data() + en.off, en.len));
      size_t i = h & mask_;
      while (slots_[i] != 0) i = (i + 1) & mask_;
      slots_[i] = static_cast<uint32_t>(e + 1);
    }
  }
}

void VocabTable::grow() { reserve(std::max<size_t>(16, entries_.size() * 2)); }

void VocabTable::insert(std::string_view token, int32_t id) {
  if ((entries_.size() + 1) * 2 > slots_.size()) grow();
  const uint64_t h = hash_bytes(token);
  size_t i = h & mask_;
  for (;; i = (i + 1) & mask_) {
    const uint32_t e = slots_[i];
    if (e == 0) break;
    Entry& en = entries_[e - 1];
    if (en.hash == static_cast<uint32_t>(h) && en.len == token.size() &&
        std::memcmp(arena_.data() + en.off, token.data(), token.size()) == 0) {
      en.id = id;
      return;
    }
  }
  entries_.push_back({static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(token.size()),
                      static_cast<uint32_t>(h), id});
  arena_.append(token);
  slots_[i] = static_cast<uint32_t>(entries_.size());
}

void PairMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  entries_.assign(cap, Entry{});
  mask_ = cap - 1;
  size_ = 0;
}

void PairMap::insert_or_assign(int32_t a, int32_t b, Value v) {
  DS_CHECK(size_ * 2 < entries_.size(), "PairMap over capacity");
  const uint64_t key = (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  for (size_t i = slot(key);; i = (i + 1) & mask_) {
    Entry& e = entries_[i];
    if (e.key == key) { e.value = v; return; }
    if (e.key == kEmpty) { e.key = key; e.value = v; ++size_; return; }
  }
}

Result<BpeModel> BpeModel::from_json(const json& j, const std::string& what, const BpeSource* source) {
  if (!j.is_object()) return Status::Error(what + ": expected an object");
  if (auto t = j.find("type"); t != j.end()) {
    if (!t->is_string()) return Status::Error(what + ".type must be a string");
    if (t->get<std::string>() != "BPE") {
      return Status::Error(StrCat() << what << ": unsupported model type '" << t->get<std::string>()
                                    << "' (only BPE is supported)");
    }
  }
  BpeModel m;
  if (auto d = j.find("dropout"); d != j.end() && !d->is_null()) {
    if (!d->is_number()) return Status::Error(what + ".dropout must be a number or null");
    const double p = d->get<double>();
    if (p < 0.0 || p > 1.0) return Status::Error(StrCat() << what << ".dropout " << p << " is not in [0, 1]");
    if (p > 0.0) return Status::Error(StrCat() << what << ".dropout " << p << " is not supported (non-deterministic)");
  }
  DS_ASSIGN_OR_RETURN(m.unk_token_, optional_string(j, "unk_token", what));
  DS_ASSIGN_OR_RETURN(m.prefix_, optional_string(j, "continuing_subword_prefix", what));
  DS_ASSIGN_OR_RETURN(m.suffix_, optional_string(j, "end_of_word_suffix", what));
  // An empty prefix / suffix changes nothing (Qwen writes "").
  if (m.prefix_ && m.prefix_->empty()) m.prefix_.reset();
  if (m.suffix_ && m.suffix_->empty()) m.suffix_.reset();
  DS_ASSIGN_OR_RETURN(m.fuse_unk_, optional_bool(j, "fuse_unk", what));
  DS_ASSIGN_OR_RETURN(m.byte_fallback_, optional_bool(j, "byte_fallback", what));
  DS_ASSIGN_OR_RETURN(m.ignore_merges_, optional_bool(j, "ignore_merges", what));

  auto v = j.find("vocab");
  if (v == j.end() || !v->is_object()) return Status::Error(what + ".vocab: missing or not an object");
  const bool vocab_from_source = source != nullptr && source->has_vocab;
  m.vocab_.reserve(vocab_from_source ? source->vocab.size() : v->size());
  int64_t max_id = -1;
  auto add_token = [&](const std::string& token, const json& value) -> Status {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > INT32_MAX) {
      return Status::Error(StrCat() << what << ".vocab[\"" << token << "\"]: id must be an integer in [0, 2^31)");
    }
    const int64_t id = value.get<int64_t>();
    m.vocab_.insert(token, static_cast<int32_t>(id));
    max_id = std::max(max_id, id);
    return Status::Ok();
  };
  if (vocab_from_source) {
    for (const auto& [token, value] : source->vocab) DS_RETURN_IF_ERROR(add_token(token, value));
  } else {
    for (auto it = v->begin(); it != v->end(); ++it) DS_RETURN_IF_ERROR(add_token(it.key(), it.value()));
  }
  if (max_id >= static_cast<int64_t>(4 * m.vocab_.size() + (1 << 20))) {
    return Status::Error(StrCat() << what << ".vocab: ids are too sparse (max id " << max_id << " for "
                                  << m.vocab_.size() << " tokens)");
  }
  m.id_to_entry_.assign(static_cast<size_t>(max_id + 1), 0);
  for (size_t e = 0; e < m.vocab_.size(); ++e) m.id_to_entry_[m.vocab_.id_at(e)] = static_cast<uint32_t>(e + 1);

  auto mg = j.find("merges");
  if (mg == j.end() || !mg->is_array()) return Status::Error(what + ".merges: missing or not an array");
  const bool merges_from_source = source != nullptr && source->has_merges;
  const size_t n_merges = merges_from_source ? source->merges.size() : mg->size();
  m.merges_.reserve(n_merges);
  const size_t prefix_len = m.prefix_ ? m.prefix_->size() : 0;
  uint32_t rank = 0;
  std::string merged;
  for (size_t i = 0; i < n_merges; ++i) {
    const json& e = merges_from_source ? source->merges[i] : (*mg)[i];
    std::string a, b;
    if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else if (e.is_string()) {
      const std::string& line = e.get_ref<const std::string&>();
      if (line.rfind("#version", 0) == 0) continue;
      const size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos) {
        return Status::Error(StrCat() << what << ".merges[" << i << "]: \"" << line
                                      << "\" is not two tokens separated by one space");
      }
      a = line.substr(0, sp);
      b = line.substr(sp + 1);
    } else {
      return Status::Error(StrCat() << what << ".merges[" << i << "]: expected [\"a\", \"b\"] or \"a b\"");
    }
    const std::optional<int32_t> ia = m.vocab_.find(a), ib = m.vocab_.find(b);
    if (!ia || !ib) {
      return Status::Error(StrCat() << what << ".merges[" << i << "]: token '" << (!ia ? a : b)
                                    << "' is not in the vocab");
    }
    if (b.size() < prefix_len) {
      return Status::Error(StrCat() << what << ".merges[" << i << "]: '" << b << "' is shorter than the subword prefix");
    }
    merged.assign(a).append(b, prefix_len);
    const std::optional<int32_t> im = m.vocab_.find(merged);
    if (!im) {
      return Status::Error(StrCat() << what << ".merges[" << i << "]: merged token '" << merged
                                    << "' is not in the vocab");
    }
    m.merges_.insert_or_assign(*ia, *ib, {rank++, *im});
  }

  const auto& tables = byte_level_tables();
  m.all_bytes_ = !m.prefix_ && !m.suffix_;
  for (int byte = 0; byte < 256; ++byte) {
    std::string ch;
    utf8_append(&ch, tables.byte_to_cp[byte]);
    const std::optional<int32_t> id = m.vocab_.find(ch);
    m.byte_ids_[byte] = id.value_or(-1);
    if (!id) m.all_bytes_ = false;
  }
  m.cache_ = std::make_unique<WordCache>();
  return m;
}

std::optional<std::string_view> BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_entry_.size() || id_to_entry_[id] == 0) {
    return std::nullopt;
  }
  return vocab_.token_at(id_to_entry_[id] - 1);
}

Status BpeModel::tokenize(std::string_view word, bool byte_level, std::vector<int32_t>* out,
                          BpeScratch* sc) const {
  if (word.empty()) return Status::Ok();
  if (ignore_merges_) {
    std::string_view key = word;
    if (byte_level) {
      sc->mapped = byte_level_encode(word);
      key = sc->mapped;
    }
    if (std::optional<int32_t> id = vocab_.find(key)) {
      out->push_back(*id);
      return Status::Ok();
    }
  }
  const uint64_t h = hash_bytes(word);
  const bool cacheable = word.size() <= WordCache::kMaxWordBytes;
  if (cacheable && cache_->lookup(word, h, out)) return Status::Ok();

  sc->symbols.clear();
  if (byte_level && all_bytes_) {
    for (unsigned char b : word) sc->symbols.push_back(byte_ids_[b]);
  } else if (byte_level) {
    sc->mapped = byte_level_encode(word);
    DS_RETURN_IF_ERROR(initial_symbols(sc->mapped, sc));
  } else {
    DS_RETURN_IF_ERROR(initial_symbols(word, sc));
  }
  merge(sc);
  out->insert(out->end(), sc->symbols.begin(), sc->symbols.end());
  if (cacheable) cache_->insert(word, h, sc->symbols.data(), sc->symbols.size());
  return Status::Ok();
}

// HF BPE::merge_word before merging: one symbol per char, with the subword
// prefix/suffix, byte fallback and (fused) unknown tokens.
Status BpeModel::initial_symbols(std::string_view w, BpeScratch* sc) const {
  int32_t unk = -1;  // pending unknown token id
  std::string s;
  auto unk_id = [&]() -> Result<int32_t> {
    auto id = token_to_id(*unk_token_);
    if (!id) return Status::Error("unk_token '" + *unk_token_ + "' is not in the vocab");
    return *id;
  };
  size_t i = 0;
  while (i < w.size()) {
    const size_t len = utf8_len(static_cast<unsigned char>(w[i]));
    const bool first = i == 0, last = i + len >= w.size();
    s.clear();
    if (!first && prefix_) s += *prefix_;
    s.append(w.substr(i, len));
    if (last && suffix_) s += *suffix_;
    i += len;
    if (std::optional<int32_t> id = vocab_.find(s)) {
      if (unk >= 0) { sc->symbols.push_back(unk); unk = -1; }
      sc->symbols.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (unsigned char b : s) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        std::optional<int32_t> id = vocab_.find(std::string_view(name));
        if (!id) break;
        bytes.push_back(*id);
      }
      if (bytes.size() == s.size()) {
        sc->symbols.insert(sc->symbols.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (unk_token_) {
      DS_ASSIGN_OR_RETURN(int32_t id, unk_id());
      if (unk >= 0 && !fuse_unk_) sc->symbols.push_back(unk);
      if (unk < 0 || !fuse_unk_) unk = id;
    }
  }
  if (unk >= 0) sc->symbols.push_back(unk);
  return Status::Ok();
}

void BpeModel::merge(BpeScratch* sc) const {
  auto& sym = sc->symbols;
  size_t n = sym.size();
  if (n < 2) return;
  if (n > kLinearMergeMax) return merge_long(sc);
  auto& ranks = sc->ranks;
  auto& merged = sc->merged;
  ranks.resize(n);
  merged.resize(n);
  auto set_pair = [&](size_t i) {
    const PairMap::Value* v = merges_.find(sym[i], sym[i + 1]);
    ranks[i] = v ? v->rank : kNoRank;
    merged[i] = v ? v->id : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) set_pair(i);
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i) {
      if (ranks[i] < ranks[best]) best = i;
    }
    if (ranks[best] == kNoRank) break;
    sym[best] = merged[best];
    for (size_t i = best + 1; i + 1 < n; ++i) {
      sym[i] = sym[i + 1];
      ranks[i] = ranks[i + 1];
      merged[i] = merged[i + 1];
    }
    --n;
    if (best + 1 < n) set_pair(best);
    if (best > 0) set_pair(best - 1);
  }
  sym.resize(n);
}

// The HF algorithm for long words: a min-heap of (rank, position) over a
// linked list of symbols; stale entries are skipped when popped.
void BpeModel::merge_long(BpeScratch* sc) const {
  auto& sym = sc->symbols;
  const size_t n = sym.size();
  auto& prev = sc->prev;
  auto& next = sc->next;
  auto& heap = sc->heap;
  prev.resize(n);
  next.resize(n);
  heap.clear();
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  std::vector<uint8_t> alive(n, 1);
  auto cmp = std::greater<uint64_t>();
  auto push = [&](size_t pos) {
    if (next[pos] < 0) return;
    if (const PairMap::Value* v = merges_.find(sym[pos], sym[next[pos]])) {
      heap.push_back((uint64_t(v->rank) << 32) | pos);
      std::push_heap(heap.begin(), heap.end(), cmp);
    }
  };
  for (size_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    const uint64_t top = heap.back();
    heap.pop_back();
    const uint32_t rank = static_cast<uint32_t>(top >> 32);
    const size_t pos = static_cast<size_t>(top & 0xFFFFFFFFu);
    if (!alive[pos] || next[pos] < 0) continue;
    const size_t right = static_cast<size_t>(next[pos]);
    const PairMap::Value* v = merges_.find(sym[pos], sym[right]);
    if (v == nullptr || v->rank != rank) continue;  // stale entry
    sym[pos] = v->id;
    alive[right] = 0;
    next[pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = static_cast<int32_t>(pos);
    if (prev[pos] >= 0) push(static_cast<size_t>(prev[pos]));
    push(pos);
  }
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    if (alive[i]) sym[k++] = sym[i];
  }
  sym.resize(k);
}

}  // namespace ds::tok
