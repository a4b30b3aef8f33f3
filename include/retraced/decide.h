// The retry decision: the pure function that applies a job's retry policy to
// a failed attempt and says retry (when, after which delay, by which phase) or
// dead (why), in numbers and in words. Also the "explain" schedule built on it.
#ifndef RETRACED_DECIDE_H_
#define RETRACED_DECIDE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "retraced/job.h"
#include "retraced/retry_policy.h"

namespace retraced {

// A failed attempt as the decision sees it: how it ended and its classified error.
struct Failure {
  Outcome outcome = Outcome::kFailed;
  ErrorClass error_class = ErrorClass::kTemporary;
  std::string code;
  // Why the error has its class when it is not the handler's own word, e.g.
  // "dead_on in policy", "queue table", "unclassified: default"; else empty.
  std::string class_source;
};

// Everything a decision depends on besides the policy. Small and explicit, so
// a store or worker can fill it from counters it keeps; ContextFor() derives it
// from a job's full history.
struct RetryContext {
  std::string job_id;         // seeds the jitter generator, with `attempt`
  int attempt = 1;            // 1-based number of the attempt that just ended
  int run_in_sequence = 1;    // 1-based index of that attempt since the job
                              // started or was last replayed
  std::optional<int> budget;  // runs allowed in this sequence when a replay
                              // gave "more=N"; unset: the policy's own budget
  Millis previous_delay{0};   // delay of the previous retry in this sequence
  std::optional<TimePoint> deadline_at;
  int lease_expired_in_row = 0;  // consecutive lease expirations in this sequence,
                                 // this one included
  int poison_after = 3;          // that many in a row make the job poison (0: never)
  TimePoint now;
};

// The deadline a policy's deadline= gives a job whose retries start counting
// at `from`: its creation, or a manual replay. Stores set
// Job::deadline_at from it unless the producer gave one.
std::optional<TimePoint> DeadlineAt(const RetryPolicy& policy, TimePoint from);

// Builds the context for `failed`, which must be the last attempt in job.attempts.
RetryContext ContextFor(const Job& job, const Attempt& failed, TimePoint now, int poison_after = 3);

// The decision after a failed attempt: retry after a delay (with the phase,
// delay before and after jitter, and next run time) or dead with a reason.
// Pure: the same inputs always give the same Decision,
// the jitter being drawn from a generator seeded by (job id, attempt).
Decision Decide(const RetryPolicy& policy, const RetryContext& ctx, const Failure& failure);

// The decision after a successful attempt.
Decision SuccessDecision();

// The evidence kept with a dead job: one line per attempt of its last run of
// retries (the 20 latest, with a line counting those left out), then the
// decision's reason. `attempts` is the job's history, the final one included.
std::vector<std::string> DeadEvidence(const std::vector<Attempt>& attempts,
                                      const Decision& decision);

// ---------------------------------------------------------------------------
// Explain: the schedule a policy produces for a job created at `start` that
// runs at once, always fails with a temporary error, and whose every attempt
// starts on time and ends at once.

struct ExplainRow {
  int attempt = 0;         // 1-based
  std::string trigger;     // "initial" or "auto"
  Millis starts_after{0};  // from the first run
  Decision decision;       // what followed the failure of this attempt
};

std::vector<ExplainRow> ExplainPolicy(const RetryPolicy& policy, std::string_view job_id,
                                      TimePoint start);

}  // namespace retraced

#endif  // RETRACED_DECIDE_H_
