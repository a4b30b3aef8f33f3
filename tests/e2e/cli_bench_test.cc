// `retraced bench` end to end, tiny (--scale 0.002): it starts its own
// redis-server and SQLite files, runs every workload on both backends, checks
// each run against the store's counters, and reports every figure.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "retraced/json.h"
#include "support/subprocess.h"

namespace retraced {
namespace {

using testing::ProcessResult;
using testing::RunProcess;

bool HaveRedisServer() {
  return RunProcess({"sh", "-c", "command -v redis-server"}).exit_code == 0;
}

// From /proc/PID/stat: the command name, the state letter and the parent's pid.
struct ProcStat {
  std::string comm;
  char state = '?';
  pid_t ppid = 0;
};
std::optional<ProcStat> StatOf(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  size_t open = line.find('('), close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos) return std::nullopt;
  ProcStat st;
  st.comm = line.substr(open + 1, close - open - 1);
  std::istringstream rest(line.substr(close + 2));
  rest >> st.state >> st.ppid;
  return st;
}

// Running (not zombie) children of `parent` named `comm`.
std::vector<pid_t> ChildrenNamed(pid_t parent, const std::string& comm) {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::optional<ProcStat> st = StatOf(name);
    if (st && st->ppid == parent && st->comm == comm && st->state != 'Z') {
      out.push_back(std::stoi(name));
    }
  }
  return out;
}

bool Running(pid_t pid) {
  std::optional<ProcStat> st = StatOf(std::to_string(pid));
  return st && st->state != 'Z';
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

TEST(CliBenchTest, AKilledBenchLeavesNoRedisServerBehind) {
  if (!HaveRedisServer()) GTEST_SKIP() << "redis-server is not installed";
  auto bench = testing::ChildProcess::Start(
      {RETRACED_BIN, "bench", "--workloads", "throughput", "--backends", "redis", "--runs", "50"});
  std::vector<pid_t> servers;
  for (int i = 0; i < 500 && servers.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    servers = ChildrenNamed(bench->pid(), "redis-server");
  }
  ASSERT_EQ(servers.size(), 1u) << "the bench's redis-server did not start";
  bench->Signal(SIGKILL);  // no destructor, no handler runs
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    gone = !Running(servers[0]);
  }
  EXPECT_TRUE(gone) << "redis-server " << servers[0] << " outlived the bench";
  if (!gone) kill(servers[0], SIGKILL);  // it holds the bench's output open
  bench->Wait();
}

}  // namespace
}  // namespace retraced
