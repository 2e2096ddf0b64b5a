#include "tools/bench/dsbench/client.h"

#include <httplib.h>

#include <chrono>
#include <cmath>

#include "tools/bench/dsbench/sse.h"

namespace ds::bench {

using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void set_timeout(httplib::Client& cli, double seconds, void (httplib::Client::*setter)(time_t, time_t)) {
  seconds = std::max(seconds, 0.001);
  const double whole = std::floor(seconds);
  (cli.*setter)(static_cast<time_t>(whole), static_cast<time_t>((seconds - whole) * 1e6));
}

httplib::Headers auth_headers(const ClientConfig& cfg) {
  httplib::Headers h;
  if (!cfg.api_key.empty()) h.emplace("Authorization", "Bearer " + cfg.api_key);
  return h;
}

std::string describe_error(httplib::Error e, const std::string& server) {
  switch (e) {
    case httplib::Error::Connection:
      return "cannot connect to " + server;
    case httplib::Error::ConnectionTimeout:
      return "connection to " + server + " timed out";
    case httplib::Error::Read:
      return "connection closed or timed out while reading the response";
    case httplib::Error::Write:
      return "connection closed while sending the request";
    default:
      return "HTTP request failed: " + httplib::to_string(e);
  }
}

constexpr size_t kMaxErrorBody = 64 * 1024;
constexpr size_t kMaxSseBuffer = 16 * 1024 * 1024;

}  // namespace

Result<ServerUrl> parse_base_url(const std::string& url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos)
    return Status::Error(StrCat() << "--base-url '" << url << "' must start with http:// or https://");
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https")
    return Status::Error(StrCat() << "--base-url '" << url << "': unsupported scheme '" << scheme << "'");
  const size_t host_start = scheme_end + 3;
  const size_t path_start = url.find('/', host_start);
  ServerUrl out;
  out.scheme_host_port = url.substr(0, path_start);
  if (out.scheme_host_port.size() <= host_start)
    return Status::Error(StrCat() << "--base-url '" << url << "' has no host");
  std::string path = path_start == std::string::npos ? std::string() : url.substr(path_start);
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, "/v1") == 0) path.resize(path.size() - 3);
  out.path_prefix = path;
  return out;
}

bool ActiveClients::add(httplib::Client* c) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_.load()) return false;
  clients_.insert(c);
  return true;
}

void ActiveClients::remove(httplib::Client* c) {
  std::lock_guard<std::mutex> lock(mu_);
  clients_.erase(c);
}

void ActiveClients::stop_all() {
  std::lock_guard<std::mutex> lock(mu_);
  stopped_.store(true);
  for (httplib::Client* c : clients_) c->stop();
}

json build_request_body(const ClientConfig& cfg, const BenchRequest& req) {
  json body = json::object();
  body["model"] = cfg.model;
  if (cfg.endpoint == ApiEndpoint::kChat) {
    body["messages"] = req.messages.is_array() && !req.messages.empty()
                           ? req.messages
                           : json::array({json{{"role", "user"}, {"content", req.prompt}}});
  } else {
    body["prompt"] = req.prompt;
  }
  body["max_tokens"] = req.output_len;
  body["temperature"] = 0.0;
  if (cfg.ignore_eos) body["ignore_eos"] = true;
  body["stream"] = cfg.stream;
  if (cfg.stream) body["stream_options"] = {{"include_usage", true}};
  if (cfg.extra_body.is_object())
    for (auto it = cfg.extra_body.begin(); it != cfg.extra_body.end(); ++it) body[it.key()] = it.value();
  return body;
}

