#include <gtest/gtest.h>

#include "retraced/classify.h"
#include "retraced/decide.h"

namespace retraced {
namespace {

const TimePoint kNow = *ParseTime("2026-11-28T12:00:00.000Z");

RetryPolicy P(std::string_view text) {
  Result<RetryPolicy> p = ParsePolicy(text);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return *p;
}

Failure Temporary(std::string code = "TIMEOUT") {
  return Failure{Outcome::kFailed, ErrorClass::kTemporary, std::move(code), ""};
}

// The decision after the n-th run of a job that has only failed.
Decision After(const RetryPolicy& p, int n, std::string job_id = "job-1",
               Millis previous_delay = Millis(0)) {
  RetryContext ctx;
  ctx.job_id = std::move(job_id);
  ctx.attempt = n;
  ctx.run_in_sequence = n;
  ctx.previous_delay = previous_delay;
  ctx.now = kNow;
  return Decide(p, ctx, Temporary());
}

std::vector<int64_t> Delays(const RetryPolicy& p) {
  std::vector<int64_t> out;
  for (int n = 1;; ++n) {
    Decision d = After(p, n);
    if (d.action != Action::kRetry) return out;
    out.push_back(d.delay.count());
  }
}

TEST(Decide, FixedDelayForEveryRetryThenExhausted) {
  RetryPolicy p = P("fixed(2s, retries=3)");
  EXPECT_EQ(Delays(p), (std::vector<int64_t>{2000, 2000, 2000}));
  Decision last = After(p, 4);
  EXPECT_EQ(last.action, Action::kDead);
  EXPECT_EQ(last.dead_reason, DeadReason::kAttemptsExhausted);
  EXPECT_EQ(
      last.reason,
      "temporary error TIMEOUT; all 3 retries used (the policy allows 3 after the first run)");
  EXPECT_FALSE(last.next_run_at);
}

TEST(Decide, LinearAddsTheStepAndStopsAtMax) {
  EXPECT_EQ(Delays(P("linear(1s, retries=4)")), (std::vector<int64_t>{1000, 2000, 3000, 4000}));
  EXPECT_EQ(Delays(P("linear(1s, step=250ms, max=1500ms, retries=5)")),
            (std::vector<int64_t>{1000, 1250, 1500, 1500, 1500}));
  EXPECT_EQ(Delays(P("linear(0ms, step=100ms, retries=3)")), (std::vector<int64_t>{0, 100, 200}));
}

TEST(Decide, ExponentialMultipliesAndCaps) {
  EXPECT_EQ(Delays(P("exponential(200ms, retries=6)")),
            (std::vector<int64_t>{200, 400, 800, 1600, 3200, 6400}));
  EXPECT_EQ(Delays(P("exponential(200ms, max=1s, retries=6)")),
            (std::vector<int64_t>{200, 400, 800, 1000, 1000, 1000}));
  EXPECT_EQ(Delays(P("exponential(1s, factor=1.5, retries=4)")),
            (std::vector<int64_t>{1000, 1500, 2250, 3375}));
}

TEST(Decide, ExponentialWithoutMaxStopsAtTheHardCeiling) {
  RetryPolicy p = P("exponential(1s, factor=100, retries=50)");
  Decision d = After(p, 40);
  EXPECT_EQ(d.action, Action::kRetry);
  EXPECT_EQ(d.base_delay, kMaxPolicyDelay);
  EXPECT_EQ(d.delay, kMaxPolicyDelay);
}

TEST(Decide, ReasonNamesErrorStrategyRetryDelayAndNextRun) {
  Decision d = After(P("exponential(200ms, retries=5)"), 3);
  EXPECT_EQ(d.action, Action::kRetry);
  EXPECT_EQ(d.phase, 1);
  EXPECT_EQ(d.base_delay, Millis(800));
  EXPECT_EQ(d.jitter, Millis(0));
  EXPECT_EQ(d.delay, Millis(800));
  EXPECT_EQ(d.next_run_at, kNow + Millis(800));
  EXPECT_EQ(d.reason,
            "temporary error TIMEOUT; exponential, retry 3 of 5: 800ms; next run 12:00:00.800Z");
}

TEST(Decide, FullJitterStaysWithinZeroAndTheBaseDelay) {
  RetryPolicy p = P("exponential(200ms, max=30s, retries=8, jitter=full)");
  int64_t low = INT64_MAX, high = 0;
  for (int seed = 0; seed < 2000; ++seed) {
    Decision d = After(p, 3, "job-" + std::to_string(seed));
    ASSERT_EQ(d.base_delay, Millis(800));
    ASSERT_GE(d.delay.count(), 0);
    ASSERT_LE(d.delay.count(), 800);
    ASSERT_EQ(d.jitter, d.delay - d.base_delay);
    low = std::min(low, d.delay.count());
    high = std::max(high, d.delay.count());
  }
  EXPECT_LT(low, 40) << "draws should cover the whole range";
  EXPECT_GT(high, 760);
}

TEST(Decide, EqualJitterStaysWithinHalfAndAllOfTheBaseDelay) {
  RetryPolicy p = P("fixed(1s, retries=3, jitter=equal)");
  int64_t low = INT64_MAX, high = 0;
  for (int seed = 0; seed < 2000; ++seed) {
    Decision d = After(p, 1, "job-" + std::to_string(seed));
    ASSERT_GE(d.delay.count(), 500);
    ASSERT_LE(d.delay.count(), 1000);
    low = std::min(low, d.delay.count());
    high = std::max(high, d.delay.count());
  }
  EXPECT_LT(low, 525);
  EXPECT_GT(high, 975);
}

TEST(Decide, DecorrelatedJitterDrawsBetweenBaseAndThreeTimesThePreviousDelayUpToMax) {
  RetryPolicy p = P("exponential(100ms, max=2s, retries=10, jitter=decorrelated)");
  for (int seed = 0; seed < 2000; ++seed) {
    std::string id = "job-" + std::to_string(seed);
    Decision first = After(p, 1, id);
    ASSERT_GE(first.delay.count(), 100);
    ASSERT_LE(first.delay.count(), 300);  // previous delay is the base: 100..3*100
    Decision later = After(p, 5, id, Millis(900));
    ASSERT_GE(later.delay.count(), 100);
    ASSERT_LE(later.delay.count(), 2000);  // 3*900 is capped at max
  }
  Decision d = After(p, 2, "job-x", Millis(250));
  EXPECT_EQ(d.base_delay, Millis(750)) << "the top of the range is the delay before jitter";
  EXPECT_EQ(d.jitter, d.delay - d.base_delay);
  EXPECT_NE(d.reason.find("decorrelated jitter drew"), std::string::npos);
  EXPECT_NE(d.reason.find("from 100ms..750ms"), std::string::npos) << d.reason;
}

TEST(Decide, JitterIsDeterministicForAJobIdAndAttempt) {
  RetryPolicy p = P("exponential(1s, max=1m, retries=8, jitter=full)");
  for (int n = 1; n <= 8; ++n) {
    EXPECT_EQ(After(p, n, "01JD5X"), After(p, n, "01JD5X")) << "attempt " << n;
  }
  // Different ids or attempts draw differently (overwhelmingly often).
  int same = 0;
  for (int seed = 0; seed < 100; ++seed) {
    same += After(p, 5, "a" + std::to_string(seed)).delay ==
            After(p, 5, "b" + std::to_string(seed)).delay;
  }
  EXPECT_LT(same, 5);
  // Pinned values: a stored decision must be recomputable by any later build.
  EXPECT_EQ(After(P("exponential(200ms, max=30s, retries=8, jitter=full)"), 1, "example").delay,
            Millis(186));
  EXPECT_EQ(After(P("exponential(200ms, max=30s, retries=8, jitter=full)"), 3, "example").delay,
            Millis(457));
}

TEST(Decide, PhasesHandOverAtTheirBoundaries) {
  RetryPolicy p = P("phases(immediate(2), fixed(5s, retries=2), exponential(1s, retries=3))");
  std::vector<std::pair<int, int64_t>> got;  // (phase, delay)
  for (int n = 1; n <= 7; ++n) {
    Decision d = After(p, n);
    ASSERT_EQ(d.action, Action::kRetry) << n;
    got.emplace_back(d.phase, d.delay.count());
  }
  EXPECT_EQ(got, (std::vector<std::pair<int, int64_t>>{
                     {1, 0}, {1, 0}, {2, 5000}, {2, 5000}, {3, 1000}, {3, 2000}, {3, 4000}}));
  EXPECT_EQ(After(p, 8).dead_reason, DeadReason::kAttemptsExhausted);
  EXPECT_EQ(After(p, 5).reason,
            "temporary error TIMEOUT; phase 3/3 exponential, retry 1 of 3 (5 of 7 overall): 1s; "
            "next run 12:00:01.000Z");
}

TEST(Decide, DeadlineStopsARetryThatWouldRunPastIt) {
  RetryPolicy p = P("fixed(10s, retries=5)");
  RetryContext ctx;
  ctx.job_id = "j";
  ctx.now = kNow;
  ctx.deadline_at = kNow + Millis(10'000);
  Decision ok = Decide(p, ctx, Temporary());
  EXPECT_EQ(ok.action, Action::kRetry) << "a retry exactly at the deadline is allowed";
  ctx.deadline_at = kNow + Millis(9'999);
  Decision late = Decide(p, ctx, Temporary());
  EXPECT_EQ(late.action, Action::kDead);
  EXPECT_EQ(late.dead_reason, DeadReason::kDeadlineExceeded);
  EXPECT_EQ(late.delay, Millis(10'000)) << "the delay it would have used is kept as evidence";
  EXPECT_FALSE(late.next_run_at);
  EXPECT_EQ(late.reason,
            "temporary error TIMEOUT; fixed, retry 1 of 5: 10s; next run 12:00:10.000Z would be "
            "past the deadline 2026-11-28T12:00:09.999Z");
}

TEST(Decide, PermanentErrorsAreNeverRetried) {
  RetryContext ctx;
  ctx.job_id = "j";
  ctx.now = kNow;
  Failure f{Outcome::kFailed, ErrorClass::kPermanent, "INVALID_EMAIL", ""};
  Decision d = Decide(P("fixed(1s, retries=5)"), ctx, f);
  EXPECT_EQ(d.action, Action::kDead);
  EXPECT_EQ(d.dead_reason, DeadReason::kPermanentError);
  EXPECT_EQ(d.reason, "permanent error INVALID_EMAIL: not retried");
  EXPECT_EQ(d.phase, 0);
}

TEST(Decide, RetryOnAndDeadOnOverrideTheHandlerThroughClassification) {
  RetryPolicy p = P("fixed(1s, retries=5, retry_on=[HTTP_429], dead_on=[HTTP_404])");
  ClassifierConfig queue;
  RetryContext ctx;
  ctx.job_id = "j";
  ctx.now = kNow;

  Classified c404 = Classify({ErrorClass::kTemporary, "HTTP_404", "not found", ""}, queue, p);
  Decision d404 = Decide(p, ctx, ToFailure(Outcome::kFailed, c404));
  EXPECT_EQ(d404.action, Action::kDead);
  EXPECT_EQ(d404.reason,
            "permanent error HTTP_404 (dead_on in policy, handler said temporary): not retried");

  Classified c429 = Classify({ErrorClass::kPermanent, "HTTP_429", "slow down", ""}, queue, p);
  Decision d429 = Decide(p, ctx, ToFailure(Outcome::kFailed, c429));
  EXPECT_EQ(d429.action, Action::kRetry);
  EXPECT_TRUE(d429.reason.starts_with(
      "temporary error HTTP_429 (retry_on in policy, handler said permanent); fixed, retry 1 of 5"))
      << d429.reason;
}

TEST(Decide, NonePolicyNeverRetries) {
  Decision d = After(P("none"), 1);
  EXPECT_EQ(d.action, Action::kDead);
  EXPECT_EQ(d.dead_reason, DeadReason::kAttemptsExhausted);
  EXPECT_EQ(d.reason, "temporary error TIMEOUT; policy 'none' allows no retry");
}

TEST(Decide, PoisonAfterThreeLeaseExpirationsInARow) {
  RetryPolicy p = P("fixed(1s, retries=10)");
  RetryContext ctx;
  ctx.job_id = "j";
  ctx.now = kNow;
  ctx.attempt = ctx.run_in_sequence = 3;
  Failure lost{Outcome::kLeaseExpired, ErrorClass::kTemporary, std::string(kCodeLeaseExpired), ""};
  ctx.lease_expired_in_row = 2;
  EXPECT_EQ(Decide(p, ctx, lost).action, Action::kRetry);
  ctx.lease_expired_in_row = 3;
  Decision d = Decide(p, ctx, lost);
  EXPECT_EQ(d.action, Action::kDead);
  EXPECT_EQ(d.dead_reason, DeadReason::kPoison);
  EXPECT_EQ(d.reason,
            "lease expired 3 times in a row: each time, the worker running it died or stopped "
            "heartbeating (poison after 3)");
  ctx.poison_after = 0;
  EXPECT_EQ(Decide(p, ctx, lost).action, Action::kRetry) << "0 turns poison detection off";
}

TEST(Decide, ReplayWithMoreGivesExactlyThatManyRuns) {
  RetryPolicy p = P("fixed(1s, retries=1)");
  RetryContext ctx;
  ctx.job_id = "j";
  ctx.now = kNow;
  ctx.attempt = 5;
  ctx.budget = 3;
  ctx.run_in_sequence = 1;
  EXPECT_EQ(Decide(p, ctx, Temporary()).action, Action::kRetry);
  ctx.run_in_sequence = 2;
  Decision second = Decide(p, ctx, Temporary());
  EXPECT_EQ(second.action, Action::kRetry) << "the replay allows more than the policy's 1 retry";
  EXPECT_NE(second.reason.find("allowed by the replay"), std::string::npos);
  ctx.run_in_sequence = 3;
  Decision third = Decide(p, ctx, Temporary());
  EXPECT_EQ(third.action, Action::kDead);
  EXPECT_EQ(third.reason, "temporary error TIMEOUT; the replay allowed 3 runs and all were used");
}

TEST(Decide, ReplayWithMoreRunsAgainEvenUnderPolicyNone) {
  RetryContext ctx;
  ctx.job_id = "j";
  ctx.now = kNow;
  ctx.budget = 2;
  ctx.run_in_sequence = 1;
  Decision d = Decide(P("none"), ctx, Temporary());
  EXPECT_EQ(d.action, Action::kRetry);
  EXPECT_EQ(d.delay, Millis(0));
  EXPECT_EQ(d.next_run_at, kNow);
  ctx.run_in_sequence = 2;
  EXPECT_EQ(Decide(P("none"), ctx, Temporary()).dead_reason, DeadReason::kAttemptsExhausted);
}

// A job's history as the store would hold it.
Attempt Ran(int n, Trigger trigger, Outcome outcome, std::optional<Decision> decision) {
  Attempt a;
  a.n = n;
  a.trigger = trigger;
  a.started_at = kNow;
  a.ended_at = kNow;
  a.outcome = outcome;
  a.decision = std::move(decision);
  return a;
}

Decision RetryAfter(int64_t ms) {
  Decision d;
  d.action = Action::kRetry;
  d.delay = Millis(ms);
  return d;
}

TEST(ContextFor, CountsTheSequenceSinceTheLastManualReplay) {
  Job job;
  job.id = "01J";
  job.deadline_at = kNow + Millis(5000);
  job.attempts = {Ran(1, Trigger::kInitial, Outcome::kFailed, RetryAfter(100)),
                  Ran(2, Trigger::kAuto, Outcome::kFailed, std::nullopt)};
  RetryContext c = ContextFor(job, job.attempts[1], kNow);
  EXPECT_EQ(c.job_id, "01J");
  EXPECT_EQ(c.attempt, 2);
  EXPECT_EQ(c.run_in_sequence, 2);
  EXPECT_EQ(c.previous_delay, Millis(100));
  EXPECT_EQ(c.deadline_at, job.deadline_at);
  EXPECT_FALSE(c.budget);

  // Dead after attempt 2, replayed with more=2: attempt 3 is manual.
  Decision died;
  died.action = Action::kDead;
  died.dead_reason = DeadReason::kAttemptsExhausted;
  job.attempts[1].decision = died;
  job.replay = Replay{"alice", "fixed the SMTP creds", kNow, Replay::Mode::kMore, 2};
  job.attempts.push_back(Ran(3, Trigger::kManual, Outcome::kFailed, std::nullopt));
  c = ContextFor(job, job.attempts[2], kNow);
  EXPECT_EQ(c.run_in_sequence, 1);
  EXPECT_EQ(c.budget, 2);
  EXPECT_EQ(c.previous_delay, Millis(0)) << "delays do not carry over a replay";
}

TEST(ContextFor, CountsConsecutiveLeaseExpirations) {
  Job job;
  job.id = "01J";
  job.attempts = {Ran(1, Trigger::kInitial, Outcome::kLeaseExpired, RetryAfter(0)),
                  Ran(2, Trigger::kRecovery, Outcome::kFailed, RetryAfter(0)),
                  Ran(3, Trigger::kAuto, Outcome::kLeaseExpired, RetryAfter(0)),
                  Ran(4, Trigger::kRecovery, Outcome::kLeaseExpired, std::nullopt)};
  EXPECT_EQ(ContextFor(job, job.attempts[3], kNow).lease_expired_in_row, 2);
  EXPECT_EQ(ContextFor(job, job.attempts[1], kNow).lease_expired_in_row, 0);
}

TEST(ContextFor, AReplayStartsTheLeaseExpirationCountAgain) {
  // Regression: a poison job replayed and lost once more was counted 4 in a row.
  Job job;
  job.id = "01J";
  job.replay = Replay{"ops", "", kNow, Replay::Mode::kFresh, 0};
  job.attempts = {Ran(1, Trigger::kInitial, Outcome::kLeaseExpired, RetryAfter(0)),
                  Ran(2, Trigger::kRecovery, Outcome::kLeaseExpired, RetryAfter(0)),
                  Ran(3, Trigger::kRecovery, Outcome::kLeaseExpired, std::nullopt),
                  Ran(4, Trigger::kManual, Outcome::kLeaseExpired, std::nullopt)};
  EXPECT_EQ(ContextFor(job, job.attempts[3], kNow).lease_expired_in_row, 1);
}

TEST(DeadlineAt, CountsFromTheGivenStart) {
  EXPECT_EQ(DeadlineAt(P("fixed(1s, deadline=1h)"), kNow), kNow + Millis(3'600'000));
  EXPECT_FALSE(DeadlineAt(P("fixed(1s)"), kNow));
}

TEST(ExplainPolicy, ListsEveryRunAndWhyTheJobDies) {
  std::vector<ExplainRow> rows =
      ExplainPolicy(P("phases(immediate(1), fixed(2s, retries=2))"), "example", kNow);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].trigger, "initial");
  EXPECT_EQ(rows[1].trigger, "auto");
  EXPECT_EQ(rows[0].starts_after, Millis(0));
  EXPECT_EQ(rows[1].starts_after, Millis(0));
  EXPECT_EQ(rows[2].starts_after, Millis(2000));
  EXPECT_EQ(rows[3].starts_after, Millis(4000));
  EXPECT_EQ(rows[3].decision.dead_reason, DeadReason::kAttemptsExhausted);

  std::vector<ExplainRow> cut = ExplainPolicy(P("fixed(2s, retries=10, deadline=5s)"), "x", kNow);
  ASSERT_EQ(cut.size(), 3u) << "runs at +0, +2s, +4s; +6s is past the deadline";
  EXPECT_EQ(cut.back().decision.dead_reason, DeadReason::kDeadlineExceeded);
}

}  // namespace
}  // namespace retraced
