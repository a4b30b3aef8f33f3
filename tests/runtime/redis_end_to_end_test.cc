// The whole CLI and real worker processes against a real redis-server: the
// commands users run, four workers draining one queue, and a server restart
// in the middle of a run.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "retraced/json.h"
#include "retraced/store.h"
#include "support/redis_server.h"
#include "support/subprocess.h"

namespace retraced {
namespace {

using testing::ChildProcess;
using testing::ProcessResult;
using testing::RedisServer;
using testing::RunProcess;

class RedisEndToEndTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> config = {}) {
    if (!RedisServer::Available()) GTEST_SKIP() << "redis-server is not installed";
    std::string error;
    server_ = RedisServer::Start(std::move(config), &error);
    ASSERT_TRUE(server_) << error;
    url_ = server_->Url();
    out_dir_ =
        std::filesystem::temp_directory_path() / ("retraced-redis-e2e-" + std::to_string(getpid()));
    std::filesystem::create_directories(out_dir_);
  }
  void TearDown() override { std::filesystem::remove_all(out_dir_); }
  ProcessResult Cli(std::vector<std::string> args, const std::string& stdin_data = "") {
    args.insert(args.begin(), RETRACED_BIN);
    return RunProcess(args, stdin_data, {{"RETRACED_STORE", url_}, {"OUT_DIR", out_dir_.string()}});
  }
  Json JsonOf(const ProcessResult& r) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    Result<Json> j = ParseJson(r.out);
    EXPECT_TRUE(j.ok()) << r.out;
    return j.ok() ? *j : Json();
  }

  std::unique_ptr<RedisServer> server_;
  std::string url_;
  std::filesystem::path out_dir_;
};

TEST_F(RedisEndToEndTest, TheCliWorksOnRedisAsOnSqlite) {
  Start();
  ProcessResult demo = Cli({"demo", "--store", url_});
  ASSERT_EQ(demo.exit_code, 0) << demo.err;
  EXPECT_NE(demo.out.find("now completed; replayed by demo-operator (more=1)"), std::string::npos)
      << demo.out;
  EXPECT_NE(demo.out.find("attempts_exhausted=3"), std::string::npos);

  ProcessResult enq =
      Cli({"enqueue", "--queue", "exec", "--type", "tempfail", "--policy",
           "phases(immediate(1), fixed(100ms, retries=1))", "--payload", R"({"to":"a@b.c"})"});
  ASSERT_EQ(enq.exit_code, 0) << enq.err;
  std::string id = enq.out.substr(0, 26);
  ProcessResult w = Cli({"worker", "--queue", "exec", "--exec", EXEC_HANDLER_SCRIPT, "--drain"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  Json j = JsonOf(Cli({"jobs", "show", id, "--json"}));
  EXPECT_EQ(j["state"], "dead");
  EXPECT_EQ(j["payload"]["to"], "a@b.c");
  ASSERT_EQ(j["attempts"].size(), 3u);
  EXPECT_EQ(j["attempts"][1]["trigger"], "auto");
  EXPECT_EQ(j["attempts"][2]["error"]["code"], "EX_TEMPFAIL");
  EXPECT_EQ(j["attempts"][2]["error"]["detail"], "smtp server busy\n");
  EXPECT_EQ(j["dead"]["reason"], "attempts_exhausted");

  EXPECT_GE(JsonOf(Cli({"dlq", "list", "--queue", "exec", "--json"}))["jobs"].size(), 1u);
  Json groups = JsonOf(Cli({"dlq", "groups", "--queue", "exec", "--json"}));
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0]["code"], "EX_TEMPFAIL");
  Json replayed =
      JsonOf(Cli({"dlq", "replay", id, "--by", "ops", "--note", "retry on redis", "--json"}));
  EXPECT_EQ(replayed["replayed"][0], id);
  EXPECT_EQ(JsonOf(Cli({"jobs", "show", id, "--json"}))["events"].back()["reason"], "replayed");
  EXPECT_EQ(Cli({"jobs", "cancel", id, "--by", "ops"}).exit_code, 0);
  EXPECT_EQ(
      JsonOf(Cli({"dlq", "purge", "--all", "--queue", "exec", "--by", "ops", "--json"}))["purged"],
      0)
      << "the cancelled job is not dead";
  Json stats = JsonOf(Cli({"stats", "--queue", "exec", "--json"}));
  EXPECT_EQ(stats[0]["states"]["cancelled"], 1);
  EXPECT_EQ(stats[0]["counters"]["attempts"], 3);
  EXPECT_EQ(stats[0]["counters"]["replayed"], 1);
  ProcessResult list = Cli({"jobs", "list", "--limit", "3"});
  EXPECT_NE(list.out.find("more: --cursor"), std::string::npos) << list.out;
  EXPECT_EQ(Cli({"jobs", "show", "nope"}).exit_code, 2);
}

TEST_F(RedisEndToEndTest, FourWorkerProcessesDrainTwentyThousandJobsNoneTwice) {
  Start();
  constexpr int kJobs = 20'000;
  {
    std::unique_ptr<Store> store = std::move(*OpenStore(url_));
    std::vector<NewJob> batch;
    for (int i = 0; i < kJobs; ++i) {
      NewJob j;
      j.queue = "work";
      j.type = "ok";
      j.policy = *ParsePolicy("fixed(10ms, retries=3)");
      batch.push_back(std::move(j));
      if (batch.size() == 1000) {
        ASSERT_TRUE(store->Enqueue(batch, "test").ok());
        batch.clear();
      }
    }
  }
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (int p = 0; p < 4; ++p) {
    workers.push_back(
        ChildProcess::Start({TEST_WORKER_BIN, url_, "work", "--drain", "--concurrency", "4"}));
  }
  std::map<std::string, int> runs;
  for (auto& w : workers) {
    ProcessResult r = w->Wait();
    ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 2000);
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("RUN ", 0) == 0) ++runs[line.substr(4, 26)];
    }
  }
  EXPECT_EQ(runs.size(), static_cast<size_t>(kJobs)) << "every job ran";
  int twice = 0;
  for (const auto& [id, n] : runs) twice += n > 1;
  EXPECT_EQ(twice, 0) << "no job ran twice";
  std::unique_ptr<Store> store = std::move(*OpenStore(url_));
  EXPECT_EQ((*store->Stats("work"))[0].states[JobState::kCompleted], kJobs);
}

