// The radix prefix cache on a real KvCache: full-page matching, reference
// counts, locking, and LRU eviction back to the pool.
#include <gtest/gtest.h>

#include "runtime/scheduler/radix_cache.h"

namespace ds {
namespace {

std::unique_ptr<KvCache> make_kv(int64_t pages, int64_t page_size) {
  KvCacheConfig c;
  c.dtype = DType::kF32;
  c.page_size = page_size;
  c.num_pages = pages;
  c.layers = {KvLayerGeometry{1, 2, 2}};
  auto kv = KvCache::create(c);
  EXPECT_TRUE(kv.ok()) << kv.status().message();
  return std::move(kv).value();
}

std::vector<int32_t> iota_tokens(int n, int start) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(start + i);
  return t;
}

// Allocates pages for `tokens`, caches the full ones, then drops the caller's references.
void cache_sequence(KvCache& kv, RadixCache& rc, const std::vector<int32_t>& tokens) {
  PageTable t;
  ASSERT_TRUE(kv.reserve(t, static_cast<int64_t>(tokens.size())).ok());
  auto added = rc.insert(tokens.data(), static_cast<int64_t>(tokens.size()) / kv.page_size(), t.pages);
  ASSERT_TRUE(added.ok());
  ASSERT_TRUE(kv.free(t).ok());
}

TEST(RadixCache, MatchesOnlyFullPagesUpToTheLimit) {
  auto kv = make_kv(16, 4);
  RadixCache rc(*kv);
  const auto seq = iota_tokens(10, 100);  // 2 full pages + 2 tokens
  cache_sequence(*kv, rc, seq);
  EXPECT_EQ(rc.cached_pages(), 2);
  EXPECT_EQ(kv->usage().used_pages, 2);  // the partial page went back
  EXPECT_EQ(rc.match(seq.data(), 10, 10).pages.size(), 2u);
  EXPECT_EQ(rc.match(seq.data(), 7, 10).pages.size(), 1u);   // second page incomplete in the query
  EXPECT_EQ(rc.match(seq.data(), 10, 1).pages.size(), 1u);   // max_pages
  auto other = seq;
  other[5] = 1;  // differs inside page 1
  EXPECT_EQ(rc.match(other.data(), 10, 10).pages.size(), 1u);
  other[0] = 1;
  EXPECT_EQ(rc.match(other.data(), 10, 10).pages.size(), 0u);
}

TEST(RadixCache, DuplicateInsertKeepsTheCachedPages) {
  auto kv = make_kv(16, 4);
  RadixCache rc(*kv);
  const auto seq = iota_tokens(8, 0);
  cache_sequence(*kv, rc, seq);
  auto first = rc.match(seq.data(), 8, 2).pages;
  cache_sequence(*kv, rc, seq);  // same tokens, other pages: not added, freed by the caller
  EXPECT_EQ(rc.cached_pages(), 2);
  EXPECT_EQ(kv->usage().used_pages, 2);
  EXPECT_EQ(rc.match(seq.data(), 8, 2).pages, first);
  for (int32_t p : first) EXPECT_EQ(kv->ref_count(p), 1);
}

TEST(RadixCache, LockedPathsSurviveEvictionAndLruGoesFirst) {
  auto kv = make_kv(16, 2);
  RadixCache rc(*kv);
  const auto a = iota_tokens(6, 0);    // 3 pages
  const auto b = iota_tokens(4, 50);   // 2 pages
  const auto c = iota_tokens(4, 80);   // 2 pages
  cache_sequence(*kv, rc, a);
  cache_sequence(*kv, rc, b);
  cache_sequence(*kv, rc, c);
  EXPECT_EQ(rc.cached_pages(), 7);
  EXPECT_EQ(rc.evictable_pages(), 7);
  auto ma = rc.match(a.data(), 6, 3);  // a: most recent
  rc.lock(ma.last);
  EXPECT_EQ(rc.evictable_pages(), 4);
  rc.match(c.data(), 4, 2);            // now c is newer than b
  const int64_t free_before = kv->num_free_pages();
  EXPECT_EQ(rc.evict(2), 2);           // b goes (least recently used)
  EXPECT_EQ(kv->num_free_pages(), free_before + 2);
  EXPECT_EQ(rc.match(b.data(), 4, 2).pages.size(), 0u);
  EXPECT_EQ(rc.match(c.data(), 4, 2).pages.size(), 2u);
  EXPECT_EQ(rc.evict(100), 2);         // only c is left unlocked
  EXPECT_EQ(rc.cached_pages(), 3);
  EXPECT_EQ(rc.match(a.data(), 6, 3).pages.size(), 3u);
  rc.unlock(ma.last);
  EXPECT_EQ(rc.evictable_pages(), 3);
  rc.clear();
  EXPECT_EQ(rc.cached_pages(), 0);
  EXPECT_EQ(kv->usage().used_pages, 0);
}

TEST(RadixCache, SharedPrefixBranchesAndEvictsLeavesBeforeParents) {
  auto kv = make_kv(16, 2);
  RadixCache rc(*kv);
  const std::vector<int32_t> x = {1, 2, 3, 4, 5, 6};
  const std::vector<int32_t> y = {1, 2, 3, 4, 7, 8};
  cache_sequence(*kv, rc, x);
  cache_sequence(*kv, rc, y);
  EXPECT_EQ(rc.cached_pages(), 4);  // [1 2] [3 4] shared, then [5 6] and [7 8]
  rc.match(y.data(), 6, 3);
  EXPECT_EQ(rc.evict(1), 1);        // the older leaf [5 6]
  EXPECT_EQ(rc.match(x.data(), 6, 3).pages.size(), 2u);
  EXPECT_EQ(rc.match(y.data(), 6, 3).pages.size(), 3u);
}

TEST(RadixCache, DestructorReturnsPagesToThePool) {
  auto kv = make_kv(8, 2);
  {
    RadixCache rc(*kv);
    cache_sequence(*kv, rc, iota_tokens(8, 0));
    EXPECT_EQ(kv->usage().used_pages, 4);
  }
  EXPECT_EQ(kv->usage().used_pages, 0);
}

}  // namespace
}  // namespace ds
