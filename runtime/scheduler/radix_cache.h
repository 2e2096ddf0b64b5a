// Prefix cache over KV pages (the RadixAttention idea, own implementation).
//
// A tree whose edges are full pages of token ids: the path from the root to a
// node spells a token prefix whose KV lives in the pages along that path (one
// page per node, so only full pages are shared). The tree holds one reference
// on each of its pages (KvCache ref counts). A request that reuses a prefix
// retains the matched pages in its own page table and locks the path's last
// node; locked nodes (and their ancestors) are never evicted. Unlocked nodes
// are evictable: eviction releases the least recently used unlocked leaves
// first, so the pages go back to the pool.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "runtime/cache/kv_cache.h"
#include "runtime/common/status.h"

namespace ds {

class RadixCache {
 public:
  struct Node {
    Node* parent = nullptr;
    std::map<std::vector<int32_t>, std::unique_ptr<Node>> children;  // keyed by the child's page of tokens
    int32_t page = -1;
    int64_t lock_ref = 0;     // requests using this node (or a descendant)
    uint64_t last_access = 0;
  };

  struct Match {
    std::vector<int32_t> pages;  // KV pages of the matched prefix, in order
    Node* last = nullptr;        // deepest matched node (the root when nothing matched)
    int64_t num_tokens(int64_t page_size) const { return static_cast<int64_t>(pages.size()) * page_size; }
  };

  explicit RadixCache(KvCache& kv);
  ~RadixCache();
  RadixCache(const RadixCache&) = delete;
  RadixCache& operator=(const RadixCache&) = delete;

  int64_t page_size() const { return page_size_; }

  // The longest cached prefix of tokens[0, n), in full pages, at most max_pages.
  // Touches the matched nodes (LRU).
  Match match(const int32_t* tokens, int64_t n, int64_t max_pages);

  // Lock / unlock the path root..node against eviction (balanced calls).
  void lock(Node* node);
  void unlock(Node* node);

  // Caches the first num_pages full pages of `tokens` (pages[i] holds tokens
  // [i*page_size, (i+1)*page_size)). Pages already cached under the same prefix
  // are kept (the caller's duplicates are not added); new nodes retain their page.
  // Returns the number of pages added.
  Result<int64_t> insert(const int32_t* tokens, int64_t num_pages, const std::vector<int32_t>& pages);

  // Releases up to num_pages unlocked pages, least recently used leaves first.
  // Returns the number of tree pages released.
  int64_t evict(int64_t num_pages);

  int64_t cached_pages() const { return cached_pages_; }
  int64_t evictable_pages() const { return evictable_pages_; }

  // Drops every unlocked node (e.g. on shutdown); locked paths stay.
  void clear() { evict(cached_pages_); }

 private:
  void release_node_page(Node* node);
  KvCache& kv_;
  int64_t page_size_;
  Node root_;
  uint64_t clock_ = 0;
  int64_t cached_pages_ = 0;
  int64_t evictable_pages_ = 0;
};

}  // namespace ds
