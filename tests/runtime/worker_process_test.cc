// The worker as real processes (tests/support/test_worker_main.cc) on a real
// SQLite file: retries, dead letters, replays, crashes, poison, shutdown,
// timeouts and stale acknowledgements, checked in the stored history.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "retraced/json.h"
#include "retraced/store.h"
#include "support/redis_server.h"
#include "support/subprocess.h"

namespace retraced {
namespace {

using testing::ChildProcess;
using testing::ProcessResult;
using testing::RunProcess;

class WorkerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("retraced-worker-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    url_ = "sqlite:" + (dir_ / "jobs.db").string();
    store_ = std::move(*OpenStore(url_));
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string Add(const std::string& type, const std::string& policy,
                  const std::string& payload = "{}", std::optional<Millis> timeout = std::nullopt) {
    NewJob j;
    j.queue = "work";
    j.type = type;
    j.payload = payload;
    j.policy = *ParsePolicy(policy);
    j.timeout = timeout;
    Result<std::vector<EnqueueResult>> r = store_->Enqueue({&j, 1}, "test");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return (*r)[0].id;
  }
  std::vector<std::string> WorkerArgs(std::vector<std::string> extra) {
    std::vector<std::string> args = {TEST_WORKER_BIN, url_, "work"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  ProcessResult Drain(std::vector<std::string> extra = {}) {
    extra.push_back("--drain");
    ProcessResult r = RunProcess(WorkerArgs(extra));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r;
  }
  Job Get(const std::string& id) { return *store_->GetJob(id); }
  // Polls until the job is in `state`, up to `seconds`.
  bool WaitForState(const std::string& id, JobState state, double seconds) {
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
      if (store_->GetJob(id)->state == state) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::filesystem::path dir_;
  std::string url_;
  std::unique_ptr<Store> store_;
};

TEST_F(WorkerProcessTest, ATemporaryFailureIsRetriedOnTimeUntilItSucceeds) {
  std::string id = Add("flaky", "fixed(100ms, retries=5)", R"({"succeed_on":3})");
  ProcessResult r = Drain();
  EXPECT_NE(r.out.find("RUN " + id + " 3 auto"), std::string::npos) << r.out;
  Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kCompleted);
  ASSERT_EQ(j.attempts.size(), 3u);
  std::string worker = r.out.substr(r.out.find("WORKER ") + 7);
  worker.pop_back();
  for (int i = 0; i < 3; ++i) {
    const Attempt& a = j.attempts[i];
    EXPECT_EQ(a.n, i + 1);
    EXPECT_EQ(a.trigger, i == 0 ? Trigger::kInitial : Trigger::kAuto);
    EXPECT_EQ(a.worker, worker);
    ASSERT_TRUE(a.ended_at);
    if (i < 2) {
      EXPECT_EQ(a.outcome, Outcome::kFailed);
      ASSERT_TRUE(a.error);
      EXPECT_EQ(a.error->error_class, ErrorClass::kTemporary);
      EXPECT_EQ(a.error->code, "HTTP_503");
      EXPECT_EQ(a.error->message, "upstream busy (attempt " + std::to_string(i + 1) + ")");
      EXPECT_EQ(a.decision->action, Action::kRetry);
      EXPECT_EQ(a.decision->delay, Millis(100));
      EXPECT_EQ(a.decision->next_run_at, *a.ended_at + Millis(100));
      // The retry never starts before its planned time, and its lateness is that gap.
      const Attempt& next = j.attempts[i + 1];
      EXPECT_GE(next.started_at, *a.decision->next_run_at);
      EXPECT_EQ(next.lateness, next.started_at - *a.decision->next_run_at);
    } else {
      EXPECT_EQ(a.outcome, Outcome::kSucceeded);
      EXPECT_FALSE(a.error);
    }
  }
}

// Regression: a retry planned by the worker itself did not interrupt its idle
// sleep, so an immediate retry waited for the next idle poll.
TEST_F(WorkerProcessTest, RetriesDoNotWaitForTheIdlePoll) {
  std::string id =
      Add("flaky", "phases(immediate(2), fixed(300ms, retries=1))", R"({"succeed_on":4})");
  Drain({"--idle-poll", "5000"});
  Job j = Get(id);
  ASSERT_EQ(j.attempts.size(), 4u);
  for (size_t i = 1; i < j.attempts.size(); ++i) {
    EXPECT_LT(j.attempts[i].lateness, Millis(1000)) << "attempt " << j.attempts[i].n;
  }
}

TEST_F(WorkerProcessTest, APermanentFailureGoesToTheDeadLetterQueueAtOnce) {
  std::string id = Add("permanent", "fixed(100ms, retries=5)");
  Drain();
  Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kDead);
  ASSERT_EQ(j.attempts.size(), 1u);
  EXPECT_EQ(j.attempts[0].error->error_class, ErrorClass::kPermanent);
  EXPECT_EQ(j.attempts[0].error->code, "INVALID_INPUT");
  EXPECT_EQ(j.dead->reason, DeadReason::kPermanentError);
}

TEST_F(WorkerProcessTest, RetriesStopWhenExhaustedOrPastTheDeadline) {
  std::string exhausted = Add("flaky", "immediate(2)", R"({"succeed_on":10})");
  std::string late =
      Add("flaky", "fixed(200ms, retries=50, deadline=500ms)", R"({"succeed_on":100})");
  Drain();
  Job e = Get(exhausted);
  EXPECT_EQ(e.state, JobState::kDead);
  EXPECT_EQ(e.dead->reason, DeadReason::kAttemptsExhausted);
  EXPECT_EQ(e.attempts.size(), 3u);
  Job d = Get(late);
  EXPECT_EQ(d.state, JobState::kDead);
  EXPECT_EQ(d.dead->reason, DeadReason::kDeadlineExceeded);
  EXPECT_GE(d.attempts.size(), 2u);
  EXPECT_LE(d.attempts.size(), 4u);
  EXPECT_LE(*d.attempts.back().ended_at, *d.deadline_at + Millis(200))
      << "no retry was planned past the deadline";
}

TEST_F(WorkerProcessTest, AManualReplayRunsAgainAsManualWithWhoAndWhy) {
  std::string id = Add("flaky", "none", R"({"succeed_on":2})");
  Drain();
  ASSERT_EQ(Get(id).state, JobState::kDead);
  ProcessResult replay =
      RunProcess({RETRACED_BIN, "dlq", "replay", id, "--by", "alice", "--note", "upstream is back"},
                 "", {{"RETRACED_STORE", url_}});
  ASSERT_EQ(replay.exit_code, 0) << replay.err;
  ProcessResult r = Drain();
  EXPECT_NE(r.out.find("RUN " + id + " 2 manual"), std::string::npos) << r.out;
  Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kCompleted);
  ASSERT_EQ(j.attempts.size(), 2u);
  EXPECT_EQ(j.attempts[1].trigger, Trigger::kManual);
  EXPECT_EQ(j.attempts[1].outcome, Outcome::kSucceeded);
  EXPECT_EQ(j.replay->by, "alice");
  EXPECT_EQ(j.replay->note, "upstream is back");
  bool found = false;
  for (const Event& e : j.events) {
    if (e.reason == "replayed") {
      found = true;
      EXPECT_EQ(e.actor, "alice");
      EXPECT_EQ(e.note, "mode fresh: upstream is back");
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(WorkerProcessTest, AWorkerKilledMidJobLosesNothing) {
  std::string id = Add("sleep", "fixed(10ms, retries=3)", R"({"first_ms":30000,"ms":10})");
  std::vector<std::string> other_ids;
  // Jobs the doomed worker may have prefetched: recovered like the running one.
  for (int i = 0; i < 5; ++i) other_ids.push_back(Add("ok", "fixed(10ms, retries=3)"));
  std::unique_ptr<ChildProcess> doomed = ChildProcess::Start(WorkerArgs({"--lease", "500"}));
  ASSERT_TRUE(doomed->WaitForOutput("RUN " + id + " 1 initial", 10)) << doomed->OutputSoFar();
  doomed->Signal(SIGKILL);
  EXPECT_EQ(doomed->Wait().signal, SIGKILL);
  ASSERT_EQ(Get(id).state, JobState::kActive) << "the dead worker still holds the lease";

  // A new worker recovers the job once the lease expires and runs it again.
  Add("ok", "none");
  ProcessResult r = RunProcess(WorkerArgs({"--drain", "--lease", "500"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kCompleted);
  ASSERT_EQ(j.attempts.size(), 2u);
  EXPECT_EQ(j.attempts[0].outcome, Outcome::kLeaseExpired);
  EXPECT_EQ(j.attempts[0].error->code, "LEASE_EXPIRED");
  EXPECT_EQ(j.attempts[1].trigger, Trigger::kRecovery);
  EXPECT_EQ(j.attempts[1].outcome, Outcome::kSucceeded);
  for (const std::string& other : other_ids) EXPECT_EQ(Get(other).state, JobState::kCompleted);
}

TEST_F(WorkerProcessTest, AJobThatKillsItsWorkerThreeTimesIsPoison) {
  std::string id = Add("crash", "immediate(10)");
  std::set<std::string> workers;
  for (int i = 0; i < 3; ++i) {
    ProcessResult r = RunProcess(WorkerArgs({"--drain", "--lease", "300"}));
    EXPECT_EQ(r.signal, SIGKILL) << "run " << i << ": " << r.out << r.err;
    EXPECT_NE(r.out.find("RUN " + id), std::string::npos);
  }
  ProcessResult last = Drain({"--lease", "300"});
  EXPECT_EQ(last.out.find("RUN " + id), std::string::npos) << "the poison job is not run again";
  Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kDead);
  EXPECT_EQ(j.dead->reason, DeadReason::kPoison);
  ASSERT_EQ(j.attempts.size(), 3u);
  for (const Attempt& a : j.attempts) {
    EXPECT_EQ(a.outcome, Outcome::kLeaseExpired);
    workers.insert(a.worker);
  }
  EXPECT_EQ(workers.size(), 3u) << "three different workers died";
  ASSERT_EQ(j.dead->evidence.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(j.dead->evidence[i].find(j.attempts[i].worker), std::string::npos)
        << "the evidence names the worker: " << j.dead->evidence[i];
  }
}

TEST_F(WorkerProcessTest, GracefulShutdownFinishesShortJobsAndReleasesLongOnes) {
  std::string quick = Add("sleep", "fixed(1s, retries=3)", R"({"ms":300})");
  std::string slow = Add("sleep", "fixed(1s, retries=3)", R"({"ms":30000})");
  std::unique_ptr<ChildProcess> w =
      ChildProcess::Start(WorkerArgs({"--grace", "1500", "--concurrency", "2"}));
  ASSERT_TRUE(w->WaitForOutput("RUN " + slow, 10));
  ASSERT_TRUE(w->WaitForOutput("RUN " + quick, 10));
  auto sent = std::chrono::steady_clock::now();
  w->Signal(SIGTERM);
  ProcessResult r = w->Wait();
  auto took = std::chrono::steady_clock::now() - sent;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(took, std::chrono::seconds(10)) << "the 30 s job did not hold the worker";
  EXPECT_EQ(Get(quick).state, JobState::kCompleted) << "the short job finished within the grace";
  Job s = Get(slow);
  EXPECT_EQ(s.state, JobState::kRetryWait);
  ASSERT_EQ(s.attempts.size(), 1u);
  EXPECT_EQ(s.attempts[0].outcome, Outcome::kLeaseExpired);
  EXPECT_EQ(s.attempts[0].error->code, "WORKER_STOPPED");
  EXPECT_EQ(s.events.back().reason, "released");
  // Due a second after the release (fixed(1s)), not at once. (Read from the
  // decision: a claim here could come more than a second later on a loaded
  // machine.)
  ASSERT_TRUE(s.attempts[0].decision && s.attempts[0].decision->next_run_at);
  EXPECT_EQ(*s.attempts[0].decision->next_run_at - *s.attempts[0].ended_at, Millis(1000));
}

TEST_F(WorkerProcessTest, AnAckAfterTheLeaseWasLostIsRefusedAndRecorded) {
  // On Redis: a process frozen by SIGSTOP inside an SQLite write transaction
  // would hold the file's lock and block the other worker, whatever the test
  // is about. (That is SQLite's nature, and why a paused worker process on a
  // shared SQLite file stalls the others until it resumes.)
  if (!testing::RedisServer::Available()) GTEST_SKIP() << "redis-server is not installed";
  std::string error;
  std::unique_ptr<testing::RedisServer> redis = testing::RedisServer::Start({}, &error);
  ASSERT_TRUE(redis) << error;
  url_ = redis->Url();
  store_ = std::move(*OpenStore(url_));
  std::string id = Add("sleep", "fixed(10ms, retries=3)", R"({"first_ms":600,"ms":10})");
  // Worker A never heartbeats in time; it is paused while its lease expires.
  std::unique_ptr<ChildProcess> a =
      ChildProcess::Start(WorkerArgs({"--lease", "300", "--heartbeat", "60000"}));
  ASSERT_TRUE(a->WaitForOutput("RUN " + id + " 1 initial", 10));
  a->Signal(SIGSTOP);
  // Worker B recovers the job and runs it to the end.
  ProcessResult b = Drain();
  EXPECT_NE(b.out.find("RUN " + id + " 2 recovery"), std::string::npos) << b.out;
  ASSERT_EQ(Get(id).state, JobState::kCompleted);
  // A wakes up, its handler finishes, and its ack is refused.
  a->Signal(SIGCONT);
  bool refused = false;
  for (int i = 0; i < 300 && !refused; ++i) {
    for (const Event& e : Get(id).events) refused = refused || e.reason == "stale_lease_refused";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  a->Signal(SIGTERM);
  a->Wait();
  EXPECT_TRUE(refused);
  Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kCompleted) << "the refusal changed nothing";
  EXPECT_EQ(j.attempts.size(), 2u);
  EXPECT_EQ(j.events.back().reason, "stale_lease_refused");
  EXPECT_FALSE(j.events.back().to);
}

TEST_F(WorkerProcessTest, AnAttemptPastItsTimeoutEndsAsTimedOut) {
  std::string id = Add("sleep", "fixed(50ms, retries=1)", R"({"ms":30000})", Millis(300));
  auto started = std::chrono::steady_clock::now();
  Drain();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));
  Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kDead);
  ASSERT_EQ(j.attempts.size(), 2u);
  for (const Attempt& a : j.attempts) {
    EXPECT_EQ(a.outcome, Outcome::kTimedOut);
    EXPECT_EQ(a.error->code, "TIMED_OUT");
    EXPECT_EQ(a.error->message, "the attempt ran past its timeout of 300ms");
    EXPECT_GE(*a.ended_at - a.started_at, Millis(300));
  }
}

TEST_F(WorkerProcessTest, AnEscapingExceptionIsATemporaryFailure) {
  std::string id = Add("throw", "immediate(1)");
  Drain();
  Job j = Get(id);
  ASSERT_EQ(j.attempts.size(), 2u);
  EXPECT_EQ(j.attempts[0].error->code, "UNHANDLED_EXCEPTION");
  EXPECT_EQ(j.attempts[0].error->error_class, ErrorClass::kTemporary);
  EXPECT_EQ(j.attempts[0].error->message, "boom");
  EXPECT_EQ(j.attempts[0].decision->action, Action::kRetry);
}

}  // namespace
}  // namespace retraced
