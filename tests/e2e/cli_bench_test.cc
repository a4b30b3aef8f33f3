// `retraced bench` end to end, tiny (--scale 0.002): it starts its own
// redis-server and SQLite files, runs every workload on both backends, checks
// each run against the store's counters, and reports every figure.
#include <gtest/gtest.h>

#include <set>

#include "retraced/json.h"
#include "support/subprocess.h"

namespace retraced {
namespace {

using testing::ProcessResult;
using testing::RunProcess;

bool HaveRedisServer() {
  return RunProcess({"sh", "-c", "command -v redis-server"}).exit_code == 0;
}

TEST(CliBenchTest, EveryWorkloadRunsOnBothBackendsAndReportsItsFigures) {
  if (!HaveRedisServer()) GTEST_SKIP() << "redis-server is not installed";
  ProcessResult r =
      RunProcess({RETRACED_BIN, "bench", "--scale", "0.002", "--runs", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Result<Json> j = ParseJson(r.out);
  ASSERT_TRUE(j.ok()) << r.out;
  EXPECT_GE((*j)["cores"].get<int>(), 1);
  EXPECT_EQ((*j)["runs"], 2);
  EXPECT_FALSE((*j)["versions"]["redis"].get<std::string>().empty());
  EXPECT_FALSE((*j)["versions"]["sqlite"].get<std::string>().empty());
  std::set<std::string> seen;
  for (const Json& f : (*j)["figures"]) {
    const std::string where =
        f["workload"].get<std::string>() + "/" + f["backend"].get<std::string>();
    seen.insert(where);
    ASSERT_EQ(f["samples"].size(), 2u) << where << " " << f["figure"];
    EXPECT_LE(f["min"].get<double>(), f["median"].get<double>());
    EXPECT_LE(f["median"].get<double>(), f["max"].get<double>());
    if (f["unit"] == "ms") {
      EXPECT_GE(f["min"].get<double>(), -5.0) << where << ": nothing starts before it is due";
    } else {
      EXPECT_GT(f["min"].get<double>(), 0) << where << " " << f["figure"];
    }
  }
  EXPECT_EQ(seen, (std::set<std::string>{"seed/redis", "seed/sqlite", "throughput/redis",
                                         "throughput/sqlite", "retries/redis", "retries/sqlite",
                                         "enqueue/redis", "enqueue/sqlite", "latency/redis",
                                         "latency/sqlite", "memory/redis"}));
}

TEST(CliBenchTest, TheTableNamesTheMachineAndEachFigure) {
  ProcessResult r = RunProcess({RETRACED_BIN, "bench", "--workloads", "enqueue,seed", "--backends",
                                "sqlite", "--scale", "0.002", "--runs", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("cores, sqlite "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("batches of 1,000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("20 jobs, 5 worker processes"), std::string::npos) << r.out;
}

TEST(CliBenchTest, BadFlagsAreRefusedNamingTheProblem) {
  ProcessResult r = RunProcess({RETRACED_BIN, "bench", "--workloads", "seed,warp"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "retraced: --workloads: unknown workload 'warp' (seed, throughput, retries, enqueue, "
            "latency, memory)\n");
  r = RunProcess({RETRACED_BIN, "bench", "--backends", "postgres"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "retraced: --backends: unknown backend 'postgres' (redis, sqlite)\n");
  r = RunProcess({RETRACED_BIN, "bench", "--runs", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "retraced: --runs must be 1 to 100\n");
  r = RunProcess({RETRACED_BIN, "bench", "--store", "mysql://x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown store URL scheme 'mysql'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace retraced
