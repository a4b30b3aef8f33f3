// Names of the job vocabularies and the state machine.
#include <utility>

#include "core/names.h"
#include "retraced/job.h"

namespace retraced {
namespace {

using internal::NameIn;
using internal::ParseIn;

constexpr std::pair<JobState, std::string_view> kStates[] = {
    {JobState::kScheduled, "scheduled"}, {JobState::kReady, "ready"},
    {JobState::kActive, "active"},       {JobState::kRetryWait, "retry_wait"},
    {JobState::kCompleted, "completed"}, {JobState::kDead, "dead"},
    {JobState::kCancelled, "cancelled"},
};
constexpr std::pair<Trigger, std::string_view> kTriggers[] = {
    {Trigger::kInitial, "initial"},
    {Trigger::kAuto, "auto"},
    {Trigger::kManual, "manual"},
    {Trigger::kRecovery, "recovery"},
};
constexpr std::pair<Outcome, std::string_view> kOutcomes[] = {
    {Outcome::kSucceeded, "succeeded"},
    {Outcome::kFailed, "failed"},
    {Outcome::kLeaseExpired, "lease_expired"},
    {Outcome::kTimedOut, "timed_out"},
};
constexpr std::pair<ErrorClass, std::string_view> kClasses[] = {
    {ErrorClass::kTemporary, "temporary"},
    {ErrorClass::kPermanent, "permanent"},
};
constexpr std::pair<Action, std::string_view> kActions[] = {
    {Action::kRetry, "retry"},
    {Action::kDead, "dead"},
    {Action::kNone, "none"},
};
constexpr std::pair<DeadReason, std::string_view> kDeadReasons[] = {
    {DeadReason::kPermanentError, "permanent_error"},
    {DeadReason::kAttemptsExhausted, "attempts_exhausted"},
    {DeadReason::kDeadlineExceeded, "deadline_exceeded"},
    {DeadReason::kPoison, "poison"},
    {DeadReason::kCancelled, "cancelled"},
};

}  // namespace

std::string_view Name(JobState s) { return NameIn(kStates, s); }
std::string_view Name(Trigger t) { return NameIn(kTriggers, t); }
std::string_view Name(Outcome o) { return NameIn(kOutcomes, o); }
std::string_view Name(ErrorClass c) { return NameIn(kClasses, c); }
std::string_view Name(Action a) { return NameIn(kActions, a); }
std::string_view Name(DeadReason r) { return NameIn(kDeadReasons, r); }

Result<JobState> ParseJobState(std::string_view t) { return ParseIn(kStates, t, "job state"); }
Result<Trigger> ParseTrigger(std::string_view t) { return ParseIn(kTriggers, t, "trigger"); }
Result<Outcome> ParseOutcome(std::string_view t) { return ParseIn(kOutcomes, t, "outcome"); }
Result<ErrorClass> ParseErrorClass(std::string_view t) {
  return ParseIn(kClasses, t, "error class");
}
Result<Action> ParseAction(std::string_view t) { return ParseIn(kActions, t, "action"); }
Result<DeadReason> ParseDeadReason(std::string_view t) {
  return ParseIn(kDeadReasons, t, "dead reason");
}

bool IsTerminal(JobState s) {
  return s == JobState::kCompleted || s == JobState::kDead || s == JobState::kCancelled;
}

Status CheckTransition(JobState from, JobState to) {
  using S = JobState;
  bool legal = false;
  switch (from) {
    case S::kScheduled:
      legal = to == S::kReady || to == S::kCancelled;
      break;
    case S::kReady:
      legal = to == S::kActive || to == S::kCancelled;
      break;
    case S::kActive:
      legal = to == S::kCompleted || to == S::kRetryWait || to == S::kReady || to == S::kDead ||
              to == S::kCancelled;
      break;
    case S::kRetryWait:
      legal = to == S::kReady || to == S::kDead || to == S::kCancelled;
      break;
    case S::kDead:
    case S::kCancelled:
      legal = to == S::kReady || to == S::kScheduled;
      break;
    case S::kCompleted:
      legal = false;
      break;
  }
  if (legal) return Status::Ok();
  return Status::FailedPrecondition("a job cannot move from " + std::string(Name(from)) + " to " +
                                    std::string(Name(to)));
}

std::string ReplayModeText(const Replay& r) {
  if (r.mode == Replay::Mode::kFresh) return "fresh";
  return "more=" + std::to_string(r.more);
}

Status ParseReplayMode(std::string_view text, Replay& r) {
  if (text == "fresh") {
    r.mode = Replay::Mode::kFresh;
    r.more = 0;
    return Status::Ok();
  }
  constexpr std::string_view kMore = "more=";
  if (text.substr(0, kMore.size()) == kMore) {
    std::string_view digits = text.substr(kMore.size());
    int n = 0;
    bool ok = !digits.empty() && digits.size() <= 5;
    for (char c : digits) {
      if (c < '0' || c > '9') ok = false;
      if (ok) n = n * 10 + (c - '0');
    }
    if (ok && n >= 1 && n <= kMaxPolicyRetries) {
      r.mode = Replay::Mode::kMore;
      r.more = n;
      return Status::Ok();
    }
  }
  return Status::InvalidArgument("invalid replay mode '" + std::string(text) +
                                 "': expected 'fresh' or 'more=N' with N from 1 to 10000");
}

}  // namespace retraced
