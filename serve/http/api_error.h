// Errors returned to HTTP clients, in the shape vLLM's OpenAI server uses:
//   {"error": {"message": "...", "type": "BadRequestError", "param": "temperature", "code": 400}}
#pragma once

#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace ds::http {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "BadRequestError";
  std::string param;        // "" -> null
  nlohmann::json code;      // null -> the HTTP status

  static ApiError bad_request(std::string message, std::string param = "") {
    ApiError e;
    e.message = std::move(message);
    e.param = std::move(param);
    return e;
  }
  static ApiError not_found(std::string message) {
    ApiError e;
    e.status = 404;
    e.type = "NotFoundError";
    e.message = std::move(message);
    return e;
  }
  static ApiError unauthorized() {
    ApiError e;
    e.status = 401;
    e.type = "invalid_request_error";
    e.message = "Incorrect API key provided.";
    e.code = "invalid_api_key";
    return e;
  }
  static ApiError make(int status, std::string type, std::string message) {
    ApiError e;
    e.status = status;
    e.type = std::move(type);
    e.message = std::move(message);
    return e;
  }
  static ApiError unavailable() { return make(503, "ServiceUnavailableError", "the server is shutting down"); }
  static ApiError internal(std::string message) {
    ApiError e;
    e.status = 500;
    e.type = "InternalServerError";
    e.message = std::move(message);
    return e;
  }

  nlohmann::json to_json() const {
    nlohmann::json err = {{"message", message}, {"type", type}};
    err["param"] = param.empty() ? nlohmann::json() : nlohmann::json(param);
    err["code"] = code.is_null() ? nlohmann::json(status) : code;
    return nlohmann::json{{"error", std::move(err)}};
  }
};

// A value or the error that a client gets instead.
template <typename T>
class ApiResult {
 public:
  ApiResult(T value) : value_(std::move(value)) {}        // NOLINT(implicit)
  ApiResult(ApiError error) : error_(std::move(error)) {}  // NOLINT(implicit)
  bool ok() const { return value_.has_value(); }
  const ApiError& error() const { return *error_; }
  T& value() { return *value_; }
  T& operator*() { return *value_; }
  T* operator->() { return &*value_; }

 private:
  std::optional<T> value_;
  std::optional<ApiError> error_;
};

}  // namespace ds::http
