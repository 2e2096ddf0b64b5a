#include "serve/cli/serve_command.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "runtime/engine/engine.h"
#include "runtime/executor/dist_executor.h"
#include "runtime/scheduler/serving_engine.h"
#include "serve/http/openai_server.h"

namespace ds::cli {

void add_serve_options(CLI::App* cmd, ServeArgs& a) {
  http::ServerOptions& o = a.server;
  cmd->add_option("--host", o.host, "Address to listen on");
  cmd->add_option("--port", o.port, "Port to listen on (0: a free port, printed at start)");
  cmd->add_option("--api-key", o.api_key, "Require 'Authorization: Bearer KEY' on every route but /health");
  cmd->add_option("--served-model-name", o.served_model_name, "Model name of the API (default: the plan's)");
  cmd->add_option("--max-model-len", o.max_model_len, "Context length (default: the plan's)");
  cmd->add_option("--max-running-requests", o.max_running_requests,
                  "Requests in the running batch at most (CUDA: also the executor's sequences per step; capped "
                  "to what the KV pool holds)");
  cmd->add_option("--chunked-prefill-size", o.chunked_prefill_size, "Tokens per step (0: 4096 on GPUs of >= 60 GiB, else 2048; at most max-model-len, at least max-running-requests)");
  cmd->add_option("--mem-fraction-static,--gpu-memory-utilization", o.mem_fraction_static,
                  "CUDA plans: fraction of GPU memory for weights + KV pool (default 0.88; the rest holds "
                  "activations and CUDA graphs). CPU plans: fraction of --kv-budget-bytes given to the KV pool")
      ->each([&a](const std::string&) { a.mem_fraction_given = true; });
  cmd->add_option("--kv-budget-bytes", a.kv_budget_bytes,
                  "CPU backend: KV byte budget (0: room for max(max-model-len, 256 x max-running-requests) tokens)");
  cmd->add_flag("--disable-radix-cache", a.disable_prefix_cache, "Turn the prefix cache off");
  cmd->add_flag("--disable-overlap-schedule", a.disable_overlap_schedule,
                "Collect each step's sampled tokens before scheduling the next (the overlap schedule queues the "
                "next step first when the executor pipelines device sampling)");
  cmd->add_option("--max-logit-rows", a.max_logit_rows,
                  "Logit rows per step: CUDA logits buffer of rows x vocab floats; prompt logprobs are computed in "
                  "chunks of this many rows (0: max(max-running-requests, 256), at most the chunked prefill size)");
  cmd->add_option("--reasoning-parser", o.reasoning_parser, "Split reasoning_content from content: deepseek_r1")
      ->check(CLI::IsMember({"deepseek_r1"}));
  cmd->add_flag("--enable-reasoning", a.enable_reasoning,
                "vLLM's switch for --reasoning-parser (which alone turns the split on here); needs it");
  cmd->add_option("--log-level", o.log_level, "debug | info | warning | error")
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
}

Status run_serve(const ServeArgs& a) {
  DS_RETURN_IF_ERROR(a.server.validate());
  if (a.enable_reasoning && a.server.reasoning_parser.empty())
    return Status::Error("--enable-reasoning needs --reasoning-parser (deepseek_r1)");
  if (a.kv_budget_bytes < 0) return Status::Error("--kv-budget-bytes must be >= 0");
  if (a.max_logit_rows < 0) return Status::Error("--max-logit-rows must be >= 0");
  if (a.cuda.cuda_graph_max_bs < 0) return Status::Error("--cuda-graph-max-bs must be >= 0");
  using Clock = std::chrono::steady_clock;
  const Clock::time_point t0 = Clock::now();
  DS_ASSIGN_OR_RETURN(LoadedModel m, load_model(a.load));
  const double plan_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const bool cuda = is_cuda_plan(*m.plan);
  if (cuda && a.mem_fraction_given && !(a.server.mem_fraction_static < 1.0))
    return Status::Error(StrCat() << "--mem-fraction-static " << a.server.mem_fraction_static
                                  << " must be below 1 for a CUDA plan (the rest holds activations)");
  // Ranks > 0 of a multi-process group execute rank 0's steps until it stops.
  if (m.follower()) return run_rank_follower(*m.plan, *m.weights, *m.dist, follower_executor_options(a.load));
  ServingOptions so;
  so.max_running_requests = a.server.max_running_requests;
  so.chunked_prefill_size = a.server.chunked_prefill_size;
  so.max_model_len = a.server.max_model_len;
  so.kv_memory_bytes = a.kv_budget_bytes;
  so.kv_memory_fraction = a.server.mem_fraction_static;
  so.enable_prefix_cache = !a.disable_prefix_cache;
  so.overlap_schedule = !a.disable_overlap_schedule;
  so.max_logit_rows = a.max_logit_rows;
  so.dist = m.dist.get();
  so.on_group_failure = [](const Status& s) {
    // No step can run any more: end the server (the other ranks end too).
    std::fprintf(stderr, "dsrt: error: tensor-parallel group failed, stopping: %s\n", s.message().c_str());
    std::fflush(stderr);
    std::_Exit(1);
  };
  if (cuda) {
    so.mem_fraction_static = a.mem_fraction_given ? a.server.mem_fraction_static : 0.0;  // 0: 0.88
    so.gpu = device_options(a.load, a.cuda);
    so.log = [](const std::string& line) {
      std::fprintf(stderr, "dsrt: %s\n", line.c_str());
      std::fflush(stderr);
    };
  }
  DS_ASSIGN_OR_RETURN(auto engine, ServingEngine::create(*m.plan, *m.weights, so));
  if (cuda) {
    const ExecutorStartup& st = engine->startup();
    print_weight_load(st.weight_bytes, st.weights_load_s);
    const double total = std::chrono::duration<double>(Clock::now() - t0).count();
    std::fprintf(stderr,
                 "dsrt: startup: plan load %.2f s, weights load %.2f s, kernel load %.2f s, graph capture %.2f s, "
                 "total to ready %.2f s\n",
                 plan_s, st.weights_load_s, st.kernel_load_s, st.graph_capture_s, total);
    std::fflush(stderr);
  }
  return http::run_server(a.server, *engine, *m.plan);
}

}  // namespace ds::cli
