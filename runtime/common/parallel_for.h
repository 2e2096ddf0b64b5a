// Runs fn(i) for i in [0, n) on n threads at once and waits for all of them:
// one thread per rank where the ranks of a group must act together (group
// creation, collectives that need every rank inside them). fn must not throw.
#pragma once

#include <cstddef>
#include <thread>
#include <vector>

namespace ds {

template <typename Fn>
void parallel_for_each(size_t n, Fn&& fn) {
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (size_t i = 0; i < n; ++i) threads.emplace_back([&fn, i] { fn(i); });
  for (std::thread& t : threads) t.join();
}

}  // namespace ds
