// The worker's extension points, in process on a real SQLite file: a custom
// classifier, lifecycle hooks (one that throws, too), per-queue code tables,
// the class of escaping exceptions, and a custom retry strategy.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "retraced/worker.h"

namespace retraced {
namespace {

class WorkerExtensionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("retraced-ext-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = std::move(*OpenStore("sqlite:" + (dir_ / "jobs.db").string()));
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string Add(const std::string& type, const std::string& policy,
                  const std::string& queue = "q") {
    NewJob j;
    j.queue = queue;
    j.type = type;
    j.policy = *ParsePolicy(policy);
    return (*store_->Enqueue({&j, 1}, "test"))[0].id;
  }
  WorkerOptions Options(std::vector<std::string> queues = {"q"}) {
    WorkerOptions o;
    o.queues = std::move(queues);
    o.concurrency = 2;
    o.drain = true;
    o.log = [this](std::string_view line) {
      std::lock_guard lock(log_mu_);
      log_.emplace_back(line);
    };
    return o;
  }
  Job Get(const std::string& id) { return *store_->GetJob(id); }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

// A real store whose acknowledgements take `delay` to arrive: a fault
// injected around the SQLite store, every other call passed through.
class SlowAcks : public Store {
 public:
  SlowAcks(Store& s, Millis delay) : s_(s), delay_(delay) {}
  std::atomic<bool> acking{false};
  Result<std::vector<EnqueueResult>> Enqueue(std::span<const NewJob> j,
                                             std::string_view a) override {
    return s_.Enqueue(j, a);
  }
  Result<std::vector<ClaimedJob>> Claim(const ClaimRequest& r) override { return s_.Claim(r); }
  Result<std::vector<Status>> Complete(std::span<const Completion> items) override {
    acking = true;
    std::this_thread::sleep_for(delay_);
    return s_.Complete(items);
  }
  Result<FailResult> Fail(const FailRequest& r) override { return s_.Fail(r); }
  Result<std::vector<Result<FailResult>>> FailMany(std::span<const FailRequest> r) override {
    return s_.FailMany(r);
  }
  Result<std::vector<Status>> Heartbeat(std::span<const Lease> l, Millis m) override {
    return s_.Heartbeat(l, m);
  }
  Result<std::vector<Status>> Release(std::span<const Lease> l, std::string_view w) override {
    return s_.Release(l, w);
  }
  Result<std::vector<RecoveredJob>> RecoverExpired(int max) override {
    return s_.RecoverExpired(max);
  }
  Result<Job> GetJob(std::string_view id) override { return s_.GetJob(id); }
  Result<JobPage> ListJobs(const JobFilter& f) override { return s_.ListJobs(f); }
  Result<std::vector<DeadGroup>> GroupDead(const JobFilter& f) override { return s_.GroupDead(f); }
  Result<ReplayResult> ReplayJobs(const ReplayRequest& r) override { return s_.ReplayJobs(r); }
  Status Cancel(std::string_view id, std::string_view by, std::string_view note) override {
    return s_.Cancel(id, by, note);
  }
  Result<PurgeResult> Purge(const PurgeRequest& r) override { return s_.Purge(r); }
  Result<std::vector<QueueStats>> Stats(std::optional<std::string_view> q) override {
    return s_.Stats(q);
  }
  Result<int64_t> ApplyRetention() override { return s_.ApplyRetention(); }
  Result<std::unique_ptr<JobSignal>> WatchQueues(std::span<const std::string> q) override {
    return s_.WatchQueues(q);
  }
  Result<std::optional<TimePoint>> NextDueAt(std::string_view q) override {
    return s_.NextDueAt(q);
  }
  TimePoint Now() override { return s_.Now(); }

 private:
  Store& s_;
  Millis delay_;
};

TEST_F(WorkerExtensionTest, ASlowAcknowledgementKeepsItsLease) {
  // The success takes 1.2 s to be stored, three times the lease: heartbeats
  // must go on meanwhile, or the job is recovered and its success refused.
  std::string id = Add("quick", "fixed(10ms, retries=3)");
  SlowAcks slow(*store_, Millis(1200));
  WorkerOptions o = Options();
  o.lease = Millis(400);
  o.heartbeat_every = Millis(100);
  o.recover_every = Millis(60'000);  // recovery is the other process's, below
  Worker w(slow, o);
  w.Handle("quick", [](const JobContext&) { return HandlerResult::Success(); });
  ASSERT_TRUE(w.Start().ok());
  while (!slow.acking) std::this_thread::sleep_for(Millis(5));
  std::this_thread::sleep_for(Millis(800));  // twice the lease, the ack still on its way
  std::unique_ptr<Store> other = std::move(*OpenStore("sqlite:" + (dir_ / "jobs.db").string()));
  EXPECT_TRUE(other->RecoverExpired(10)->empty()) << "the lease expired while the ack was slow";
  w.Wait();
  Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kCompleted);
  EXPECT_EQ(j.attempts.size(), 1u);
}

TEST_F(WorkerExtensionTest, ACustomClassifierDecidesClassAndCode) {
  std::string limited = Add("call_api", "fixed(10ms, retries=1)");
  std::string gone = Add("call_api", "fixed(10ms, retries=5)");
  Worker w(*store_, Options());
  w.Handle("call_api", [&](const JobContext& c) {
    if (c.job.id == limited) return HandlerResult::Unclassified("HTTP_429", "Too Many Requests");
    return HandlerResult::Unclassified("HTTP_410", "Gone");
  });
  w.SetClassifier([](const Job&, HandlerFailure& f) {
    if (f.code == "HTTP_429") {
      f.code = "RATE_LIMITED";
      f.error_class = ErrorClass::kTemporary;
    } else if (f.code == "HTTP_410") {
      f.error_class = ErrorClass::kPermanent;
    }
  });
  ASSERT_TRUE(w.Start().ok());
  w.Wait();
  Job l = Get(limited);
  EXPECT_EQ(l.attempts[0].error->code, "RATE_LIMITED");
  EXPECT_EQ(l.attempts[0].error->error_class, ErrorClass::kTemporary);
  EXPECT_EQ(l.attempts.size(), 2u);
  Job g = Get(gone);
  EXPECT_EQ(g.attempts.size(), 1u);
  EXPECT_EQ(g.attempts[0].error->error_class, ErrorClass::kPermanent);
  EXPECT_EQ(g.dead->reason, DeadReason::kPermanentError);
}

class RecordingHooks : public LifecycleHooks {
 public:
  void AfterAttempt(const AttemptReport& r) override {
    Add("after " + r.job.type + " " + std::string(Name(*r.attempt.outcome)));
  }
  void OnRetryScheduled(const AttemptReport& r) override {
    Add("retry " + r.job.type + " in " + FormatDuration(r.attempt.decision->delay));
  }
  void OnDead(const AttemptReport& r) override {
    Add("dead " + r.job.type + " " + std::string(Name(*r.attempt.decision->dead_reason)));
  }
  void OnReplay(const Job& job, const Attempt& a) override {
    Add("replay " + job.type + " attempt " + std::to_string(a.n));
  }
  std::multiset<std::string> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  void Add(std::string s) {
    std::lock_guard lock(mu_);
    calls_.insert(std::move(s));
  }
  std::mutex mu_;
  std::multiset<std::string> calls_;
};

class ThrowingHooks : public LifecycleHooks {
 public:
  void AfterAttempt(const AttemptReport&) override { throw std::runtime_error("pager is down"); }
  void OnDead(const AttemptReport&) override { throw 42; }
};

TEST_F(WorkerExtensionTest, HooksSeeEveryAttemptRetryDeathAndReplayAndCannotBreakThem) {
  Add("good", "none");
  std::string bad = Add("bad", "fixed(10ms, retries=1)");
  auto hooks = std::make_shared<RecordingHooks>();
  {
    Worker w(*store_, Options());
    w.Handle("good", [](const JobContext&) { return HandlerResult::Success(); });
    w.Handle("bad", [](const JobContext& c) {
      if (c.attempt.trigger == Trigger::kManual) return HandlerResult::Success();
      return HandlerResult::Temporary("DOWN", "down");
    });
    w.AddHooks(std::make_shared<ThrowingHooks>());  // first, so the next still runs
    w.AddHooks(hooks);
    ASSERT_TRUE(w.Start().ok());
    w.Wait();
  }
  EXPECT_EQ(hooks->calls(), (std::multiset<std::string>{"after good succeeded", "after bad failed",
                                                        "after bad failed", "retry bad in 10ms",
                                                        "dead bad attempts_exhausted"}));
  EXPECT_EQ(Get(bad).state, JobState::kDead) << "a throwing hook changed nothing";
  {
    std::lock_guard lock(log_mu_);
    int logged = 0;
    for (const std::string& line : log_)
      logged += line.find("hook AfterAttempt threw: pager is down") != std::string::npos;
    EXPECT_EQ(logged, 3);
  }
  ReplayRequest replay;
  replay.filter.ids = {bad};
  replay.by = "ops";
  ASSERT_TRUE(store_->ReplayJobs(replay).ok());
  Worker w(*store_, Options());
  w.Handle("bad", [](const JobContext&) { return HandlerResult::Success(); });
  w.AddHooks(hooks);
  ASSERT_TRUE(w.Start().ok());
  w.Wait();
  EXPECT_EQ(hooks->calls().count("replay bad attempt 3"), 1u);
  EXPECT_EQ(hooks->calls().count("after bad succeeded"), 1u);
}

TEST_F(WorkerExtensionTest, PerQueueCodeTablesAndTheExceptionClassAreSettings) {
  std::string in_table = Add("fetch", "fixed(10ms, retries=3)", "strict");
  std::string elsewhere = Add("fetch", "fixed(10ms, retries=3)", "lenient");
  std::string thrower = Add("explode", "fixed(10ms, retries=3)", "lenient");
  WorkerOptions o = Options({"strict", "lenient"});
  o.queue_classes["strict"].codes["HTTP_404"] = ErrorClass::kPermanent;
  o.exception_class = ErrorClass::kPermanent;
  Worker w(*store_, o);
  w.Handle("fetch", [](const JobContext& c) {
    if (c.attempt.n >= 2) return HandlerResult::Success();
    return HandlerResult::Temporary("HTTP_404", "not found");
  });
  w.Handle("explode", [](const JobContext&) -> HandlerResult { throw std::logic_error("bug"); });
  ASSERT_TRUE(w.Start().ok());
  w.Wait();
  Job strict = Get(in_table);
  EXPECT_EQ(strict.state, JobState::kDead);
  EXPECT_EQ(strict.attempts[0].decision->reason,
            "permanent error HTTP_404 (queue table, handler said temporary): not retried");
  EXPECT_EQ(Get(elsewhere).state, JobState::kCompleted);
  Job t = Get(thrower);
  EXPECT_EQ(t.state, JobState::kDead);
  EXPECT_EQ(t.attempts[0].error->code, "UNHANDLED_EXCEPTION");
  EXPECT_EQ(t.attempts[0].error->message, "bug");
}

TEST_F(WorkerExtensionTest, ACustomStrategyDrivesTheWorkersRetries) {
  static bool registered =
      RegisterStrategy({"doubling_from",
                        {"first"},
                        [](const Strategy& s, int index) {
                          Result<Millis> first = ParseDuration(s.Option("first").value_or("10ms"));
                          return Millis(first->count() << (index - 1));
                        }})
          .ok();
  ASSERT_TRUE(registered);
  std::string id = Add("flaky", "doubling_from(first=20ms, retries=3)");
  Worker w(*store_, Options());
  w.Handle("flaky", [](const JobContext& c) {
    return c.attempt.n < 4 ? HandlerResult::Temporary("X", "x") : HandlerResult::Success();
  });
  ASSERT_TRUE(w.Start().ok());
  w.Wait();
  Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kCompleted);
  ASSERT_EQ(j.attempts.size(), 4u);
  EXPECT_EQ(j.attempts[0].decision->delay, Millis(20));
  EXPECT_EQ(j.attempts[1].decision->delay, Millis(40));
  EXPECT_EQ(j.attempts[2].decision->delay, Millis(80));
  EXPECT_TRUE(j.attempts[2].decision->reason.starts_with(
      "temporary error X; doubling_from, retry 3 of 3: 80ms"));
}

// Regression: Stop() from a handler made a worker thread join itself.
TEST_F(WorkerExtensionTest, AHandlerMayStopItsOwnWorker) {
  std::string id = Add("last", "none");
  WorkerOptions o = Options();
  o.drain = false;
  Worker w(*store_, o);
  w.Handle("last", [&w](const JobContext&) {
    w.Stop();
    return HandlerResult::Success();
  });
  ASSERT_TRUE(w.Start().ok());
  w.Wait();  // returns: the stop asked from inside is finished here
  EXPECT_EQ(Get(id).state, JobState::kCompleted);
}

// Regression: a job's timeout counted from its claim, so time spent waiting
// for an executor (prefetched) ate into it.
TEST_F(WorkerExtensionTest, ATimeoutCountsFromWhenTheHandlerStarts) {
  std::string slow = Add("slow", "none");
  NewJob quick;
  quick.queue = "q";
  quick.type = "quick";
  quick.policy = *ParsePolicy("none");
  quick.timeout = Millis(300);
  std::string quick_id = (*store_->Enqueue({&quick, 1}, "test"))[0].id;
  WorkerOptions o = Options();
  o.concurrency = 1;  // the quick job waits behind the slow one
  o.prefetch = 1;
  Worker w(*store_, o);
  w.Handle("slow", [](const JobContext&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    return HandlerResult::Success();
  });
  w.Handle("quick", [](const JobContext&) { return HandlerResult::Success(); });
  ASSERT_TRUE(w.Start().ok());
  w.Wait();
  EXPECT_EQ(Get(slow).state, JobState::kCompleted);
  EXPECT_EQ(Get(quick_id).state, JobState::kCompleted) << "not timed out while it waited";
}

TEST_F(WorkerExtensionTest, StartRefusesBadOptions) {
  WorkerOptions o = Options({});
  Worker none(*store_, o);
  none.Handle("x", [](const JobContext&) { return HandlerResult::Success(); });
  EXPECT_EQ(none.Start().message(), "a worker needs at least one queue");
  Worker no_handler(*store_, Options());
  EXPECT_EQ(no_handler.Start().message(), "the worker has no handler");
  o = Options();
  o.concurrency = 0;
  Worker zero(*store_, o);
  zero.Handle("x", [](const JobContext&) { return HandlerResult::Success(); });
  EXPECT_EQ(zero.Start().message(), "concurrency must be from 1 to 1000");
}

}  // namespace
}  // namespace retraced
