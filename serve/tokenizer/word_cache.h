// Thread-safe bounded cache: pre-token bytes -> token ids. Sharded, each shard
// an open-addressing table over flat arenas (no allocation per entry). When a
// shard is full new words are simply not cached, as in HF tokenizers.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace ds::tok {

uint64_t hash_bytes(std::string_view s);

class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 255;

  WordCache();
  WordCache(const WordCache&) = delete;
  WordCache& operator=(const WordCache&) = delete;

  // On a hit appends the ids to *out and returns true.
  bool lookup(std::string_view word, uint64_t hash, std::vector<int32_t>* out) const;
  void insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t n);

 private:
  static constexpr size_t kShards = 32;
  static constexpr size_t kSlotsPerShard = 8192;  // power of two
  static constexpr size_t kMaxEntriesPerShard = kSlotsPerShard / 2;
  // Arena bounds per shard (about 12 MiB in all, whatever the input).
  static constexpr size_t kMaxKeyBytesPerShard = 128 * 1024;
  static constexpr size_t kMaxIdsPerShard = 64 * 1024;
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0, key_len = 0;  // key_len == 0: empty
    uint32_t ids_off = 0, ids_len = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    std::vector<Slot> slots;
    std::string keys;
    std::vector<int32_t> ids;
    size_t count = 0;
  };
  std::array<Shard, kShards> shards_;
};

}  // namespace ds::tok
