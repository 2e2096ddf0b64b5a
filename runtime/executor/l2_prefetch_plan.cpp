#include "runtime/executor/l2_prefetch_plan.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace ds {

std::vector<PrefetchAssignment> plan_l2_prefetch(const std::vector<PrefetchOp>& ops, uint64_t budget) {
  std::vector<PrefetchAssignment> out(ops.size());
  if (budget == 0) return out;
  std::vector<uint64_t> covered(ops.size(), 0);  // bytes of linear j prefetched so far, from its start
  size_t next = ops.size();                      // next linear after i (scanning backwards)
  std::vector<size_t> next_linear(ops.size(), ops.size());
  for (size_t i = ops.size(); i-- > 0;) {
    next_linear[i] = next;
    if (ops[i].role == PrefetchOp::Role::kLinear) next = i;
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    const PrefetchOp& op = ops[i];
    const bool source =
        op.role == PrefetchOp::Role::kLatencyBound ||
        (op.role == PrefetchOp::Role::kLinear && op.weight_bytes > 0 && covered[i] >= op.weight_bytes);
    const size_t j = next_linear[i];
    if (!source || j >= ops.size()) continue;
    const uint64_t limit = std::min(ops[j].weight_bytes, budget);
    if (covered[j] >= limit) continue;
    out[i] = PrefetchAssignment{j, covered[j], limit - covered[j]};
    covered[j] = limit;
  }
  return out;
}

uint64_t l2_prefetch_budget(uint64_t l2_bytes) {
  if (const char* e = std::getenv("DSRT_L2_PREFETCH_MB")) {
    const std::string s(e);
    if (!s.empty() && s.size() <= 6 && s.find_first_not_of("0123456789") == std::string::npos)
      return std::stoull(s) << 20;
    std::fprintf(stderr, "dsrt: ignoring DSRT_L2_PREFETCH_MB='%s' (expected a whole number of MiB)\n", e);
  }
  (void)l2_bytes;
  return 0;
}

}  // namespace ds
