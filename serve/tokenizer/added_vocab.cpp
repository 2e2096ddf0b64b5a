#include "serve/tokenizer/added_vocab.h"

#include <cstring>

#include "serve/tokenizer/utf8_util.h"

namespace ds::tok {

int32_t TokenTrie::child(int32_t node, unsigned char c) const {
  if (node == 0) return root_[c];
  auto it = edges_.find((uint64_t(uint32_t(node)) << 8) | c);
  return it == edges_.end() ? -1 : it->second;
}

void TokenTrie::add(std::string_view pattern, int32_t value) {
  int32_t node = 0;
  for (unsigned char c : pattern) {
    int32_t next = child(node, c);
    if (next < 0) {
      next = static_cast<int32_t>(values_.size());
      values_.push_back(-1);
      if (node == 0) {
        root_[c] = next;
        first_ = c;
        ++first_bytes_;
      } else {
        edges_[(uint64_t(uint32_t(node)) << 8) | c] = next;
      }
    }
    node = next;
  }
  if (values_[node] < 0) values_[node] = value;  // the first identical pattern wins
}

bool TokenTrie::find(std::string_view text, size_t from, size_t* begin, size_t* end,
                     int32_t* value) const {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t start = from; start < n; ++start) {
    if (first_bytes_ == 1) {  // jump to the next occurrence of the only first byte
      const void* hit = std::memchr(p + start, first_, n - start);
      if (hit == nullptr) return false;
      start = static_cast<size_t>(static_cast<const unsigned char*>(hit) - p);
    }
    int32_t node = root_[p[start]];
    if (node < 0) continue;
    int32_t best = -1;
    size_t best_end = 0;
    size_t pos = start + 1;
    while (true) {
      if (values_[node] >= 0) {
        best = values_[node];
        best_end = pos;
      }
      if (pos >= n) break;
      node = child(node, p[pos]);
      if (node < 0) break;
      ++pos;
    }
    if (best >= 0) {
      *begin = start;
      *end = best_end;
      *value = best;
      return true;
    }
  }
  return false;
}

const AddedToken* AddedVocab::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

std::optional<int32_t> AddedVocab::id_of(std::string_view content) const {
  auto it = content_to_id_.find(std::string(content));
  if (it == content_to_id_.end()) return std::nullopt;
  return it->second;
}

bool AddedVocab::is_special_content(std::string_view content) const {
  return special_contents_.count(std::string(content)) > 0;
}

void AddedVocab::split(std::string_view text, bool normalized, std::vector<AddedSplit>* out) const {
  const TokenTrie& trie = normalized ? normalized_trie_ : raw_trie_;
  const size_t n = text.size();
  size_t start_offset = 0;
  size_t pos = 0;
  size_t b, e;
  int32_t id;
  while (pos < n && trie.find(text, pos, &b, &e, &id)) {
    pos = e;  // matching resumes after the match, whatever is stripped
    const AddedToken* tok = by_id(id);
    if (tok->single_word) {
      const bool start_space = b == 0 || !is_word_char(utf8_last(text.substr(0, b)));
      char32_t next_cp = 0;
      if (e < n) utf8_decode(text, e, &next_cp);
      const bool stop_space = e == n || !is_word_char(next_cp);
      if (!start_space || !stop_space) continue;
    }
    size_t start = b, stop = e;
    if (tok->lstrip) {
      size_t s = b;
      while (s > 0) {
        size_t len = 1;
        while ((static_cast<unsigned char>(text[s - len]) & 0xC0) == 0x80) ++len;
        char32_t cp;
        utf8_decode(text, s - len, &cp);
        if (!is_unicode_space(cp)) break;
        s -= len;
      }
      start = std::max(s, start_offset);
    }
    if (tok->rstrip) {
      while (stop < n) {
        char32_t cp;
        const size_t len = utf8_decode(text, stop, &cp);
        if (!is_unicode_space(cp)) break;
        stop += len;
      }
    }
    if (start_offset < start) out->push_back({-1, start_offset, start});
    out->push_back({id, start, stop});
    start_offset = stop;
  }
  if (start_offset < n) out->push_back({-1, start_offset, n});
}

}  // namespace ds::tok
