// Paged KV cache: a pool of pages shared by all layers (page id p addresses the
// same slot range in every layer's K and V pools), ref-counted so that the radix
// prefix cache can later share pages between sequences, plus per-sequence page
// tables.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/ref/paged_attention.h"
#include "runtime/common/dtype.h"
#include "runtime/common/status.h"
#include "runtime/plan/plan_generated.h"

namespace ds {

struct KvLayerGeometry {
  int64_t num_kv_heads = 0;
  int64_t k_dim = 0;
  int64_t v_dim = 0;
};

struct KvCacheConfig {
  DType dtype = DType::kBF16;
  int64_t page_size = 16;
  int64_t num_pages = 0;
  std::vector<KvLayerGeometry> layers;
  // true: the cache owns host K/V pools (CPU executor, layer()). false: page
  // bookkeeping only; the pools live elsewhere (the CUDA executor's device
  // memory) and layer() must not be called.
  bool host_storage = true;

  Status validate() const;
  // Layout from the plan, with a pool of `num_pages` pages.
  static Result<KvCacheConfig> from_plan(const plan::KvCacheLayout& layout, int64_t num_pages);
  // Bytes of one page across all layers (K and V).
  int64_t bytes_per_page() const;
};

struct KvCacheUsage {
  int64_t total_pages = 0;
  int64_t used_pages = 0;
  int64_t peak_used_pages = 0;
  int64_t page_allocs = 0;
  int64_t page_frees = 0;
  int64_t failed_allocs = 0;
};

// A sequence's pages, in history order: token j is in pages[j / page_size].
struct PageTable {
  std::vector<int32_t> pages;
};

class KvCache {
 public:
  static Result<std::unique_ptr<KvCache>> create(const KvCacheConfig& config);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvCacheConfig& config() const { return config_; }
  int64_t page_size() const { return config_.page_size; }
  int64_t num_pages() const { return config_.num_pages; }
  int64_t num_free_pages() const { return static_cast<int64_t>(free_.size()); }
  const KvCacheUsage& usage() const { return usage_; }

  // Allocates n pages (ref count 1), all or nothing; an error when the pool has fewer free pages.
  Result<std::vector<int32_t>> alloc_pages(int64_t n);
  // Adds a reference to an allocated page (prefix sharing).
  Status retain(int32_t page);
  // Drops a reference; the page returns to the pool at zero.
  Status release(int32_t page);
  int32_t ref_count(int32_t page) const;

  // Grows `table` so that it covers `num_tokens` tokens of history.
  Status reserve(PageTable& table, int64_t num_tokens);
  // Releases every page of the table and clears it.
  Status free(PageTable& table);

  bool has_host_storage() const { return config_.host_storage; }
  // Kernel view of layer i's host pools; only for a cache with host_storage
  // (an internal invariant: checked with DS_CHECK).
  ref::PagedKvLayer layer(size_t i);

 private:
  explicit KvCache(KvCacheConfig c) : config_(std::move(c)) {}
  KvCacheConfig config_;
  std::vector<std::vector<uint8_t>> k_pools_, v_pools_;
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;  // stack of free page ids
  KvCacheUsage usage_;
};

}  // namespace ds
