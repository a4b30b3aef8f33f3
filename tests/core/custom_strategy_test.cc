#include <gtest/gtest.h>

#include "retraced/decide.h"
#include "retraced/json.h"
#include "retraced/retry_policy.h"

namespace retraced {
namespace {

const TimePoint kNow = *ParseTime("2026-11-28T12:00:00.000Z");

// Registered once for the whole test binary (the registry is process-wide).
void RegisterTestStrategies() {
  static bool done = [] {
    // base x fib(index): 1, 1, 2, 3, 5, 8, ...
    EXPECT_TRUE(RegisterStrategy({"fibonacci",
                                  {},
                                  [](const Strategy& s, int index) {
                                    int64_t a = 1, b = 1;
                                    for (int i = 1; i < index; ++i) b = std::exchange(a, b) + b;
                                    return Millis(s.base.count() * a);
                                  }})
                    .ok());
    // Delays from a table, the last one repeating: table(delays=1s/5s/30s)
    EXPECT_TRUE(RegisterStrategy({"table",
                                  {"delays"},
                                  [](const Strategy& s, int index) {
                                    std::string list = s.Option("delays").value_or("1s");
                                    std::vector<Millis> steps;
                                    size_t start = 0;
                                    while (start <= list.size()) {
                                      size_t end = list.find('/', start);
                                      if (end == std::string::npos) end = list.size();
                                      Result<Millis> d =
                                          ParseDuration(list.substr(start, end - start));
                                      steps.push_back(d.ok() ? *d : Millis(1000));
                                      start = end + 1;
                                    }
                                    return steps[std::min<size_t>(index, steps.size()) - 1];
                                  }})
                    .ok());
    return true;
  }();
  (void)done;
}

std::vector<int64_t> Delays(const RetryPolicy& p) {
  std::vector<int64_t> out;
  for (int n = 1;; ++n) {
    RetryContext ctx;
    ctx.job_id = "j";
    ctx.attempt = ctx.run_in_sequence = n;
    ctx.now = kNow;
    Decision d = Decide(p, ctx, Failure{Outcome::kFailed, ErrorClass::kTemporary, "X", ""});
    if (d.action != Action::kRetry) return out;
    out.push_back(d.delay.count());
  }
}

TEST(CustomStrategy, ARegisteredStrategyWorksInPolicyText) {
  RegisterTestStrategies();
  Result<RetryPolicy> p = ParsePolicy("fibonacci(100ms, max=1s, retries=7)");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(Delays(*p), (std::vector<int64_t>{100, 100, 200, 300, 500, 800, 1000}));
  EXPECT_EQ(FormatPolicy(*p), "fibonacci(100ms, max=1s, retries=7)");

  RetryContext ctx;
  ctx.job_id = "j";
  ctx.attempt = ctx.run_in_sequence = 4;
  ctx.now = kNow;
  EXPECT_EQ(Decide(*p, ctx, Failure{Outcome::kFailed, ErrorClass::kTemporary, "X", ""}).reason,
            "temporary error X; fibonacci, retry 4 of 7: 300ms; next run 12:00:00.300Z");
}

TEST(CustomStrategy, ItsOwnOptionsAreKeptAndPrintedBack) {
  RegisterTestStrategies();
  Result<RetryPolicy> p =
      ParsePolicy("phases(immediate(1), table(delays=1s/5s/30s, retries=5, jitter=equal))");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->phases[1].Option("delays"), "1s/5s/30s");
  EXPECT_EQ(FormatPolicy(*p),
            "phases(immediate(1), table(0ms, delays=1s/5s/30s, retries=5, jitter=equal))");
  EXPECT_EQ(*ParsePolicy(FormatPolicy(*p)), *p);
  std::vector<int64_t> base;
  for (int n = 2; n <= 6; ++n) {
    RetryContext ctx;
    ctx.job_id = "j";
    ctx.attempt = ctx.run_in_sequence = n;
    ctx.now = kNow;
    base.push_back(Decide(*p, ctx, Failure{Outcome::kFailed, ErrorClass::kTemporary, "X", ""})
                       .base_delay.count());
  }
  EXPECT_EQ(base, (std::vector<int64_t>{1000, 5000, 30000, 30000, 30000}));
  Json j = PolicyToJson(*p);
  EXPECT_EQ(j["phases"][1]["strategy"], "table");
  EXPECT_EQ(j["phases"][1]["options"]["delays"], "1s/5s/30s");
  j.erase("text");
  Result<RetryPolicy> back = PolicyFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(FormatPolicy(*back), FormatPolicy(*p));
  EXPECT_EQ(*back, *p);
}

TEST(CustomStrategy, UnknownNamesAndOptionsAreStillRefused) {
  RegisterTestStrategies();
  EXPECT_EQ(ParsePolicy("fibonaci(1s)").status().message(),
            "invalid retry policy: column 1: unknown strategy 'fibonaci'; expected none, "
            "immediate, fixed, linear, exponential or phases");
  EXPECT_EQ(ParsePolicy("table(delays=1s, steps=2)").status().message(),
            "invalid retry policy: column 18: unknown option 'steps' for table; expected delays=, "
            "jitter=, max=, retries=, deadline=, retry_on= or dead_on=");
}

TEST(CustomStrategy, StoredPoliciesOfStrategiesNotRegisteredHereStillRead) {
  ParseOptions lenient;
  lenient.allow_unregistered = true;
  Result<RetryPolicy> p = ParsePolicy("from_another_process(2s, knob=7, retries=2)", lenient);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(FormatPolicy(*p), "from_another_process(2s, knob=7, retries=2)");
  EXPECT_FALSE(ParsePolicy("from_another_process(2s)").ok()) << "strict by default";
  RetryContext ctx;
  ctx.job_id = "j";
  ctx.now = kNow;
  Decision d = Decide(*p, ctx, Failure{Outcome::kFailed, ErrorClass::kTemporary, "X", ""});
  EXPECT_EQ(d.delay, Millis(2000));
  EXPECT_EQ(d.reason,
            "temporary error X; from_another_process, retry 1 of 2 (strategy "
            "'from_another_process' is not registered in this process: its base delay was used): "
            "2s; next run 12:00:02.000Z");
}

TEST(CustomStrategy, RegistrationRefusesClashes) {
  RegisterTestStrategies();
  auto fn = [](const Strategy&, int) { return Millis(1); };
  EXPECT_EQ(RegisterStrategy({"exponential", {}, fn}).message(),
            "strategy name 'exponential' is built in");
  EXPECT_EQ(RegisterStrategy({"Fancy", {}, fn}).message(),
            "strategy name 'Fancy' must be a lower_snake identifier");
  EXPECT_EQ(RegisterStrategy({"fancy", {"retries"}, fn}).message(),
            "option 'retries' is common to every strategy");
  EXPECT_EQ(RegisterStrategy({"fibonacci", {}, fn}).code(), StatusCode::kConflict);
  EXPECT_EQ(RegisterStrategy({"fancy", {}, nullptr}).message(),
            "strategy 'fancy' has no delay function");
  EXPECT_EQ(FindStrategy("fancy"), nullptr);
  EXPECT_NE(FindStrategy("fibonacci"), nullptr);
}

}  // namespace
}  // namespace retraced
