// Added tokens of tokenizer.json ("added_tokens"): split out of the input
// before normalization (normalized: false) or after it (normalized: true),
// leftmost-longest, honoring single_word, lstrip and rstrip like HF
// tokenizers' AddedVocabulary.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/common/status.h"

namespace ds::tok {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// One piece of a split: an added token (id >= 0) or text to tokenize (id < 0).
struct AddedSplit {
  int32_t id;
  size_t begin, end;
};

// Byte trie with leftmost-longest matching.
class TokenTrie {
 public:
  void add(std::string_view pattern, int32_t value);
  bool empty() const { return values_.size() <= 1 && values_[0] < 0; }
  // Leftmost-longest match at or after `from`: returns false if none.
  bool find(std::string_view text, size_t from, size_t* begin, size_t* end, int32_t* value) const;

 private:
  int32_t child(int32_t node, unsigned char c) const;
  std::vector<int32_t> values_{-1};  // per node: token index or -1
  std::unordered_map<uint64_t, int32_t> edges_;
  std::vector<int32_t> root_{std::vector<int32_t>(256, -1)};
  int first_bytes_ = 0;       // distinct first bytes of the patterns
  unsigned char first_ = 0;   // the first byte when there is only one
};

class AddedVocab {
 public:
  // Registers `tokens` in order the way HF tokenizers does when it loads
  // tokenizer.json: the "id" field is not trusted; a token takes its id from
  // an earlier added token or the model vocab (`model_id`), else the next
  // free id starting at `model_vocab_count`. `normalize` is applied to the
  // content of normalized tokens before matching.
  template <typename ModelId, typename Normalize>
  Status build(const std::vector<AddedToken>& tokens, size_t model_vocab_count, ModelId&& model_id,
               Normalize&& normalize);

  // The token registered under `id`, or nullptr.
  const AddedToken* by_id(int32_t id) const;
  std::optional<int32_t> id_of(std::string_view content) const;
  bool is_special_content(std::string_view content) const;
  int32_t max_id() const { return max_id_; }
  bool empty() const { return by_id_.empty(); }

  // Splits `text` on the raw (normalized=false) or normalized tokens.
  void split(std::string_view text, bool normalized, std::vector<AddedSplit>* out) const;

 private:
  std::unordered_map<std::string, int32_t> content_to_id_;
  std::unordered_map<int32_t, AddedToken> by_id_;
  std::unordered_map<std::string, bool> special_contents_;
  TokenTrie raw_trie_, normalized_trie_;
  int32_t max_id_ = -1;
};

template <typename ModelId, typename Normalize>
Status AddedVocab::build(const std::vector<AddedToken>& tokens, size_t model_vocab_count,
                         ModelId&& model_id, Normalize&& normalize) {
  std::vector<const AddedToken*> specials, others;
  for (const AddedToken& t : tokens) {
    if (t.special && !t.content.empty() && !special_contents_.count(t.content)) {
      special_contents_[t.content] = true;
      specials.push_back(&t);
    }
  }
  int64_t next_id = static_cast<int64_t>(model_vocab_count);
  std::vector<const AddedToken*> registered;
  for (const AddedToken& t : tokens) {
    if (t.content.empty()) continue;
    bool duplicate = false;
    for (const AddedToken* r : registered) {
      duplicate = duplicate || (r->content == t.content && r->single_word == t.single_word &&
                                r->lstrip == t.lstrip && r->rstrip == t.rstrip &&
                                r->normalized == t.normalized && r->special == t.special);
    }
    if (duplicate) continue;
    int32_t id;
    if (auto it = content_to_id_.find(t.content); it != content_to_id_.end()) {
      id = it->second;
    } else if (std::optional<int32_t> mid = model_id(t.content)) {
      id = *mid;
    } else {
      if (next_id > INT32_MAX) return Status::Error("added_tokens: too many tokens");
      id = static_cast<int32_t>(next_id++);
    }
    content_to_id_[t.content] = id;
    AddedToken stored = t;
    stored.id = id;
    by_id_[id] = stored;
    max_id_ = std::max(max_id_, id);
    if (!special_contents_.count(t.content)) others.push_back(&t);
    registered.push_back(&t);
  }
  // Patterns: special tokens first, then the others (the first one wins on
  // identical patterns); each maps to the id its content has now.
  for (const auto* list : {&specials, &others}) {
    for (const AddedToken* t : *list) {
      const int32_t id = content_to_id_.at(t->content);
      if (t->normalized) {
        std::string n;
        DS_RETURN_IF_ERROR(normalize(t->content, &n));
        if (!n.empty()) normalized_trie_.add(n, id);
      } else {
        raw_trie_.add(t->content, id);
      }
    }
  }
  return Status::Ok();
}

}  // namespace ds::tok
