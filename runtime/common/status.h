// Status / Result: the error channel of every runtime API that can fail on bad
// input (files, plans, requests). Programming errors use DS_CHECK instead.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>

namespace ds {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !message_.has_value(); }
  const std::string& message() const {
    static const std::string kEmpty;
    return message_ ? *message_ : kEmpty;
  }
  // Prefixes context ("while loading X: ...").
  Status with_context(const std::string& context) const {
    if (ok()) return *this;
    return Status(context + ": " + *message_);
  }

 private:
  explicit Status(std::string m) : message_(std::move(m)) {}
  std::optional<std::string> message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT(implicit)
  Result(Status status) : v_(std::move(status)) {   // NOLINT(implicit)
    if (std::get<Status>(v_).ok()) v_ = Status::Error("internal: Result built from an OK status");
  }
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

// Builds a message with operator<<: ds::StrCat() << "tensor " << name.
class StrCat {
 public:
  template <typename V>
  StrCat& operator<<(const V& v) {
    os_ << v;
    return *this;
  }
  operator std::string() const { return os_.str(); }  // NOLINT(implicit)
  std::string str() const { return os_.str(); }

 private:
  std::ostringstream os_;
};

[[noreturn]] inline void check_failed(const char* file, int line, const char* expr,
                                      const std::string& msg) {
  std::fprintf(stderr, "%s:%d: CHECK failed: %s %s\n", file, line, expr, msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace ds

// Internal invariant; never used for conditions that bad input can trigger.
#define DS_CHECK(cond, ...)                                                        \
  do {                                                                             \
    if (!(cond)) ::ds::check_failed(__FILE__, __LINE__, #cond, ::ds::StrCat() __VA_OPT__(<<) __VA_ARGS__); \
  } while (0)

#define DS_RETURN_IF_ERROR(expr)              \
  do {                                        \
    ::ds::Status _ds_st = (expr);             \
    if (!_ds_st.ok()) return _ds_st;          \
  } while (0)

#define DS_CONCAT_INNER(a, b) a##b
#define DS_CONCAT(a, b) DS_CONCAT_INNER(a, b)
#define DS_ASSIGN_OR_RETURN(lhs, expr)                                   \
  auto DS_CONCAT(_ds_res_, __LINE__) = (expr);                           \
  if (!DS_CONCAT(_ds_res_, __LINE__).ok())                               \
    return DS_CONCAT(_ds_res_, __LINE__).status();                       \
  lhs = std::move(DS_CONCAT(_ds_res_, __LINE__)).value()

// Error with file:line, for failures of external APIs (CUDA, NCCL, syscalls).
#define DS_ERROR_HERE(msg) \
  ::ds::Status::Error(::ds::StrCat() << msg << " [" << __FILE__ << ":" << __LINE__ << "]")
