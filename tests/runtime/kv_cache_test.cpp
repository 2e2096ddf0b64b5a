#include <gtest/gtest.h>

#include <set>

#include "runtime/cache/kv_cache.h"

namespace ds {
namespace {

KvCacheConfig config(int64_t pages) {
  KvCacheConfig c;
  c.dtype = DType::kBF16;
  c.page_size = 4;
  c.num_pages = pages;
  c.layers = {{2, 8, 8}, {2, 8, 8}};
  return c;
}

TEST(KvCache, AllocFreeAndExhaustion) {
  auto kv = KvCache::create(config(5));
  ASSERT_TRUE(kv.ok()) << kv.status().message();
  KvCache& c = **kv;
  EXPECT_EQ(c.num_free_pages(), 5);
  auto a = c.alloc_pages(3);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(std::set<int32_t>(a->begin(), a->end()).size(), 3u);
  EXPECT_EQ(c.num_free_pages(), 2);
  auto b = c.alloc_pages(3);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("exhausted"), std::string::npos);
  EXPECT_EQ(c.num_free_pages(), 2);  // all or nothing
  EXPECT_EQ(c.usage().failed_allocs, 1);
  for (int32_t p : *a) EXPECT_TRUE(c.release(p).ok());
  EXPECT_EQ(c.num_free_pages(), 5);
  EXPECT_FALSE(c.release((*a)[0]).ok());  // double free is an error
  EXPECT_FALSE(c.release(99).ok());
  EXPECT_EQ(c.usage().peak_used_pages, 3);
  EXPECT_EQ(c.usage().used_pages, 0);
}

TEST(KvCache, RefCountsKeepSharedPages) {
  auto kv = KvCache::create(config(2));
  ASSERT_TRUE(kv.ok());
  KvCache& c = **kv;
  auto a = c.alloc_pages(1);
  ASSERT_TRUE(a.ok());
  const int32_t p = (*a)[0];
  ASSERT_TRUE(c.retain(p).ok());
  EXPECT_EQ(c.ref_count(p), 2);
  ASSERT_TRUE(c.release(p).ok());
  EXPECT_EQ(c.num_free_pages(), 1);  // still held by the second owner
  ASSERT_TRUE(c.release(p).ok());
  EXPECT_EQ(c.num_free_pages(), 2);
  EXPECT_FALSE(c.retain(p).ok());  // not allocated any more
}

TEST(KvCache, PageTablesGrowByPageSize) {
  auto kv = KvCache::create(config(4));
  ASSERT_TRUE(kv.ok());
  KvCache& c = **kv;
  PageTable t;
  ASSERT_TRUE(c.reserve(t, 1).ok());
  EXPECT_EQ(t.pages.size(), 1u);
  ASSERT_TRUE(c.reserve(t, 4).ok());
  EXPECT_EQ(t.pages.size(), 1u);
  ASSERT_TRUE(c.reserve(t, 5).ok());
  EXPECT_EQ(t.pages.size(), 2u);
  ASSERT_TRUE(c.reserve(t, 16).ok());
  EXPECT_EQ(t.pages.size(), 4u);
  EXPECT_FALSE(c.reserve(t, 17).ok());
  EXPECT_EQ(t.pages.size(), 4u);
  ASSERT_TRUE(c.free(t).ok());
  EXPECT_TRUE(t.pages.empty());
  EXPECT_EQ(c.num_free_pages(), 4);
}

TEST(KvCache, LayerViewAndValidation) {
  auto kv = KvCache::create(config(3));
  ASSERT_TRUE(kv.ok());
  ref::PagedKvLayer l = (*kv)->layer(1);
  EXPECT_EQ(l.num_pages, 3);
  EXPECT_EQ(l.page_size, 4);
  EXPECT_EQ(l.k_dim, 8);
  EXPECT_NE(l.k, (*kv)->layer(0).k);
  EXPECT_EQ(config(3).bytes_per_page(), 2 * 2 * (8 + 8) * 4 * 2);
  KvCacheConfig bad = config(0);
  EXPECT_FALSE(KvCache::create(bad).ok());
  bad = config(2);
  bad.page_size = 0;
  EXPECT_FALSE(KvCache::create(bad).ok());
  bad = config(2);
  bad.dtype = DType::kI32;
  EXPECT_FALSE(KvCache::create(bad).ok());
}

}  // namespace
}  // namespace ds
