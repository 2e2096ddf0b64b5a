// Options of `dsrt serve` (SGLang / vLLM flag names). The HTTP layer uses
// host, port, api_key, served_model_name, max_model_len, reasoning_parser and
// log_level; max_running_requests, chunked_prefill_size and
// mem_fraction_static configure the serving backend that the caller builds
// (see kv_cache_budget_bytes) and also size the server's connection pool.
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
  double mem_fraction_static = 0.9;    // see kv_cache_budget_bytes
  std::string reasoning_parser;        // "" or "deepseek_r1"
  std::string log_level = "info";      // debug | info | warning | error

  // Names the offending flag.
  Status validate() const;
  LogLevel level() const;
};

// KV-cache byte budget of the CPU backend, with SGLang's meaning of
// --mem-fraction-static ("fraction of memory for static allocation: weights and
// KV cache"): floor(fraction x total_memory_bytes) - weight_bytes.
// `total_memory_bytes` is the machine's physical memory on the CPU backend
// (physical_memory_bytes()). An error if nothing is left for the KV cache.
Result<int64_t> kv_cache_budget_bytes(double mem_fraction_static, int64_t total_memory_bytes,
                                      int64_t weight_bytes);
int64_t physical_memory_bytes();

}  // namespace ds::http