RequestOutcome send_request(const ClientConfig& cfg, const BenchRequest& req, ActiveClients& active,
                            double read_timeout_s) {
  RequestOutcome out;
  out.sent = true;
  out.streamed = cfg.stream;
  httplib::Client cli(cfg.server.scheme_host_port);
  if (!cli.is_valid()) {
    out.error = "invalid server URL " + cfg.server.scheme_host_port;
    return out;
  }
  set_timeout(cli, cfg.connect_timeout_s, &httplib::Client::set_connection_timeout);
  set_timeout(cli, read_timeout_s, &httplib::Client::set_read_timeout);
  set_timeout(cli, 60, &httplib::Client::set_write_timeout);
  cli.set_keep_alive(false);

  httplib::Request hreq;
  hreq.method = "POST";
  hreq.path = cfg.server.path_prefix +
              (cfg.endpoint == ApiEndpoint::kChat ? "/v1/chat/completions" : "/v1/completions");
  hreq.headers = auth_headers(cfg);
  hreq.headers.emplace("Content-Type", "application/json");
  if (cfg.stream) hreq.headers.emplace("Accept", "text/event-stream");
  hreq.body = build_request_body(cfg, req).dump(-1, ' ', false, json::error_handler_t::replace);

  int status = 0;
  std::string body;          // non-streamed body, or an error body
  bool done = false;         // saw [DONE]
  std::string stream_error;  // protocol or server-reported error inside the stream
  SseParser sse;
  const Clock::time_point t0 = Clock::now();
  double last_text_s = 0;

  auto on_event = [&](std::string_view data) -> bool {
    auto piece = parse_stream_data(data, cfg.endpoint);
    if (!piece.ok()) {
      stream_error = piece.status().message();
      return false;
    }
    if (piece->error) {
      stream_error = "server error in stream: " + *piece->error;
      return false;
    }
    if (piece->done) {
      done = true;
      return true;
    }
    if (!piece->text.empty()) {
      const double now = seconds_since(t0);
      if (out.chunks == 0) {
        out.ttft_s = now;
      } else {
        out.itl_s.push_back(now - last_text_s);
      }
      last_text_s = now;
      ++out.chunks;
      out.generated_text += piece->text;
    }
    if (piece->finish_reason) out.finish_reason = *piece->finish_reason;
    if (piece->prompt_tokens) out.usage_prompt_tokens = piece->prompt_tokens;
    if (piece->completion_tokens) out.usage_completion_tokens = piece->completion_tokens;
    return true;
  };

  hreq.response_handler = [&](const httplib::Response& r) {
    status = r.status;
    return true;
  };
  hreq.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) -> bool {
    if (active.stopped()) return false;
    if (status != 200 || !cfg.stream) {
      if (status != 200 && body.size() >= kMaxErrorBody) return true;
      body.append(data, len);
      return true;
    }
    if (!sse.feed(std::string_view(data, len), on_event)) return false;
    if (sse.buffered() > kMaxSseBuffer) {
      stream_error = "stream event larger than 16 MiB";
      return false;
    }
    return true;
  };

  if (!active.add(&cli)) {
    out.aborted = true;
    out.sent = false;
    out.error = "not sent: benchmark stopped";
    return out;
  }
  httplib::Result res = cli.send(hreq);
  active.remove(&cli);
  out.e2e_s = seconds_since(t0);
  out.http_status = status;

  if (active.stopped() && (!res || (cfg.stream && !done))) {
    out.aborted = true;
    out.error = "aborted: benchmark stopped (--max-duration or interrupt)";
    return out;
  }
  if (!stream_error.empty()) {
    out.error = stream_error;
    return out;
  }
  if (!res) {
    out.error = describe_error(res.error(), cfg.server.scheme_host_port);
    return out;
  }
  if (status != 200) {
    out.error = StrCat() << "HTTP " << status << ": " << error_message_from_body(body);
    return out;
  }
  if (cfg.stream) {
    if (!sse.finish(on_event) || !stream_error.empty()) {
      out.error = stream_error.empty() ? "bad final stream event" : stream_error;
      return out;
    }
    if (!done) {
      out.error = "stream ended without 'data: [DONE]'";
      return out;
    }
    if (out.chunks == 0) out.ttft_s = out.e2e_s;
  } else {
    auto piece = parse_response_body(body, cfg.endpoint);
    if (!piece.ok()) {
      out.error = piece.status().message();
      return out;
    }
    if (piece->error) {
      out.error = "server error: " + *piece->error;
      return out;
    }
    out.generated_text = std::move(piece->text);
    out.chunks = out.generated_text.empty() ? 0 : 1;
    out.usage_prompt_tokens = piece->prompt_tokens;
    out.usage_completion_tokens = piece->completion_tokens;
    if (piece->finish_reason) out.finish_reason = *piece->finish_reason;
    out.ttft_s = out.e2e_s;
  }
  out.success = true;
  return out;
}

Result<std::string> fetch_default_model(const ClientConfig& cfg) {
  httplib::Client cli(cfg.server.scheme_host_port);
  if (!cli.is_valid()) return Status::Error("invalid server URL " + cfg.server.scheme_host_port);
  set_timeout(cli, cfg.connect_timeout_s, &httplib::Client::set_connection_timeout);
  set_timeout(cli, 30, &httplib::Client::set_read_timeout);
  const std::string path = cfg.server.path_prefix + "/v1/models";
  auto res = cli.Get(path, auth_headers(cfg));
  if (!res)
    return Status::Error(StrCat() << "GET " << cfg.server.scheme_host_port << path << ": "
                                  << describe_error(res.error(), cfg.server.scheme_host_port));
  if (res->status != 200)
    return Status::Error(StrCat() << "GET " << path << ": HTTP " << res->status << ": "
                                  << error_message_from_body(res->body));
  json j = json::parse(res->body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].is_object() || !j["data"][0].contains("id") || !j["data"][0]["id"].is_string())
    return Status::Error(StrCat() << "GET " << path << ": expected {\"data\": [{\"id\": ...}]}, got '"
                                  << res->body.substr(0, 200) << "'");
  return j["data"][0]["id"].get<std::string>();
}

}  // namespace ds::bench
