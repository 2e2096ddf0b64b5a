// Options of `dsrt serve` (SGLang / vLLM flag names). The HTTP layer uses
// host, port, api_key, served_model_name, max_model_len, reasoning_parser and
// log_level; max_running_requests, chunked_prefill_size and
// mem_fraction_static configure the serving backend that the caller builds
// (max_running_requests also sizes the server's connection pool).
//
// --mem-fraction-static on the CPU backend: the KV-cache pool gets
// floor(mem_fraction_static x KV byte budget) bytes, where the budget is
// `dsrt serve --kv-budget-bytes` (ServingOptions::kv_memory_bytes /
// kv_memory_fraction). Without a budget the pool holds
// max(max_model_len, 256 x max_running_requests) tokens and the fraction is unused.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/common/status.h"

namespace ds::http {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 30000;                    // 0: any free port (printed at start)
  std::string api_key;                 // non-empty: "Authorization: Bearer <key>" on every route but /health
  std::string served_model_name;       // empty: the plan's model name
  int64_t max_model_len = 0;           // 0: the backend's; else at most the backend's
  int64_t max_running_requests = 256;  // backend batch limit; the server accepts this many streams at once
  int64_t chunked_prefill_size = 0;    // backend: tokens per step (0: the backend's default)
  double mem_fraction_static = 0.9;    // fraction of the KV byte budget (see above)
  std::string reasoning_parser;        // "" or "deepseek_r1"
  std::string log_level = "info";      // debug | info | warning | error

  // Names the offending flag.
  Status validate() const;
  LogLevel level() const;
};


}  // namespace ds::http
