#include "runtime/scheduler/serving_engine.h"

#include <algorithm>
#include <cmath>

#include "runtime/engine/engine.h"

namespace ds {

Status ServingOptions::validate() const {
  if (max_running_requests < 1)
    return Status::Error(StrCat() << "max_running_requests " << max_running_requests << " must be >= 1");
  if (chunked_prefill_size < 0)
    return Status::Error(StrCat() << "chunked_prefill_size " << chunked_prefill_size << " must be >= 0");
  if (max_model_len < 0) return Status::Error(StrCat() << "max_model_len " << max_model_len << " must be >= 0");
  if (kv_pages < 0) return Status::Error(StrCat() << "kv_pages " << kv_pages << " must be >= 0");
  if (kv_memory_bytes < 0) return Status::Error(StrCat() << "kv_memory_bytes " << kv_memory_bytes << " must be >= 0");
  if (!(kv_memory_fraction > 0.0 && kv_memory_fraction <= 1.0))
    return Status::Error(StrCat() << "kv_memory_fraction " << kv_memory_fraction << " must be in (0, 1]");
  if (!(new_token_reserve_ratio >= 0.0 && new_token_reserve_ratio <= 1.0))
    return Status::Error(StrCat() << "new_token_reserve_ratio " << new_token_reserve_ratio << " must be in [0, 1]");
  return Status::Ok();
}

std::vector<int32_t> plan_eos_token_ids(const LoadedPlan& plan) {
  std::vector<int32_t> ids;
  const plan::Plan& p = plan.plan();
  if (p.generation() && p.generation()->eos_token_ids() && p.generation()->eos_token_ids()->size() > 0)
    ids.assign(p.generation()->eos_token_ids()->begin(), p.generation()->eos_token_ids()->end());
  else if (p.tokenizer() && p.tokenizer()->eos_token_ids())
    ids.assign(p.tokenizer()->eos_token_ids()->begin(), p.tokenizer()->eos_token_ids()->end());
  return ids;
}

Result<int64_t> resolve_kv_pages(const LoadedPlan& plan, const ServingOptions& options, int64_t max_model_len) {
  const int64_t page = plan->kv_cache()->page_size();
  if (options.kv_pages > 0) return options.kv_pages;
  if (options.kv_memory_bytes > 0) {
    DS_ASSIGN_OR_RETURN(KvCacheConfig one, KvCacheConfig::from_plan(*plan->kv_cache(), 1));
    const int64_t per_page = one.bytes_per_page();
    const double budget = std::floor(static_cast<double>(options.kv_memory_bytes) * options.kv_memory_fraction);
    const int64_t pages = static_cast<int64_t>(budget / static_cast<double>(per_page));
    if (pages < 1)
      return Status::Error(StrCat() << "KV budget " << options.kv_memory_fraction << " x " << options.kv_memory_bytes
                                    << " bytes holds no page of " << per_page << " bytes");
    return pages;
  }
  const int64_t tokens = std::max<int64_t>(max_model_len, options.max_running_requests * 256);
  return (tokens + page - 1) / page;
}

Result<std::unique_ptr<ServingEngine>> ServingEngine::create(const LoadedPlan& plan, const LoadedWeights& weights,
                                                             const ServingOptions& options) {
  DS_RETURN_IF_ERROR(options.validate());
  const int64_t plan_len = plan->model()->max_model_len();
  if (options.max_model_len > plan_len)
    return Status::Error(StrCat() << "max_model_len " << options.max_model_len << " exceeds the plan's "
                                  << plan_len << " (recompile with dscc --max-model-len)");
  const int64_t max_len = options.max_model_len > 0 ? options.max_model_len : plan_len;
  // Auto budget: up to 2048 prefill tokens, and always a decode slot per running request.
  const int64_t chunk = options.chunked_prefill_size > 0
                            ? options.chunked_prefill_size
                            : std::max<int64_t>(std::min<int64_t>(2048, max_len), options.max_running_requests);
  DS_ASSIGN_OR_RETURN(int64_t pages, resolve_kv_pages(plan, options, max_len));
  std::unique_ptr<ServingEngine> e(new ServingEngine());
  DS_ASSIGN_OR_RETURN(KvCacheConfig cfg, KvCacheConfig::from_plan(*plan->kv_cache(), pages));
  DS_ASSIGN_OR_RETURN(e->kv_, KvCache::create(cfg));
  DS_ASSIGN_OR_RETURN(e->executor_, make_executor(plan, weights, *e->kv_, chunk, options.dist, options.on_group_failure));
  SchedulerOptions so;
  so.max_running_requests = options.max_running_requests;
  so.chunked_prefill_size = chunk;
  so.max_model_len = max_len;
  so.eos_token_ids = plan_eos_token_ids(plan);
  so.enable_prefix_cache = options.enable_prefix_cache;
  so.new_token_reserve_ratio = options.new_token_reserve_ratio;
  so.reserve_clip_tokens = options.reserve_clip_tokens;
  DS_ASSIGN_OR_RETURN(e->scheduler_, Scheduler::create(*e->executor_, *e->kv_, so));
  if (options.start_loop) e->scheduler_->start();
  return e;
}

ServingEngine::~ServingEngine() {
  if (scheduler_) scheduler_->stop();
  scheduler_.reset();  // before the executor and the KV cache it points into
}

}  // namespace ds
