#include "runtime/cache/kv_cache.h"

#include <limits>

namespace ds {

Status KvCacheConfig::validate() const {
  if (page_size <= 0) return Status::Error(StrCat() << "kv cache: page_size " << page_size << " must be positive");
  if (num_pages <= 0 || num_pages > std::numeric_limits<int32_t>::max())
    return Status::Error(StrCat() << "kv cache: num_pages " << num_pages << " must be in [1, 2^31)");
  if (layers.empty()) return Status::Error("kv cache: no layers");
  if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF16 && dtype != DType::kF8E4M3)
    return Status::Error(StrCat() << "kv cache: dtype " << dtype_name(dtype) << " is not a floating type");
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i].num_kv_heads <= 0 || layers[i].k_dim <= 0 || layers[i].v_dim < 0)
      return Status::Error(StrCat() << "kv cache: layer " << i << " has invalid geometry");
  return Status::Ok();
}

Result<KvCacheConfig> KvCacheConfig::from_plan(const plan::KvCacheLayout& layout, int64_t num_pages) {
  KvCacheConfig c;
  c.dtype = static_cast<DType>(layout.dtype());
  c.page_size = layout.page_size();
  c.num_pages = num_pages;
  if (layout.layers())
    for (const plan::KvCacheLayer* l : *layout.layers())
      c.layers.push_back(KvLayerGeometry{l->num_kv_heads(), l->k_dim(), l->v_dim()});
  DS_RETURN_IF_ERROR(c.validate());
  return c;
}

int64_t KvCacheConfig::bytes_per_page() const {
  int64_t per_token = 0;
  for (const KvLayerGeometry& l : layers) per_token += l.num_kv_heads * (l.k_dim + l.v_dim);
  return per_token * page_size * static_cast<int64_t>(dtype_size(dtype));
}

Result<std::unique_ptr<KvCache>> KvCache::create(const KvCacheConfig& config) {
  DS_RETURN_IF_ERROR(config.validate());
  std::unique_ptr<KvCache> c(new KvCache(config));
  const int64_t es = static_cast<int64_t>(dtype_size(config.dtype));
  for (const KvLayerGeometry& l : config.layers) {
    if (!config.host_storage) break;
    const int64_t slots = config.num_pages * config.page_size * l.num_kv_heads;
    c->k_pools_.emplace_back(static_cast<size_t>(slots * l.k_dim * es));
    c->v_pools_.emplace_back(static_cast<size_t>(slots * l.v_dim * es));
  }
  c->refs_.assign(static_cast<size_t>(config.num_pages), 0);
  c->free_.reserve(static_cast<size_t>(config.num_pages));
  for (int64_t p = config.num_pages - 1; p >= 0; --p) c->free_.push_back(static_cast<int32_t>(p));
  c->usage_.total_pages = config.num_pages;
  return c;
}

Result<std::vector<int32_t>> KvCache::alloc_pages(int64_t n) {
  if (n < 0) return Status::Error(StrCat() << "kv cache: cannot allocate " << n << " pages");
  if (n > num_free_pages()) {
    ++usage_.failed_allocs;
    return Status::Error(StrCat() << "kv cache exhausted: " << n << " pages requested, " << num_free_pages() << " of "
                                  << config_.num_pages << " free (page size " << config_.page_size << " tokens)");
  }
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t p = free_.back();
    free_.pop_back();
    refs_[p] = 1;
    out.push_back(p);
  }
  usage_.page_allocs += n;
  usage_.used_pages += n;
  usage_.peak_used_pages = std::max(usage_.peak_used_pages, usage_.used_pages);
  return out;
}

Status KvCache::retain(int32_t page) {
  if (page < 0 || page >= config_.num_pages || refs_[page] == 0)
    return Status::Error(StrCat() << "kv cache: retain of page " << page << " which is not allocated");
  ++refs_[page];
  return Status::Ok();
}

Status KvCache::release(int32_t page) {
  if (page < 0 || page >= config_.num_pages || refs_[page] == 0)
    return Status::Error(StrCat() << "kv cache: release of page " << page << " which is not allocated");
  if (--refs_[page] == 0) {
    free_.push_back(page);
    ++usage_.page_frees;
    --usage_.used_pages;
  }
  return Status::Ok();
}

int32_t KvCache::ref_count(int32_t page) const {
  if (page < 0 || page >= config_.num_pages) return 0;
  return refs_[page];
}

Status KvCache::reserve(PageTable& table, int64_t num_tokens) {
  const int64_t need = (num_tokens + config_.page_size - 1) / config_.page_size;
  const int64_t have = static_cast<int64_t>(table.pages.size());
  if (need <= have) return Status::Ok();
  DS_ASSIGN_OR_RETURN(std::vector<int32_t> pages, alloc_pages(need - have));
  table.pages.insert(table.pages.end(), pages.begin(), pages.end());
  return Status::Ok();
}

Status KvCache::free(PageTable& table) {
  Status first;
  for (int32_t p : table.pages) {
    Status s = release(p);
    if (!s.ok() && first.ok()) first = s;
  }
  table.pages.clear();
  return first;
}

ref::PagedKvLayer KvCache::layer(size_t i) {
  DS_CHECK(config_.host_storage, "kv cache layer " << i << " requested from a cache without host storage");
  DS_CHECK(i < config_.layers.size(), "kv layer " << i);
  const KvLayerGeometry& g = config_.layers[i];
  ref::PagedKvLayer l;
  l.k = k_pools_[i].data();
  l.v = v_pools_[i].data();
  l.dtype = config_.dtype;
  l.num_pages = config_.num_pages;
  l.page_size = config_.page_size;
  l.num_kv_heads = g.num_kv_heads;
  l.k_dim = g.k_dim;
  l.v_dim = g.v_dim;
  return l;
}

}  // namespace ds
