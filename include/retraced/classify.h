// Failure classification: turns what a handler reported into an Error whose
// class (temporary or permanent) decides whether the job is retried.
//
// Precedence, strongest first:
//   1. the job's policy: dead_on=[...] makes a code permanent, retry_on=[...] temporary;
//   2. the queue's code -> class table;
//   3. the class the handler gave;
//   4. the queue's class for unclassified failures (temporary unless configured).
//
// Exec handlers (any program) report through their exit status:
//   0 success; 75 (EX_TEMPFAIL) temporary; the other sysexits codes 64-78
//   permanent; any other status, or death by a signal, is unclassified. A JSON
//   object on the last line of stdout, {"class":..., "code":..., "message":...},
//   overrides class, code and message; the tail of stderr becomes the detail.
#ifndef RETRACED_CLASSIFY_H_
#define RETRACED_CLASSIFY_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "retraced/decide.h"
#include "retraced/job.h"

namespace retraced {

// Codes the runtime itself gives to failures.
inline constexpr std::string_view kCodeLeaseExpired = "LEASE_EXPIRED";
inline constexpr std::string_view kCodeTimedOut = "TIMED_OUT";
inline constexpr std::string_view kCodeUnhandledException = "UNHANDLED_EXCEPTION";
// A lease given up by a worker that stopped before the attempt finished. Not
// a sign of a poison job: it never counts toward poison.
inline constexpr std::string_view kCodeWorkerStopped = "WORKER_STOPPED";

// A failure as a handler reported it, before classification.
struct HandlerFailure {
  std::optional<ErrorClass> error_class;  // unset: the handler did not say
  std::string code;
  std::string message;
  std::string detail;
};

// A queue's classification settings.
struct ClassifierConfig {
  ErrorClass unclassified = ErrorClass::kTemporary;
  std::map<std::string, ErrorClass, std::less<>> codes;  // code -> class
};

struct Classified {
  Error error;         // capped, with its final class
  std::string source;  // why it has that class, empty when the handler said so
};

Classified Classify(const HandlerFailure& failure, const ClassifierConfig& config,
                    const RetryPolicy& policy);

// The decision's view of a classified failure.
Failure ToFailure(Outcome outcome, const Classified& c);

// How an exec handler's process ended.
struct ExecExit {
  bool signaled = false;    // killed by a signal rather than exiting
  int status = 0;           // exit status, or the signal number when signaled
  std::string stdout_text;  // at least its last line
  std::string stderr_text;  // at least its tail
};

// Success (nullopt) or the failure an exec handler's ending reports.
std::optional<HandlerFailure> FromExecExit(const ExecExit& exit);

// "EX_TEMPFAIL" for 75 and the like for 64-78; empty for others.
std::string_view SysexitsName(int status);

// The shape of an error message, for grouping failures that differ only in
// their numbers and ids: runs of digits become '#', and hex or base32 ids of
// 8 or more characters containing a digit become '*'. Capped at 200 bytes.
// "timeout after 30s on 10.0.0.5:5432" -> "timeout after #s on #.#.#.#:#".
std::string ErrorSignature(std::string_view message);

}  // namespace retraced

#endif  // RETRACED_CLASSIFY_H_