TEST_F(RedisEndToEndTest, WorkersRideOutARedisRestartAndNoAcknowledgedEnqueueIsLost) {
  Start({"--appendonly", "yes", "--appendfsync", "always"});
  constexpr int kJobs = 300;
  std::vector<std::string> ids;
  {
    std::unique_ptr<Store> store = std::move(*OpenStore(url_));
    std::vector<NewJob> batch;
    for (int i = 0; i < kJobs; ++i) {
      NewJob j;
      j.queue = "work";
      j.type = "sleep";
      j.payload = R"({"ms":20})";
      j.policy = *ParsePolicy("fixed(10ms, retries=5)");
      batch.push_back(std::move(j));
    }
    Result<std::vector<EnqueueResult>> added = store->Enqueue(batch, "test");
    ASSERT_TRUE(added.ok()) << added.status().ToString();
    for (const EnqueueResult& r : *added) ids.push_back(r.id);
  }
  std::unique_ptr<ChildProcess> w = ChildProcess::Start(
      {TEST_WORKER_BIN, url_, "work", "--drain", "--concurrency", "4", "--lease", "1000"});
  ASSERT_TRUE(w->WaitForOutput("RUN ", 20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  server_->Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::string error;
  ASSERT_TRUE(server_->Restart(&error)) << error;
  ProcessResult r = w->Wait();
  EXPECT_EQ(r.exit_code, 0) << r.err.substr(0, 2000);
  std::unique_ptr<Store> store = std::move(*OpenStore(url_));
  int completed = 0;
  for (const std::string& id : ids) {
    Result<Job> j = store->GetJob(id);
    ASSERT_TRUE(j.ok()) << "an acknowledged enqueue was lost: " << id;
    completed += j->state == JobState::kCompleted;
  }
  EXPECT_EQ(completed, kJobs) << "every job finished after the restart";
}

// Workers whose machines' clocks are an hour fast and an hour slow (their
// system clock really is skewed, by libfaketime) still run each retry at the
// time the store planned it, because every instant comes from the Redis server.
TEST_F(RedisEndToEndTest, WorkersWithSkewedClocksAgreeOnTheServersTime) {
  const char* faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
  if (!std::filesystem::exists(faketime)) GTEST_SKIP() << "libfaketime is not installed";
  Start();
  std::vector<std::string> ids;
  {
    std::unique_ptr<Store> store = std::move(*OpenStore(url_));
    for (int i = 0; i < 8; ++i) {
      NewJob j;
      j.queue = "work";
      j.type = "flaky";
      j.payload = R"({"succeed_on":3})";
      j.policy = *ParsePolicy("fixed(300ms, retries=5)");
      ids.push_back((*store->Enqueue({&j, 1}, "test"))[0].id);
    }
  }
  const TimePoint started = SystemClock().Now();
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (const char* skew : {"+1h", "-1h"}) {
    workers.push_back(ChildProcess::Start(
        {TEST_WORKER_BIN, url_, "work", "--drain", "--concurrency", "1"},
        {{"LD_PRELOAD", faketime},
         {"FAKETIME", skew},
         {"FAKETIME_DONT_FAKE_MONOTONIC", "1"},
         // Under AddressSanitizer the preloaded library would come before its runtime.
         {"ASAN_OPTIONS", "verify_asan_link_order=0"}}));
  }
  for (auto& w : workers) {
    for (int i = 0; i < 300 && !w->WaitForOutput("WORKER ", 0.1); ++i) {
    }
    w->Signal(SIGKILL);  // a worker still waiting on its own clock would wait an hour
    ProcessResult r = w->Wait();
    ASSERT_NE(r.out.find("WORKER "), std::string::npos)
        << "a skewed worker did not finish: " << r.err.substr(0, 1000);
  }
  std::unique_ptr<Store> store = std::move(*OpenStore(url_));
  std::set<std::string> hours;  // the hour in each worker id: read from its own (skewed) clock
  for (const std::string& id : ids) {
    Job j = *store->GetJob(id);
    ASSERT_EQ(j.state, JobState::kCompleted) << id;
    for (const Attempt& a : j.attempts) hours.insert(a.worker.substr(a.worker.rfind(':') + 10, 2));
    ASSERT_EQ(j.attempts.size(), 3u);
    for (size_t i = 0; i < j.attempts.size(); ++i) {
      const Attempt& a = j.attempts[i];
      EXPECT_LT(std::chrono::abs(a.started_at - started), Millis(60'000))
          << "recorded in the server's time, not a worker's skewed clock";
      if (i > 0) {
        const TimePoint planned = *j.attempts[i - 1].decision->next_run_at;
        EXPECT_GE(a.started_at, planned) << "never early";
        EXPECT_LT(a.started_at - planned, Millis(1000)) << "not an hour late";
      }
    }
  }
  EXPECT_EQ(hours.size(), 2u) << "both the fast and the slow worker ran attempts";
}

}  // namespace
}  // namespace retraced
