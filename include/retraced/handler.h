// What a worker runs: handlers registered by job type, and the extension
// points around them (a classifier for failures, lifecycle hooks).
#ifndef RETRACED_HANDLER_H_
#define RETRACED_HANDLER_H_

#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "retraced/classify.h"
#include "retraced/job.h"

namespace retraced {

// What a handler sees of the job it runs. Valid for the duration of the call.
struct JobContext {
  const Job& job;          // fields only: attempts and events are not loaded
  const Attempt& attempt;  // the attempt being run: n, trigger, worker, lateness
  // Requested when the attempt must end early: its timeout passed, its lease
  // was lost, or the worker is stopping past its grace period. A handler that
  // checks it can return early; its result is then discarded.
  std::stop_token stop;
};

// A handler's answer: success, or a failure with (optionally) its class and a code.
class HandlerResult {
 public:
  static HandlerResult Success() { return HandlerResult(); }
  static HandlerResult Failure(HandlerFailure f) { return HandlerResult(std::move(f)); }
  static HandlerResult Temporary(std::string code, std::string message, std::string detail = "") {
    return Failure(
        {ErrorClass::kTemporary, std::move(code), std::move(message), std::move(detail)});
  }
  static HandlerResult Permanent(std::string code, std::string message, std::string detail = "") {
    return Failure(
        {ErrorClass::kPermanent, std::move(code), std::move(message), std::move(detail)});
  }
  // A failure whose class the queue's settings decide.
  static HandlerResult Unclassified(std::string code, std::string message,
                                    std::string detail = "") {
    return Failure({std::nullopt, std::move(code), std::move(message), std::move(detail)});
  }

  bool ok() const { return !failure_; }
  const HandlerFailure& failure() const { return *failure_; }

 private:
  HandlerResult() = default;
  explicit HandlerResult(HandlerFailure f) : failure_(std::move(f)) {}
  std::optional<HandlerFailure> failure_;
};

// Runs one attempt of a job. May be called from several threads at once.
// An exception escaping it is a failure with code UNHANDLED_EXCEPTION.
using Handler = std::function<HandlerResult(const JobContext&)>;

// A custom classifier: sees every failure before the standard rules
// (classify.h) and may set its class or change its code, e.g. to call
// "429 Too Many Requests" a temporary RATE_LIMITED. Called from several threads.
using FailureClassifier = std::function<void(const Job& job, HandlerFailure& failure)>;

// What happened to an attempt, as the lifecycle hooks see it.
struct AttemptReport {
  const Job& job;          // fields only
  const Attempt& attempt;  // ended: outcome, error, decision set
  JobState state;          // where the job went
};

// Lifecycle hooks, for alerting and metrics. Every method is optional and is
// called after the store has recorded the change. A hook that throws is
// logged and ignored: it never changes what happened to the job.
// Methods may be called from several threads at once.
class LifecycleHooks {
 public:
  virtual ~LifecycleHooks() = default;
  virtual void AfterAttempt(const AttemptReport&) {}      // every attempt that ended
  virtual void OnRetryScheduled(const AttemptReport&) {}  // the policy planned a retry
  virtual void OnDead(const AttemptReport&) {}            // the job went to the dead letter queue
  // A worker started the first run after a manual replay (trigger manual).
  virtual void OnReplay(const Job& /*job*/, const Attempt& /*attempt*/) {}
};

}  // namespace retraced

#endif  // RETRACED_HANDLER_H_
