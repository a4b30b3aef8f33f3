// The schedule a policy produces for a job that always fails.
#include "retraced/decide.h"
#include "retraced/job.h"

namespace retraced {

std::vector<ExplainRow> ExplainPolicy(const RetryPolicy& policy, std::string_view job_id,
                                      TimePoint start) {
  std::vector<ExplainRow> rows;
  RetryContext ctx;
  ctx.job_id = std::string(job_id);
  ctx.deadline_at = DeadlineAt(policy, start);
  Failure failure;
  failure.outcome = Outcome::kFailed;
  failure.error_class = ErrorClass::kTemporary;
  Millis elapsed{0};
  for (int n = 1;; ++n) {
    ctx.attempt = n;
    ctx.run_in_sequence = n;
    ctx.now = start + elapsed;
    ExplainRow row;
    row.attempt = n;
    row.trigger = std::string(Name(n == 1 ? Trigger::kInitial : Trigger::kAuto));
    row.starts_after = elapsed;
    row.decision = Decide(policy, ctx, failure);
    bool retry = row.decision.action == Action::kRetry;
    if (retry) {
      ctx.previous_delay = row.decision.delay;
      elapsed += row.decision.delay;
    }
    rows.push_back(std::move(row));
    if (!retry) return rows;
  }
}

}  // namespace retraced
