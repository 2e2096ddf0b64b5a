#include "runtime/executor/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ds {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string fraction_str(double f) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", f);
  return buf;
}

// Rounded to hundredths, up / down (with a small epsilon against binary noise).
double ceil_01(double f) { return std::ceil(f * 100.0 - 1e-9) / 100.0; }
double floor_01(double f) { return std::floor(f * 100.0 + 1e-9) / 100.0; }

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return (v < 0 ? "-" : "") + s;
}

size_t pages_bytes(const MemoryPlanInput& in, int64_t tokens) {
  const int64_t pages = (tokens + in.page_size - 1) / in.page_size;
  return static_cast<size_t>(pages) * static_cast<size_t>(in.kv_bytes_per_page);
}

// Smallest tensor-parallel degree (2, 4, 8) with which a rank's share fits the
// default static fraction; 0 when even 8 does not.
int tp_hint(const MemoryPlanInput& in, size_t need_static) {
  for (int tp = std::max(2, in.tp_size * 2); tp <= 8; tp *= 2)
    if (static_cast<double>(need_static) * in.tp_size / tp <= kDefaultMemFractionStatic * in.device_total) return tp;
  return 0;
}

std::string tp_suffix(const MemoryPlanInput& in, size_t need_static) {
  const int tp = tp_hint(in, need_static);
  return tp > 0 ? (StrCat() << " (or --tp " << tp << ")").str() : std::string();
}

// When no flag of this GPU helps.
std::string no_fit(const MemoryPlanInput& in, size_t need_static) {
  const int tp = tp_hint(in, need_static);
  return tp > 0 ? (StrCat() << "the model does not fit this GPU: use --tp " << tp).str()
                : std::string("the model does not fit this GPU");
}

}  // namespace

std::string format_gib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f GiB", static_cast<double>(bytes) / kGiB);
  return buf;
}

Status MemoryPlanInput::validate() const {
  if (device_total == 0) return Status::Error("memory plan: the device reports 0 bytes of memory");
  if (device_free > device_total)
    return Status::Error(StrCat() << "memory plan: free memory " << device_free << " exceeds the total " << device_total);
  if (!(mem_fraction_static > 0.0 && mem_fraction_static < 1.0))
    return Status::Error(StrCat() << "--mem-fraction-static " << mem_fraction_static << " must be in (0, 1)");
  if (arena_bytes_per_token < 0) return Status::Error("memory plan: negative arena bytes per token");
  if (chunked_prefill_size <= 0)
    return Status::Error(StrCat() << "--chunked-prefill-size " << chunked_prefill_size << " must be positive");
  if (max_logit_rows < 0) return Status::Error("memory plan: negative max_logit_rows");
  if (vocab_size <= 0) return Status::Error("memory plan: the plan has no vocabulary");
  if (kv_bytes_per_page <= 0 || page_size <= 0) return Status::Error("memory plan: the plan has no KV cache pages");
  if (max_model_len <= 0) return Status::Error(StrCat() << "--max-model-len " << max_model_len << " must be positive");
  if (max_running_requests < 1)
    return Status::Error(StrCat() << "--max-running-requests " << max_running_requests << " must be >= 1");
  if (tp_size < 1) return Status::Error("memory plan: tp_size must be >= 1");
  return Status::Ok();
}

size_t activation_bytes(const MemoryPlanInput& in, int64_t chunk) {
  const int64_t rows = in.max_logit_rows > 0 ? std::min(in.max_logit_rows, chunk) : chunk;
  const size_t logits = static_cast<size_t>(rows) * static_cast<size_t>(in.vocab_size) * 4;
  const size_t arena = static_cast<size_t>(in.arena_bytes_per_token) * static_cast<size_t>(chunk);
  const size_t sampler = in.sampler_bytes > 0 ? in.sampler_bytes : logits;
  return arena + logits + sampler + kCublasLtWorkspaceBytes + in.attention_workspace_bytes +
         (in.enable_cuda_graph ? kCudaGraphReserveBytes : 0);
}

