#include <gtest/gtest.h>

#include "retraced/retry_policy.h"

namespace retraced {
namespace {

using K = Strategy::Kind;

RetryPolicy Parse(std::string_view text) {
  Result<RetryPolicy> p = ParsePolicy(text);
  EXPECT_TRUE(p.ok()) << text << ": " << p.status().message();
  return p.ok() ? *p : RetryPolicy{};
}

TEST(ParsePolicy, ReadsEveryStrategyWithItsOptions) {
  RetryPolicy fixed = Parse("fixed(2s, retries=5)");
  ASSERT_EQ(fixed.phases.size(), 1u);
  EXPECT_EQ(fixed.phases[0].kind, K::kFixed);
  EXPECT_EQ(fixed.phases[0].base, Millis(2000));
  EXPECT_EQ(fixed.phases[0].retries, 5);
  EXPECT_EQ(fixed.phases[0].jitter, Jitter::kNone);

  RetryPolicy linear = Parse("linear(1s, step=500ms, max=3s, retries=7)");
  EXPECT_EQ(linear.phases[0].kind, K::kLinear);
  EXPECT_EQ(linear.phases[0].step, Millis(500));
  EXPECT_EQ(linear.phases[0].max, Millis(3000));
  EXPECT_EQ(Parse("linear(1s, retries=5)").phases[0].step, Millis(1000))
      << "step defaults to the delay";

  RetryPolicy exp = Parse("exponential(200ms, factor=2, max=30s, retries=8, jitter=full)");
  const Strategy& e = exp.phases[0];
  EXPECT_EQ(e.kind, K::kExponential);
  EXPECT_EQ(e.base, Millis(200));
  EXPECT_EQ(e.factor, 2.0);
  EXPECT_EQ(e.max, Millis(30'000));
  EXPECT_EQ(e.retries, 8);
  EXPECT_EQ(e.jitter, Jitter::kFull);
  EXPECT_EQ(Parse("exponential(1s, factor=1.5, max=1m, jitter=decorrelated)").phases[0].factor,
            1.5);
  EXPECT_EQ(Parse("exponential(1s, jitter=equal)").phases[0].jitter, Jitter::kEqual);
  EXPECT_EQ(Parse("exponential(1s)").phases[0].retries, 3) << "retries defaults to 3";

  EXPECT_TRUE(Parse("none").phases.empty());
  EXPECT_TRUE(Parse("none()").phases.empty());
  EXPECT_EQ(Parse("immediate(2)").phases[0].retries, 2);
  EXPECT_EQ(Parse("immediate(retries=4)").phases[0].retries, 4);
}

TEST(ParsePolicy, ReadsPhasesAndPolicyOptions) {
  RetryPolicy p = Parse(
      "phases(immediate(2), exponential(1s, max=1m, retries=5), deadline=1h, "
      "retry_on=[HTTP_503, TIMEOUT], dead_on=[INVALID_EMAIL])");
  ASSERT_EQ(p.phases.size(), 2u);
  EXPECT_EQ(p.phases[0].kind, K::kImmediate);
  EXPECT_EQ(p.phases[0].retries, 2);
  EXPECT_EQ(p.phases[1].kind, K::kExponential);
  EXPECT_EQ(p.phases[1].max, Millis(60'000));
  EXPECT_EQ(p.TotalRetries(), 7);
  EXPECT_EQ(p.deadline, Millis(3'600'000));
  EXPECT_EQ(p.retry_on, (std::vector<std::string>{"HTTP_503", "TIMEOUT"}));
  EXPECT_EQ(p.dead_on, (std::vector<std::string>{"INVALID_EMAIL"}));

  RetryPolicy single = Parse("fixed(1s, retries=2, deadline=10m, dead_on=[BAD])");
  EXPECT_EQ(single.deadline, Millis(600'000));
  EXPECT_EQ(single.dead_on, std::vector<std::string>{"BAD"});
  EXPECT_TRUE(Parse("fixed(1s, retry_on=[])").retry_on.empty());
}

TEST(ParsePolicy, ToleratesWhitespaceAnywhereBetweenTokens) {
  EXPECT_EQ(Parse("  phases( immediate( 2 ) ,\n exponential( 1s , max = 1m ) )"),
            Parse("phases(immediate(2),exponential(1s,max=1m))"));
}

TEST(FormatPolicy, PrintsTheCanonicalForm) {
  EXPECT_EQ(FormatPolicy(Parse("fixed(2s, retries=5)")), "fixed(2s, retries=5)");
  EXPECT_EQ(FormatPolicy(Parse("linear(1s,retries=5)")), "linear(1s, step=1s, retries=5)");
  EXPECT_EQ(FormatPolicy(Parse("exponential(200ms,jitter=full,retries=8,max=30s)")),
            "exponential(200ms, factor=2, max=30s, retries=8, jitter=full)");
  EXPECT_EQ(FormatPolicy(Parse("exponential(1000ms, factor=1.5)")),
            "exponential(1s, factor=1.5, retries=3)");
  EXPECT_EQ(FormatPolicy(Parse("none()")), "none");
  EXPECT_EQ(FormatPolicy(Parse("phases(immediate(2), exponential(1s, max=1m, retries=5))")),
            "phases(immediate(2), exponential(1s, factor=2, max=1m, retries=5))");
  EXPECT_EQ(FormatPolicy(Parse("phases(fixed(1s, retries=2), deadline=60m, dead_on=[A,B])")),
            "fixed(1s, retries=2, deadline=1h, dead_on=[A,B])")
      << "one phase prints as the plain strategy";
}

TEST(FormatPolicy, ParsePrintParseIsTheIdentity) {
  const std::string texts[] = {
      "none",
      "immediate(0)",
      "fixed(0ms, retries=0)",
      "fixed(2s, retries=5, jitter=equal)",
      "linear(1s, step=250ms, max=4s, retries=10, jitter=full)",
      "exponential(200ms, factor=2, max=30s, retries=8, jitter=full)",
      "exponential(1s, factor=3.25, max=1h, retries=10000, jitter=decorrelated)",
      "linear(1s, max=10s, jitter=decorrelated)",
      "exponential(1ms, max=365d)",
      "phases(immediate(2), exponential(1s, max=1m, retries=5))",
      "phases(immediate(1), fixed(5s, retries=2), linear(1m, step=1m, retries=3), deadline=1d, "
      "retry_on=[A,B.c], dead_on=[X:Y])",
      std::string(kDefaultPolicyText),
  };
  for (const std::string& text : texts) {
    RetryPolicy once = Parse(text);
    std::string printed = FormatPolicy(once);
    RetryPolicy twice = Parse(printed);
    EXPECT_EQ(once, twice) << text << " printed as " << printed;
    EXPECT_EQ(FormatPolicy(twice), printed);
  }
}

struct BadPolicy {
  const char* text;
  const char* message;  // the whole message after "invalid retry policy: "
};

TEST(ParsePolicy, BadTextGetsAnErrorNamingTheColumnAndWhatWasExpected) {
  const BadPolicy cases[] = {
      {"",
       "column 1: empty policy; expected e.g. exponential(1s, factor=2, max=1h, retries=10, "
       "jitter=full)"},
      {"fixed(2s, retries=-1)",
       "column 19: retries must be a whole number from 0 to 10000, got '-1'"},
      {"fixed(2s, retries=many)",
       "column 19: retries must be a whole number from 0 to 10000, got 'many'"},
      {"fixed(2s, retries=10001)", "column 19: retries=10001 is over the limit of 10000"},
      {"exponential()",
       "column 1: exponential needs a delay as its first argument: exponential(DELAY, factor=2, "
       "max=DELAY, retries=N, jitter=full)"},
      {"exponential(0ms)", "column 13: the base delay of exponential must be above 0ms"},
      {"exponential(200ms, jitter=fuzzy)",
       "column 27: unknown jitter 'fuzzy'; expected none, full, equal or decorrelated"},
      {"exponential(200ms",
       "column 18: expected ',' or ')' to close 'exponential(' opened at column 12, found the end "
       "of the text"},
      {"phases(immediate(2), fixed(1s)",
       "column 31: expected ',' or ')' to close 'phases(' opened at column 7, found the end of the "
       "text"},
      {"fixed(1s))", "column 10: unexpected ')' with no '(' to close"},
      {"fixed(1s) fixed(2s)", "column 11: unexpected 'fixed(2s)' after the end of the policy"},
      {"fixed(400d)", "column 7: the delay 400d is over the limit of 365 days"},
      {"fixed(2 s)",
       "column 9: expected ',' or ')' to close 'fixed(' opened at column 6, found 's'"},
      {"fixed(2)", "column 7: the delay must be a duration such as 200ms, 2s or 1m, got '2'"},
      {"fixed(1.5s)", "column 7: the delay must be a duration such as 200ms, 2s or 1m, got '1.5s'"},
      {"exponential(1s, factor=0.5)", "column 24: factor must be from 1 to 100, got 0.5"},
      {"exponential(1s, factor=1000)", "column 24: factor must be from 1 to 100, got 1000"},
      {"exponential(1s, factor=two)",
       "column 24: factor must be a number such as 2 or 1.5, got 'two'"},
      {"exponential(1s, max=500ms)", "column 1: max=500ms is below the base delay 1s"},
      {"fixed(1s, max=5s)",
       "column 11: unknown option 'max' for fixed; expected jitter=, retries=, deadline=, "
       "retry_on= or dead_on="},
      {"fixed(1s, retries=2, retries=3)", "column 22: retries= is given twice"},
      {"fixed(retries=2, 1s)",
       "column 18: the plain argument of fixed must come first: fixed(DELAY, retries=N)"},
      {"fixed(1s, 2s)",
       "column 11: too many plain arguments to fixed; expected fixed(DELAY, retries=N)"},
      {"immediate()", "column 1: immediate needs a number of retries: immediate(2)"},
      {"immediate(2, jitter=full)",
       "column 14: unknown option 'jitter' for immediate; expected retries=, deadline=, retry_on= "
       "or dead_on="},
      {"quadratic(1s)",
       "column 1: unknown strategy 'quadratic'; expected none, immediate, fixed, linear, "
       "exponential or phases"},
      {"none(retries=2)",
       "column 6: none takes no arguments: a job with this policy is never retried"},
      {"phases()",
       "column 1: phases needs at least one phase, e.g. phases(immediate(2), fixed(5s, "
       "retries=3))"},
      {"phases(immediate(2), phases(fixed(1s)))",
       "column 22: 'phases' cannot be a phase; expected immediate, fixed, linear or exponential"},
      {"phases(fixed(1s, deadline=1h))",
       "column 18: deadline= applies to the whole policy: write it in phases(...), not in a phase"},
      {"phases(deadline=1h, fixed(1s))",
       "column 21: phases must come before the options deadline=, retry_on=, dead_on="},
      {"phases(fixed(1s), jitter=full)",
       "column 19: unknown option 'jitter' for phases; expected deadline=, retry_on= or dead_on="},
      {"phases(fixed(1s, retries=6000), fixed(1s, retries=6000))",
       "column 1: the phases add up to 12000 retries, over the limit of 10000"},
      {"fixed(1s, deadline=0ms)", "column 20: deadline must be positive"},
      {"fixed(1s, dead_on=BAD)",
       "column 19: dead_on must be a list of error codes in brackets, e.g. "
       "dead_on=[TIMEOUT,HTTP_503]"},
      {"fixed(1s, dead_on=[A B])",
       "column 22: expected ',' or ']' to close the list opened at column 19, found 'B'"},
      {"fixed(1s, retries=)", "column 19: expected a value after 'retries='"},
      {"fixed(1s, (2))", "column 11: expected a value, found '('"},
      // Regression: 200000000000d overflowed int64 into a negative delay.
      {"fixed(200000000000d)",
       "column 7: the delay must be a duration such as 200ms, 2s or 1m, got '200000000000d'"},
      {"fixed(1s, jitter=decorrelated)",
       "column 1: jitter=decorrelated needs max= to bound its growth: use linear(...) or "
       "exponential(...) with max="},
      {"exponential(1s, jitter=decorrelated)",
       "column 1: jitter=decorrelated needs max= to bound its growth: exponential(..., max=DELAY, "
       "jitter=decorrelated)"},
      {"phases(fixed(fixed(fixed(fixed(1s)))))", "column 31: calls nested more than 4 deep"},
  };
  for (const BadPolicy& c : cases) {
    Result<RetryPolicy> p = ParsePolicy(c.text);
    ASSERT_FALSE(p.ok()) << c.text << " parsed as " << FormatPolicy(*p);
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(p.status().message(), std::string("invalid retry policy: ") + c.message) << c.text;
  }
}

TEST(ParsePolicy, RefusesDeepNestingAndHugeTextWithoutCrashing) {
  std::string deep;
  for (int i = 0; i < 100'000; ++i) deep += "a(";
  Result<RetryPolicy> p = ParsePolicy(deep.substr(0, 4000));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "invalid retry policy: column 10: calls nested more than 4 deep");
  Result<RetryPolicy> huge = ParsePolicy(deep);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().message(),
            "invalid retry policy: column 4097: policy text is longer than 4096 bytes");
}

TEST(ValidatePolicy, RefusesAbsurdPoliciesBuiltInCode) {
  RetryPolicy p = Parse("fixed(1s, retries=2)");
  EXPECT_TRUE(ValidatePolicy(p).ok());
  p.phases[0].retries = 10'001;
  EXPECT_FALSE(ValidatePolicy(p).ok());
  p.phases[0].retries = 2;
  p.phases[0].base = std::chrono::days(400);
  EXPECT_EQ(ValidatePolicy(p).message(), "phase 1: delay must be from 0ms to 365d, got 400d");
  RetryPolicy none;
  none.deadline = Millis(10);
  EXPECT_FALSE(ValidatePolicy(none).ok());
  RetryPolicy exp = Parse("exponential(1s)");
  exp.phases[0].factor = 0.5;
  EXPECT_FALSE(ValidatePolicy(exp).ok());
  // Options a strategy's text form cannot express are refused, so the text round trip holds.
  RetryPolicy fixed = Parse("fixed(1s)");
  fixed.phases[0].max = Millis(5000);
  EXPECT_EQ(ValidatePolicy(fixed).message(), "phase 1: max applies to linear and exponential only");
  fixed.phases[0].max.reset();
  fixed.phases[0].step = Millis(5);
  EXPECT_EQ(ValidatePolicy(fixed).message(), "phase 1: step applies to linear only");
}

TEST(DefaultPolicy, IsTheDocumentedText) {
  EXPECT_EQ(FormatPolicy(DefaultPolicy()), kDefaultPolicyText);
}

}  // namespace
}  // namespace retraced
