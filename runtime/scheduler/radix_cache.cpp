#include "runtime/scheduler/radix_cache.h"

#include <queue>
#include <tuple>

namespace ds {

RadixCache::RadixCache(KvCache& kv) : kv_(kv), page_size_(kv.page_size()) {}

RadixCache::~RadixCache() {
  // Give every tree page back to the pool (locks no longer matter at teardown).
  std::vector<Node*> stack{&root_};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& [key, child] : n->children) stack.push_back(child.get());
    if (n != &root_) release_node_page(n);
  }
}

void RadixCache::release_node_page(Node* node) {
  Status s = kv_.release(node->page);
  DS_CHECK(s.ok(), "radix cache page " << node->page << ": " << s.message());
}

RadixCache::Match RadixCache::match(const int32_t* tokens, int64_t n, int64_t max_pages) {
  Match m;
  m.last = &root_;
  const uint64_t now = ++clock_;
  root_.last_access = now;
  std::vector<int32_t> key(static_cast<size_t>(page_size_));
  const int64_t full = std::min<int64_t>(n / page_size_, max_pages);
  Node* cur = &root_;
  for (int64_t p = 0; p < full; ++p) {
    key.assign(tokens + p * page_size_, tokens + (p + 1) * page_size_);
    auto it = cur->children.find(key);
    if (it == cur->children.end()) break;
    cur = it->second.get();
    cur->last_access = now;
    m.pages.push_back(cur->page);
    m.last = cur;
  }
  return m;
}

void RadixCache::lock(Node* node) {
  for (Node* n = node; n && n != &root_; n = n->parent) {
    if (n->lock_ref++ == 0) --evictable_pages_;
  }
}

void RadixCache::unlock(Node* node) {
  for (Node* n = node; n && n != &root_; n = n->parent) {
    DS_CHECK(n->lock_ref > 0, "radix cache: unlock of an unlocked node");
    if (--n->lock_ref == 0) ++evictable_pages_;
  }
}

Result<int64_t> RadixCache::insert(const int32_t* tokens, int64_t num_pages, const std::vector<int32_t>& pages) {
  if (num_pages < 0 || num_pages > static_cast<int64_t>(pages.size()))
    return Status::Error(StrCat() << "radix cache: insert of " << num_pages << " pages with a page table of "
                                  << pages.size());
  const uint64_t now = ++clock_;
  Node* cur = &root_;
  int64_t added = 0;
  for (int64_t p = 0; p < num_pages; ++p) {
    std::vector<int32_t> key(tokens + p * page_size_, tokens + (p + 1) * page_size_);
    auto it = cur->children.find(key);
    if (it == cur->children.end()) {
      DS_RETURN_IF_ERROR(kv_.retain(pages[static_cast<size_t>(p)]));
      auto node = std::make_unique<Node>();
      node->parent = cur;
      node->page = pages[static_cast<size_t>(p)];
      it = cur->children.emplace(std::move(key), std::move(node)).first;
      ++cached_pages_;
      ++evictable_pages_;
      ++added;
    }
    cur = it->second.get();
    cur->last_access = now;
  }
  return added;
}

int64_t RadixCache::evict(int64_t num_pages) {
  if (num_pages <= 0 || evictable_pages_ == 0) return 0;
  // Min-heap of unlocked leaves by last access (ties: lower page id, for determinism).
  using Item = std::tuple<uint64_t, int32_t, Node*>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  std::vector<Node*> stack{&root_};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& [key, child] : n->children) stack.push_back(child.get());
    if (n != &root_ && n->children.empty() && n->lock_ref == 0) heap.emplace(n->last_access, n->page, n);
  }
  int64_t freed = 0;
  while (freed < num_pages && !heap.empty()) {
    Node* n = std::get<2>(heap.top());
    heap.pop();
    Node* parent = n->parent;
    release_node_page(n);
    --cached_pages_;
    --evictable_pages_;
    ++freed;
    for (auto it = parent->children.begin(); it != parent->children.end(); ++it)
      if (it->second.get() == n) {
        parent->children.erase(it);
        break;
      }
    if (parent != &root_ && parent->children.empty() && parent->lock_ref == 0)
      heap.emplace(parent->last_access, parent->page, parent);
  }
  return freed;
}

}  // namespace ds
