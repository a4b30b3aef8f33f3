// Errors as values. A Status is OK or carries one code from a closed set and a
// message that names the operation that failed; Result<T> is a T or a non-OK
// Status. Both are plain values: copyable, and safe to share read-only.
#ifndef RETRACED_STATUS_H_
#define RETRACED_STATUS_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace retraced {

enum class StatusCode {
  kOk,
  kNotFound,            // the named job, queue or record does not exist
  kInvalidArgument,     // the caller's input is malformed or out of range
  kFailedPrecondition,  // the input is fine but the current state forbids it
  kConflict,            // lost a race: stale fencing token, duplicate id
  kUnavailable,         // a backend cannot be reached right now; retrying may help
  kInternal,            // a broken invariant or an unexpected third-party error
};

// "ok", "not_found", "invalid_argument", ...
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status Conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "invalid_argument: <message>", or "ok".
  std::string ToString() const;

  // A copy whose message is "<context>: <message>".
  Status WithContext(std::string_view context) const;

  friend bool operator==(const Status&, const Status&) = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value of type T, or the Status saying why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = Status::Internal("Result built from an OK status without a value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  // Precondition: ok().
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T&& operator*() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace retraced

#define RETRACED_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::retraced::Status retraced_status_ = (expr);        \
    if (!retraced_status_.ok()) return retraced_status_; \
  } while (0)

#define RETRACED_CONCAT_INNER_(a, b) a##b
#define RETRACED_CONCAT_(a, b) RETRACED_CONCAT_INNER_(a, b)

// Declares or assigns `lhs` from a Result expression, returning its Status on failure:
//   RETRACED_ASSIGN_OR_RETURN(Job job, store.GetJob(id));
#define RETRACED_ASSIGN_OR_RETURN(lhs, expr)                      \
  auto RETRACED_CONCAT_(retraced_result_, __LINE__) = (expr);     \
  if (!RETRACED_CONCAT_(retraced_result_, __LINE__).ok())         \
    return RETRACED_CONCAT_(retraced_result_, __LINE__).status(); \
  lhs = std::move(*RETRACED_CONCAT_(retraced_result_, __LINE__))

#endif  // RETRACED_STATUS_H_