Result<MemoryPlan> plan_device_memory(const MemoryPlanInput& in) {
  DS_RETURN_IF_ERROR(in.validate());
  const double total = static_cast<double>(in.device_total);
  const size_t static_bytes = static_cast<size_t>(std::floor(total * in.mem_fraction_static));
  const size_t act = activation_bytes(in, in.chunked_prefill_size);
  const size_t kv_min = pages_bytes(in, in.max_model_len);  // one full-length sequence
  const std::string frac = fraction_str(in.mem_fraction_static);

  // 1. The weights must fit the static part.
  if (in.weight_bytes >= static_bytes) {
    const double need = ceil_01(static_cast<double>(in.weight_bytes + kv_min) / total);
    std::string fix = need + static_cast<double>(act) / total <= 1.0
                          ? "use --mem-fraction-static >= " + fraction_str(need) + tp_suffix(in, in.weight_bytes + kv_min)
                          : no_fit(in, in.weight_bytes + kv_min);
    return Status::Error(StrCat() << "the weights (" << format_gib(in.weight_bytes) << ") do not fit in --mem-fraction-static "
                                  << frac << " of " << format_gib(in.device_total) << ": " << fix);
  }

  // 2. Activations live in the rest.
  const size_t rest = in.device_total - static_bytes;
  if (act > rest) {
    int64_t chunk = in.chunked_prefill_size;
    while (chunk > 1 && activation_bytes(in, chunk) > rest) chunk /= 2;
    const bool chunk_ok = activation_bytes(in, chunk) <= rest && chunk < in.chunked_prefill_size;
    const double f = floor_01(1.0 - static_cast<double>(act) / total);
    const bool frac_ok = f > 0.0 && f * total > static_cast<double>(in.weight_bytes + kv_min);
    std::string fix;
    if (chunk_ok) fix = (StrCat() << "lower it to " << chunk).str();
    if (frac_ok) fix += (fix.empty() ? "" : " or ") + std::string("lower --mem-fraction-static to ") + fraction_str(f);
    if (fix.empty()) fix = no_fit(in, in.weight_bytes + kv_min);
    return Status::Error(StrCat() << "activations for --chunked-prefill-size " << in.chunked_prefill_size << " need "
                                  << format_gib(act) << " but only " << format_gib(rest) << " are left (--mem-fraction-static "
                                  << frac << " of " << format_gib(in.device_total) << "): " << fix);
  }

  MemoryPlan plan;
  plan.static_bytes = static_bytes;
  plan.weight_bytes = in.weight_bytes;
  plan.activation_bytes = act;
  size_t kv_pool = static_bytes - in.weight_bytes;

  // 3. Everything must fit the memory free at start (other processes may hold some).
  bool shrunk = false;
  if (in.weight_bytes + kv_pool + act > in.device_free) {
    if (in.weight_bytes + act >= in.device_free)
      return Status::Error(StrCat() << "only " << format_gib(in.device_free) << " of the GPU's "
                                    << format_gib(in.device_total) << " are free, less than the weights ("
                                    << format_gib(in.weight_bytes) << ") and activations (" << format_gib(act)
                                    << ") need: free the GPU or lower --chunked-prefill-size");
    kv_pool = in.device_free - in.weight_bytes - act;
    shrunk = true;
    plan.notes.push_back(StrCat() << "KV pool limited to " << format_gib(kv_pool) << " by the free memory ("
                                  << format_gib(in.device_free) << " of " << format_gib(in.device_total) << ")");
  }
  plan.kv_pages = static_cast<int64_t>(kv_pool / static_cast<size_t>(in.kv_bytes_per_page));
  plan.kv_pool_bytes = static_cast<size_t>(plan.kv_pages) * static_cast<size_t>(in.kv_bytes_per_page);
  plan.kv_tokens = plan.kv_pages * in.page_size;

  // 4. The pool must hold at least one sequence of max_model_len tokens.
  if (plan.kv_tokens < in.max_model_len) {
    const double need = ceil_01(static_cast<double>(in.weight_bytes + kv_min) / total);
    std::string fix;
    if (shrunk)
      fix = "free GPU memory (other processes hold " + format_gib(in.device_total - in.device_free) + ")";
    else if (need + static_cast<double>(act) / total <= 1.0)
      fix = "raise --mem-fraction-static to " + fraction_str(need);
    if (plan.kv_tokens > 0) fix += (fix.empty() ? "" : " or ") + (StrCat() << "lower --max-model-len to " << plan.kv_tokens).str();
    if (fix.empty()) fix = no_fit(in, in.weight_bytes + kv_min);
    return Status::Error(StrCat() << "KV pool holds " << with_commas(plan.kv_tokens) << " tokens, fewer than --max-model-len "
                                  << in.max_model_len << ": " << fix);
  }

  // 5. Every running request holds at least one page.
  plan.max_running_requests = std::min(in.max_running_requests, plan.kv_pages);
  if (plan.max_running_requests < in.max_running_requests)
    plan.notes.push_back(StrCat() << "--max-running-requests capped to " << plan.max_running_requests
                                  << ": the KV pool holds " << plan.kv_pages << " pages");
  return plan;
}

std::string MemoryPlan::summary(size_t device_total) const {
  return StrCat() << "weights " << format_gib(weight_bytes) << ", KV pool " << format_gib(kv_pool_bytes) << " ("
                  << with_commas(kv_tokens) << " tokens), activations " << format_gib(activation_bytes) << " of "
                  << format_gib(device_total);
}

}  // namespace ds
