// dsrt serve: the OpenAI-compatible server (serve/http) over the continuous-
// batching ServingEngine (runtime/scheduler) on the CPU or CUDA backend.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>

#include "runtime/common/status.h"
#include "serve/cli/cli_common.h"
#include "serve/http/server_options.h"

namespace ds::cli {

struct ServeArgs {
  LoadOptions load;
  http::ServerOptions server;
  int64_t kv_budget_bytes = 0;  // CPU KV byte budget; the pool gets mem_fraction_static of it (0: token default)
  bool disable_prefix_cache = false;
  bool disable_overlap_schedule = false;
  int64_t max_logit_rows = 0;   // logit rows per step (0: ServingOptions' default)
  bool mem_fraction_given = false;  // --mem-fraction-static on the command line
  bool enable_reasoning = false;    // --enable-reasoning (vLLM): requires --reasoning-parser
  CudaArgs cuda;                    // sm_* plans (mem_fraction_static comes from server.mem_fraction_static)
};

// Registers the serve flags (not the plan / load flags) on `cmd`.
void add_serve_options(CLI::App* cmd, ServeArgs& args);
Status run_serve(const ServeArgs& args);

}  // namespace ds::cli
