// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}): vocab,
// ranked merges (as ["a","b"] pairs or legacy "a b" strings), unk_token,
// fuse_unk, byte_fallback, ignore_merges, continuing_subword_prefix and
// end_of_word_suffix, with the merge order of HF tokenizers (lowest rank,
// then leftmost). Words are cached (pre-token bytes -> ids).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "runtime/common/status.h"
#include "serve/tokenizer/word_cache.h"

namespace ds::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return hash_bytes(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

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

class BpeModel {
 public:
  static Result<BpeModel> from_json(const nlohmann::json& j, const std::string& what);

  BpeModel() = default;
  BpeModel(BpeModel&&) noexcept = default;
  BpeModel& operator=(BpeModel&&) noexcept = default;

  // Appends the ids of one pre-token. With `byte_level` the word is raw bytes
  // that the model sees through the GPT-2 byte -> unicode mapping.
  Status tokenize(std::string_view word, bool byte_level, std::vector<int32_t>* out,
                  BpeScratch* scratch) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // nullptr if the id is not in the vocab.
  const std::string* id_to_token(int32_t id) const;
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }
  size_t vocab_count() const { return vocab_.size(); }

 private:
  Status initial_symbols(std::string_view w, BpeScratch* sc) const;
  void merge(BpeScratch* sc) const;
  void merge_long(BpeScratch* sc) const;

  StringIdMap vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<uint8_t> has_id_;
  PairMap merges_;
  std::array<int32_t, 256> byte_ids_{};  // byte-level char of each byte -> id (-1: absent)
  bool all_bytes_ = false;               // every byte-level char is in the vocab
  std::optional<std::string> unk_token_;
  std::optional<std::string> prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::unique_ptr<WordCache> cache_;
};

}  // namespace ds::tok
