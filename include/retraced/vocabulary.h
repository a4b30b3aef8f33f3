// The closed vocabularies of the job model. Each value has a fixed
// lower_snake text name used in JSON, the CLI and both stores; Parse* accepts
// exactly those names and names the expected ones when it refuses.
#ifndef RETRACED_VOCABULARY_H_
#define RETRACED_VOCABULARY_H_

#include <string_view>

#include "retraced/status.h"

namespace retraced {

enum class JobState { kScheduled, kReady, kActive, kRetryWait, kCompleted, kDead, kCancelled };
enum class Trigger { kInitial, kAuto, kManual, kRecovery };
enum class Outcome { kSucceeded, kFailed, kLeaseExpired, kTimedOut };
enum class ErrorClass { kTemporary, kPermanent };
enum class Action { kRetry, kDead, kNone };
enum class DeadReason {
  kPermanentError,
  kAttemptsExhausted,
  kDeadlineExceeded,
  kPoison,
  kCancelled
};

std::string_view Name(JobState s);
std::string_view Name(Trigger t);
std::string_view Name(Outcome o);
std::string_view Name(ErrorClass c);
std::string_view Name(Action a);
std::string_view Name(DeadReason r);

Result<JobState> ParseJobState(std::string_view text);
Result<Trigger> ParseTrigger(std::string_view text);
Result<Outcome> ParseOutcome(std::string_view text);
Result<ErrorClass> ParseErrorClass(std::string_view text);
Result<Action> ParseAction(std::string_view text);
Result<DeadReason> ParseDeadReason(std::string_view text);

}  // namespace retraced

#endif  // RETRACED_VOCABULARY_H_
