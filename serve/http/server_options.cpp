#include "serve/http/server_options.h"

#include "serve/http/reasoning_parser.h"

namespace ds::http {

Status ServerOptions::validate() const {
  if (host.empty()) return Status::Error("--host: must not be empty");
  if (port < 0 || port > 65535) return Status::Error(StrCat() << "--port: " << port << " is not in [0, 65535]");
  if (max_model_len < 0) return Status::Error(StrCat() << "--max-model-len: " << max_model_len << " must be >= 0");
  if (max_running_requests < 1 || max_running_requests > 65536) {
    return Status::Error(StrCat() << "--max-running-requests: " << max_running_requests
                                  << " is not in [1, 65536]");
  }
  if (chunked_prefill_size < 0) {
    return Status::Error(StrCat() << "--chunked-prefill-size: " << chunked_prefill_size << " must be >= 0");
  }
  if (!(mem_fraction_static > 0.0 && mem_fraction_static <= 1.0)) {
    return Status::Error(StrCat() << "--mem-fraction-static: " << mem_fraction_static << " is not in (0, 1]");
  }
  if (!reasoning_parser.empty() && !is_known_reasoning_parser(reasoning_parser)) {
    return Status::Error(StrCat() << "--reasoning-parser: unknown parser '" << reasoning_parser
                                  << "' (known: deepseek_r1)");
  }
  if (log_level != "debug" && log_level != "info" && log_level != "warning" && log_level != "error") {
    return Status::Error(StrCat() << "--log-level: '" << log_level << "' is not debug, info, warning or error");
  }
  return Status::Ok();
}

LogLevel ServerOptions::level() const {
  if (log_level == "debug") return LogLevel::kDebug;
  if (log_level == "warning") return LogLevel::kWarning;
  if (log_level == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

}  // namespace ds::http
