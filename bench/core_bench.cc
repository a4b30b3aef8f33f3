// Micro-benchmarks of the pure core's hot parts, so that regressions show:
// policy parsing and printing, retry decisions, and the JSON of attempts and
// jobs. Run: build/release/bench/core_bench
#include <benchmark/benchmark.h>

#include "retraced/classify.h"
#include "retraced/decide.h"
#include "retraced/json.h"

namespace retraced {
namespace {

const TimePoint kNow = *ParseTime("2026-11-28T12:00:00.000Z");
constexpr std::string_view kPolicy =
    "phases(immediate(2), exponential(200ms, factor=2, max=30s, retries=8, jitter=full), "
    "deadline=1h, dead_on=[INVALID_EMAIL])";

RetryContext Context(int n) {
  RetryContext ctx;
  ctx.job_id = "01JD5XQ3ZK8M4N2P6R7S9T0V1W";
  ctx.attempt = ctx.run_in_sequence = n;
  ctx.previous_delay = Millis(400);
  ctx.deadline_at = kNow + Millis(3'600'000);
  ctx.now = kNow;
  return ctx;
}

Attempt FailedAttempt(const RetryPolicy& policy, int n) {
  Attempt a;
  a.n = n;
  a.trigger = n == 1 ? Trigger::kInitial : Trigger::kAuto;
  a.worker = "web-3:4242:20261128T120000.123Z";
  a.started_at = kNow;
  a.ended_at = kNow + Millis(35);
  a.outcome = Outcome::kFailed;
  a.error = MakeError(ErrorClass::kTemporary, "HTTP_503",
                      "hooks.example.com answered 503 Service Unavailable", "trace line\n");
  a.decision =
      Decide(policy, Context(n), Failure{Outcome::kFailed, ErrorClass::kTemporary, "HTTP_503", ""});
  a.lateness = Millis(2);
  return a;
}

void BM_ParsePolicy(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(ParsePolicy(kPolicy));
}
BENCHMARK(BM_ParsePolicy);

void BM_FormatPolicy(benchmark::State& state) {
  RetryPolicy p = *ParsePolicy(kPolicy);
  for (auto _ : state) benchmark::DoNotOptimize(FormatPolicy(p));
}
BENCHMARK(BM_FormatPolicy);

void BM_DecideRetryWithFullJitter(benchmark::State& state) {
  RetryPolicy p = *ParsePolicy(kPolicy);
  Failure f{Outcome::kFailed, ErrorClass::kTemporary, "HTTP_503", ""};
  RetryContext ctx = Context(4);
  for (auto _ : state) benchmark::DoNotOptimize(Decide(p, ctx, f));
}
BENCHMARK(BM_DecideRetryWithFullJitter);

void BM_DecideDead(benchmark::State& state) {
  RetryPolicy p = *ParsePolicy(kPolicy);
  Failure f{Outcome::kFailed, ErrorClass::kPermanent, "INVALID_EMAIL", "dead_on in policy"};
  RetryContext ctx = Context(1);
  for (auto _ : state) benchmark::DoNotOptimize(Decide(p, ctx, f));
}
BENCHMARK(BM_DecideDead);

void BM_Classify(benchmark::State& state) {
  RetryPolicy p = *ParsePolicy(kPolicy);
  ClassifierConfig queue;
  queue.codes["HTTP_404"] = ErrorClass::kPermanent;
  HandlerFailure failure{std::nullopt, "HTTP_503", "answered 503 Service Unavailable", "trace"};
  for (auto _ : state) benchmark::DoNotOptimize(Classify(failure, queue, p));
}
BENCHMARK(BM_Classify);

void BM_AttemptToJson(benchmark::State& state) {
  Attempt a = FailedAttempt(*ParsePolicy(kPolicy), 3);
  for (auto _ : state) benchmark::DoNotOptimize(DumpJson(ToJson(a)));
}
BENCHMARK(BM_AttemptToJson);

void BM_AttemptFromJson(benchmark::State& state) {
  std::string text = DumpJson(ToJson(FailedAttempt(*ParsePolicy(kPolicy), 3)));
  for (auto _ : state) benchmark::DoNotOptimize(AttemptFromJson(*ParseJson(text)));
}
BENCHMARK(BM_AttemptFromJson);

void BM_JobWithThreeAttemptsToJson(benchmark::State& state) {
  Job job;
  job.id = "01JD5XQ3ZK8M4N2P6R7S9T0V1W";
  job.queue = "webhooks";
  job.type = "deliver";
  job.payload = R"({"url":"https://hooks.example.com/orders","order":1042})";
  job.policy = *ParsePolicy(kPolicy);
  job.created_at = job.run_at = kNow;
  for (int n = 1; n <= 3; ++n) job.attempts.push_back(FailedAttempt(job.policy, n));
  for (int i = 0; i < 8; ++i)
    job.events.push_back(
        Event{kNow, JobState::kReady, JobState::kActive, "claimed", "w", "attempt 1 (initial)"});
  for (auto _ : state) benchmark::DoNotOptimize(DumpJson(ToJson(job)));
}
BENCHMARK(BM_JobWithThreeAttemptsToJson);

void BM_ErrorSignature(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        ErrorSignature("connection to 10.0.0.5:5432 timed out after 30s (request 7f3a9c2e1b)"));
  }
}
BENCHMARK(BM_ErrorSignature);

}  // namespace
}  // namespace retraced

BENCHMARK_MAIN();
