#include "serve/tokenizer/word_cache.h"

#include <cstring>

namespace ds::tok {

uint64_t hash_bytes(std::string_view s) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ULL;
  uint64_t h = 0x243F6A8885A308D3ULL ^ (s.size() * kMul);
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * kMul;
    h ^= h >> 31;
  }
  h *= 0xBF58476D1CE4E5B9ULL;
  return h ^ (h >> 29);
}

WordCache::WordCache() {
  for (auto& s : shards_) s.slots.resize(kSlotsPerShard);
}

bool WordCache::lookup(std::string_view word, uint64_t hash, std::vector<int32_t>* out) const {
  const Shard& sh = shards_[hash % kShards];
  std::lock_guard<std::mutex> lock(sh.mu);
  for (size_t i = (hash >> 8) & (kSlotsPerShard - 1);; i = (i + 1) & (kSlotsPerShard - 1)) {
    const Slot& s = sh.slots[i];
    if (s.key_len == 0) return false;
    if (s.hash == hash && s.key_len == word.size() &&
        std::memcmp(sh.keys.data() + s.key_off, word.data(), word.size()) == 0) {
      out->insert(out->end(), sh.ids.begin() + s.ids_off, sh.ids.begin() + s.ids_off + s.ids_len);
      return true;
    }
  }
}

void WordCache::insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t n) {
  if (word.empty() || word.size() > kMaxWordBytes || n == 0) return;
  Shard& sh = shards_[hash % kShards];
  std::lock_guard<std::mutex> lock(sh.mu);
  if (sh.count >= kMaxEntriesPerShard || sh.keys.size() + word.size() > kMaxKeyBytesPerShard ||
      sh.ids.size() + n > kMaxIdsPerShard) {
    return;
  }
  for (size_t i = (hash >> 8) & (kSlotsPerShard - 1);; i = (i + 1) & (kSlotsPerShard - 1)) {
    Slot& s = sh.slots[i];
    if (s.key_len == 0) {
      s.hash = hash;
      s.key_off = static_cast<uint32_t>(sh.keys.size());
      s.key_len = static_cast<uint32_t>(word.size());
      s.ids_off = static_cast<uint32_t>(sh.ids.size());
      s.ids_len = static_cast<uint32_t>(n);
      sh.keys.append(word);
      sh.ids.insert(sh.ids.end(), ids, ids + n);
      ++sh.count;
      return;
    }
    if (s.hash == hash && s.key_len == word.size() &&
        std::memcmp(sh.keys.data() + s.key_off, word.data(), word.size()) == 0) {
      return;  // another thread got there first
    }
  }
}

}  // namespace ds::tok
