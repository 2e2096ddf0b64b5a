// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}): vocab,
// ranked merges (as ["a","b"] pairs or legacy "a b" strings), unk_token,
// fuse_unk, byte_fallback, ignore_merges, continuing_subword_prefix and
// end_of_word_suffix, with the merge order of HF tokenizers (lowest rank,
// then leftmost). Words are cached (pre-token bytes -> ids).
#pragma once

#include <array>
#include <cstring>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/common/status.h"
#include "serve/tokenizer/word_cache.h"

namespace ds::tok {

// Token string <-> id table: strings in one arena, open addressing on a
// 64-bit hash (no allocation per token).
class VocabTable {
 public:
  void reserve(size_t n);
  // Adds or re-maps `token`.
  void insert(std::string_view token, int32_t id);
  std::optional<int32_t> find(std::string_view token) const {
    const uint64_t h = hash_bytes(token);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint32_t e = slots_[i];
      if (e == 0) return std::nullopt;
      const Entry& en = entries_[e - 1];
      if (en.hash == static_cast<uint32_t>(h) && en.len == token.size() &&
          std::memcmp(arena_.data() + en.off, token.data(), token.size()) == 0) {
        return en.id;
      }
    }
  }
  size_t size() const { return entries_.size(); }
  // Entries are numbered 0..size()-1 in insertion order.
  std::string_view token_at(size_t entry) const {
    return std::string_view(arena_.data() + entries_[entry].off, entries_[entry].len);
  }
  int32_t id_at(size_t entry) const { return entries_[entry].id; }

 private:
  struct Entry {
    uint32_t off, len, hash;
    int32_t id;
  };
  void grow();
  std::string arena_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> slots_ = std::vector<uint32_t>(16, 0);  // entry index + 1, 0 = empty
  size_t mask_ = 15;
};

// Open-addressing map (left id, right id) -> (rank, merged id).
class PairMap {
 public:
  struct Value {
    uint32_t rank;
    int32_t id;
  };
  void reserve(size_t n);
  void insert_or_assign(int32_t a, int32_t b, Value v);
  const Value* find(int32_t a, int32_t b) const {
    const uint64_t key = (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      const Entry& e = entries_[i];
      if (e.key == key) return &e.value;
      if (e.key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Entry {
    uint64_t key = kEmpty;
    Value value{};
  };
  size_t slot(uint64_t key) const { return ((key * 0x9E3779B97F4A7C15ULL) >> 20) & mask_; }
  std::vector<Entry> entries_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// Per-call scratch buffers of the merge loop.
struct BpeScratch {
  std::vector<int32_t> symbols;
  std::vector<uint32_t> ranks;
  std::vector<int32_t> merged;
  std::vector<uint32_t> lens;
  std::vector<int32_t> prev, next;
  std::vector<uint64_t> heap;
  std::string mapped;
};

// model.vocab entries and model.merges elements taken out of the JSON document
// while it is parsed (building them into the DOM would dominate load time).
struct BpeSource {
  bool has_vocab = false, has_merges = false;
  std::vector<std::pair<std::string, nlohmann::json>> vocab;
  std::vector<nlohmann::json> merges;
};

class BpeModel {
 public:
  // With `source`, the vocab / merges it holds replace the (then empty) ones of `j`.
  static Result<BpeModel> from_json(const nlohmann::json& j, const std::string& what,
                                    const BpeSource* source = nullptr);

  BpeModel() = default;
  BpeModel(BpeModel&&) noexcept = default;
  BpeModel& operator=(BpeModel&&) noexcept = default;

  // Appends the ids of one pre-token. With `byte_level` the word is raw bytes
  // that the model sees through the GPT-2 byte -> unicode mapping.
  Status tokenize(std::string_view word, bool byte_level, std::vector<int32_t>* out,
                  BpeScratch* scratch) const;

  std::optional<int32_t> token_to_id(std::string_view token) const { return vocab_.find(token); }
  // nullopt if the id is not in the vocab.
  std::optional<std::string_view> id_to_token(int32_t id) const;
  int32_t max_id() const { return static_cast<int32_t>(id_to_entry_.size()) - 1; }
  size_t vocab_count() const { return vocab_.size(); }

 private:
  Status initial_symbols(std::string_view w, BpeScratch* sc) const;
  void merge(BpeScratch* sc) const;
  void merge_long(BpeScratch* sc) const;

  VocabTable vocab_;
  std::vector<uint32_t> id_to_entry_;  // id -> vocab_ entry + 1 (0: no such id)
  PairMap merges_;
  std::array<int32_t, 256> byte_ids_{};  // byte-level char of each byte -> id (-1: absent)
  bool all_bytes_ = false;               // every byte-level char is in the vocab
  std::optional<std::string> unk_token_;
  std::optional<std::string> prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::unique_ptr<WordCache> cache_;
};

}  // namespace ds::tok
