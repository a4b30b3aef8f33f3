// The retraced binary, run as a child process: `policy explain`, help, and
// the exit codes scripts rely on.
#include <gtest/gtest.h>

#include <sstream>

#include "retraced/json.h"
#include "support/subprocess.h"

namespace retraced {
namespace {

using testing::ProcessResult;
using testing::RunProcess;

ProcessResult Retraced(std::vector<std::string> args) {
  args.insert(args.begin(), RETRACED_BIN);
  return RunProcess(args);
}

// The table row whose first cell is `first`, its cells joined by single spaces.
std::string Row(const std::string& table, const std::string& first) {
  std::istringstream lines(table);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream cells(line);
    std::string cell, joined;
    while (cells >> cell) joined += (joined.empty() ? "" : " ") + cell;
    if (joined.starts_with(first + " ")) return joined;
  }
  return "";
}

TEST(PolicyExplain, PrintsTheScheduleAndWhyTheJobDies) {
  ProcessResult r = Retraced({"policy", "explain", "phases(immediate(2), fixed(5s, retries=2))"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("policy  phases(immediate(2), fixed(5s, retries=2))"), std::string::npos)
      << r.out;
  // One row per run: two immediate retries, two fixed ones, then dead.
  EXPECT_EQ(Row(r.out, "1"), "1 initial 0ms retry 1 immediate 0ms 0ms 0ms 0ms");
  EXPECT_EQ(Row(r.out, "2"), "2 auto 0ms retry 1 immediate 0ms 0ms 0ms 0ms");
  EXPECT_EQ(Row(r.out, "3"), "3 auto 0ms retry 2 fixed 5s 0ms 5s +5s");
  EXPECT_EQ(Row(r.out, "4"), "4 auto +5s retry 2 fixed 5s 0ms 5s +10s");
  EXPECT_EQ(Row(r.out, "5"), "5 auto +10s dead - - - - -");
  EXPECT_EQ(Row(r.out, "6"), "");
  EXPECT_NE(
      r.out.find("After attempt 5 the job goes to the dead letter queue (attempts_exhausted)"),
      std::string::npos)
      << r.out;
}

TEST(PolicyExplain, JsonGivesEveryDecision) {
  ProcessResult r = Retraced({"policy", "explain",
                              "exponential(200ms, factor=2, max=30s, retries=8, jitter=full)",
                              "--job-id", "01JD5X", "--start", "2026-11-28T12:00:00Z", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Result<Json> j = ParseJson(r.out);
  ASSERT_TRUE(j.ok()) << r.out;
  EXPECT_EQ((*j)["job_id"], "01JD5X");
  EXPECT_EQ((*j)["start"], "2026-11-28T12:00:00.000Z");
  EXPECT_EQ((*j)["policy"]["strategy"], "exponential");
  EXPECT_EQ((*j)["runs"], 9);
  EXPECT_EQ((*j)["dead_reason"], "attempts_exhausted");
  EXPECT_EQ((*j)["dead_after_attempt"], 9);
  const Json& attempts = (*j)["attempts"];
  ASSERT_EQ(attempts.size(), 9u);
  int64_t elapsed = 0;
  for (size_t i = 0; i + 1 < attempts.size(); ++i) {
    const Json& d = attempts[i]["decision"];
    EXPECT_EQ(attempts[i]["starts_after_ms"], elapsed);
    EXPECT_EQ(d["action"], "retry");
    EXPECT_LE(d["delay_ms"].get<int64_t>(), d["base_delay_ms"].get<int64_t>());
    EXPECT_EQ(d["jitter_ms"].get<int64_t>(),
              d["delay_ms"].get<int64_t>() - d["base_delay_ms"].get<int64_t>());
    elapsed += d["delay_ms"].get<int64_t>();
    EXPECT_EQ(d["next_run_after_ms"], elapsed);
    EXPECT_EQ(d["next_run_at"], FormatTime(*ParseTime("2026-11-28T12:00:00Z") + Millis(elapsed)));
  }
  EXPECT_EQ(attempts[8]["decision"]["action"], "dead");
  // The same job id always draws the same jitter; another id draws differently.
  EXPECT_EQ(Retraced({"policy", "explain",
                      "exponential(200ms, factor=2, max=30s, retries=8, jitter=full)", "--job-id",
                      "01JD5X", "--start", "2026-11-28T12:00:00Z", "--json"})
                .out,
            r.out);
  EXPECT_NE(Retraced({"policy", "explain",
                      "exponential(200ms, factor=2, max=30s, retries=8, jitter=full)", "--job-id",
                      "other", "--start", "2026-11-28T12:00:00Z", "--json"})
                .out,
            r.out);
}

TEST(PolicyExplain, DeadlineCountsFromTheStart) {
  ProcessResult r = Retraced({"policy", "explain", "fixed(2s, retries=10, deadline=5s)", "--start",
                              "2026-11-28T12:00:00Z"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Row(r.out, "3"), "3 auto +4s dead - - - - -");
  EXPECT_NE(r.out.find("(deadline_exceeded): temporary error; fixed, retry 3 of 10: 2s; next run "
                       "12:00:06.000Z would be past the deadline 2026-11-28T12:00:05.000Z."),
            std::string::npos)
      << r.out;
  ProcessResult bad = Retraced({"policy", "explain", "none", "--start", "noon"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(bad.err.starts_with("retraced: --start: invalid time 'noon'")) << bad.err;
}

TEST(PolicyExplain, BadPolicyExitsWithTwoAndOneClearMessage) {
  ProcessResult r = Retraced({"policy", "explain", "exponential(200ms, jitter=fuzzy)"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(
      r.err.starts_with("retraced: invalid retry policy: column 27: unknown jitter "
                        "'fuzzy'; expected none, full, equal or decorrelated\n"))
      << r.err;
  ProcessResult unbalanced = Retraced({"policy", "explain", "phases(immediate(2)"});
  EXPECT_EQ(unbalanced.exit_code, 2);
  EXPECT_NE(unbalanced.err.find("to close 'phases(' opened at column 7"), std::string::npos);
}

TEST(Cli, HelpWorksForTheToolAndEachCommand) {
  ProcessResult top = Retraced({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("policy"), std::string::npos);
  ProcessResult sub = Retraced({"policy", "explain", "--help"});
  EXPECT_EQ(sub.exit_code, 0);
  EXPECT_NE(sub.out.find("--job-id"), std::string::npos);
  EXPECT_NE(sub.out.find("--json"), std::string::npos);
}

TEST(Cli, UsageErrorsExitWithTwo) {
  ProcessResult none = Retraced({});
  EXPECT_EQ(none.exit_code, 2);
  ProcessResult unknown = Retraced({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown command 'frobnicate'"), std::string::npos) << unknown.err;
  ProcessResult missing = Retraced({"policy", "explain"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("policy is required"), std::string::npos) << missing.err;
  ProcessResult flag = Retraced({"policy", "explain", "none", "--bogus"});
  EXPECT_EQ(flag.exit_code, 2);
}

}  // namespace
}  // namespace retraced
