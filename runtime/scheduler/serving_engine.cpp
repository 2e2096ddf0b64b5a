#include "runtime/scheduler/serving_engine.h"

#include <algorithm>
#include <cmath>

#include "runtime/engine/engine.h"
#include "runtime/executor/memory_plan.h"

namespace ds {

Status ServingOptions::validate() const {
  if (max_running_requests < 1)
    return Status::Error(StrCat() << "max_running_requests " << max_running_requests << " must be >= 1");
  if (chunked_prefill_size < 0)
    return Status::Error(StrCat() << "chunked_prefill_size " << chunked_prefill_size << " must be >= 0");
  if (max_model_len < 0) return Status::Error(StrCat() << "max_model_len " << max_model_len << " must be >= 0");
  if (kv_pages < 0) return Status::Error(StrCat() << "kv_pages " << kv_pages << " must be >= 0");
  if (kv_memory_bytes < 0) return Status::Error(StrCat() << "kv_memory_bytes " << kv_memory_bytes << " must be >= 0");
  if (max_logit_rows < 0) return Status::Error(StrCat() << "max_logit_rows " << max_logit_rows << " must be >= 0");
  if (!(kv_memory_fraction > 0.0 && kv_memory_fraction <= 1.0))
    return Status::Error(StrCat() << "kv_memory_fraction " << kv_memory_fraction << " must be in (0, 1]");
  if (mem_fraction_static != 0.0 && !(mem_fraction_static > 0.0 && mem_fraction_static < 1.0))
    return Status::Error(StrCat() << "mem_fraction_static " << mem_fraction_static << " must be in (0, 1)");
  if (gpu.cuda_graph_max_bs < 0)
    return Status::Error(StrCat() << "cuda_graph_max_bs " << gpu.cuda_graph_max_bs << " must be >= 0");
  if (gpu.dist_timeout.count() <= 0)
    return Status::Error(StrCat() << "dist_timeout " << gpu.dist_timeout.count() << " ms must be positive");
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

int64_t default_chunked_prefill_size(int64_t max_model_len, int64_t max_running_requests, size_t gpu_total_bytes) {
  const int64_t budget = gpu_total_bytes >= kLargeGpuBytes ? 4096 : 2048;
  return std::max<int64_t>(std::min<int64_t>(budget, max_model_len), max_running_requests);
}

int64_t resolve_max_logit_rows(const ServingOptions& options, int64_t chunk) {
  const int64_t rows = options.max_logit_rows > 0 ? options.max_logit_rows
                                                  : std::max(options.max_running_requests, kDefaultMaxLogitRows);
  return std::min(rows, chunk);
}

Result<MemoryPlan> plan_cuda_memory(const LoadedPlan& plan, const ServingOptions& options, int64_t max_model_len,
                                    int64_t chunked_prefill_size) {
  DS_ASSIGN_OR_RETURN(DeviceMemoryInfo mem, query_device_memory(options.gpu.device));
  MemoryPlanInput in;
  in.device_total = mem.total;
  in.device_free = mem.free;
  in.mem_fraction_static = options.mem_fraction_static > 0 ? options.mem_fraction_static : kDefaultMemFractionStatic;
  DS_ASSIGN_OR_RETURN(in.weight_bytes, device_weight_bytes(plan));
  in.arena_bytes_per_token = plan->arena() ? plan->arena()->bytes_per_token() : 0;
  in.chunked_prefill_size = chunked_prefill_size;
  in.max_logit_rows = resolve_max_logit_rows(options, chunked_prefill_size);  // prompt logprobs are chunked to fit
  in.vocab_size = plan->model()->vocab_size();
  in.enable_cuda_graph = options.gpu.enable_cuda_graph;
  DS_ASSIGN_OR_RETURN(KvCacheConfig one, KvCacheConfig::from_plan(*plan->kv_cache(), 1));
  in.kv_bytes_per_page = one.bytes_per_page();
  in.page_size = plan->kv_cache()->page_size();
  in.max_model_len = max_model_len;
  in.max_running_requests = options.max_running_requests;
  in.tp_size = plan->tp_size();
  DS_ASSIGN_OR_RETURN(MemoryPlan mp, plan_device_memory(in));
  if (options.log) {
    options.log("memory: " + mp.summary(mem.total) + " (--mem-fraction-static " +
                std::to_string(in.mem_fraction_static).substr(0, 4) + ")");
    for (const std::string& note : mp.notes) options.log("memory: " + note);
  }
  return mp;
}

Result<std::unique_ptr<ServingEngine>> ServingEngine::create(const LoadedPlan& plan, const LoadedWeights& weights,
                                                             const ServingOptions& options) {
  DS_RETURN_IF_ERROR(options.validate());
  const int64_t plan_len = plan->model()->max_model_len();
  if (options.max_model_len > plan_len)
    return Status::Error(StrCat() << "max_model_len " << options.max_model_len << " exceeds the plan's "
                                  << plan_len << " (recompile with dscc --max-model-len)");
  const int64_t max_len = options.max_model_len > 0 ? options.max_model_len : plan_len;
  const bool cuda = is_cuda_plan(plan);
  // Auto budget (default_chunked_prefill_size): always a decode slot per running request.
  size_t gpu_total = 0;
  if (cuda && options.chunked_prefill_size == 0) {
    DS_ASSIGN_OR_RETURN(DeviceMemoryInfo mem, query_device_memory(options.gpu.device));
    gpu_total = mem.total;
  }
  int64_t chunk = options.chunked_prefill_size > 0
                      ? options.chunked_prefill_size
                      : default_chunked_prefill_size(max_len, options.max_running_requests, gpu_total);
  int64_t pages = 0;
  int64_t max_running = options.max_running_requests;
  size_t planned_activations = 0;
  if (cuda) {
    Result<MemoryPlan> planned = plan_cuda_memory(plan, options, max_len, chunk);
    const int64_t small = default_chunked_prefill_size(max_len, options.max_running_requests, 0);
    if (!planned.ok() && options.chunked_prefill_size == 0 && chunk > small) {
      // The larger automatic budget does not fit: the small one may.
      if (options.log)
        options.log(StrCat() << "memory: a step budget of " << chunk << " tokens does not fit ("
                             << planned.status().message() << "); trying " << small);
      chunk = small;
      planned = plan_cuda_memory(plan, options, max_len, chunk);
    }
    if (!planned.ok()) return planned.status();
    if (options.log)
      options.log(StrCat() << "step budget: " << chunk << " tokens per step ("
                           << (options.chunked_prefill_size > 0 ? "--chunked-prefill-size"
                                                                : "default for this GPU; --chunked-prefill-size sets it")
                           << ")");
    const MemoryPlan& mp = *planned;
    planned_activations = mp.activation_bytes;
    pages = options.kv_pages > 0 ? std::min(options.kv_pages, mp.kv_pages) : mp.kv_pages;
    max_running = mp.max_running_requests;
  } else {
    DS_ASSIGN_OR_RETURN(pages, resolve_kv_pages(plan, options, max_len));
  }
  // Checked before anything is loaded (the scheduler checks it again).
  if (options.max_logit_rows > 0 && resolve_max_logit_rows(options, chunk) < max_running)
    return Status::Error(StrCat() << "max_logit_rows " << resolve_max_logit_rows(options, chunk)
                                  << " is below max_running_requests " << max_running
                                  << " (every running request may sample a row per step)");
  std::unique_ptr<ServingEngine> e(new ServingEngine());
  DS_ASSIGN_OR_RETURN(KvCacheConfig cfg, KvCacheConfig::from_plan(*plan->kv_cache(), pages));
  cfg.host_storage = !cuda;  // the CUDA executor keeps the pools on the device
  DS_ASSIGN_OR_RETURN(e->kv_, KvCache::create(cfg));
  ExecutorOptions xo;
  xo.token_capacity = chunk;
  xo.max_seqs = std::min(max_running, chunk);
  xo.max_logit_rows = resolve_max_logit_rows(options, chunk);
  xo.max_model_len = max_len;
  xo.gpu = options.gpu;
  xo.dist = options.dist;
  xo.on_group_failure = options.on_group_failure;
  DS_ASSIGN_OR_RETURN(e->executor_, make_executor(plan, weights, *e->kv_, xo, &e->startup_));
  if (cuda && options.log)
    options.log(StrCat() << "memory: the executor holds activations " << format_gib(e->startup_.activation_bytes)
                         << " (planned " << format_gib(planned_activations) << "), KV pools "
                         << format_gib(e->startup_.kv_pool_bytes));
  SchedulerOptions so;
  so.max_running_requests = max_running;
  so.chunked_prefill_size = chunk;
  so.max_model_len = max_len;
  so.eos_token_ids = plan_eos_token_ids(plan);
  so.enable_prefix_cache = options.enable_prefix_cache;
  so.new_token_reserve_ratio = options.new_token_reserve_ratio;
  so.reserve_clip_tokens = options.reserve_clip_tokens;
  so.max_logit_rows = xo.max_logit_rows;
  so.overlap_schedule = options.overlap_schedule;
  DS_ASSIGN_OR_RETURN(e->scheduler_, Scheduler::create(*e->executor_, *e->kv_, so));
  if (options.start_loop) e->scheduler_->start();
  return e;
}

ServingEngine::~ServingEngine() {
  if (scheduler_) scheduler_->stop();
  scheduler_.reset();  // before the executor and the KV cache it points into
}

}  // namespace ds
