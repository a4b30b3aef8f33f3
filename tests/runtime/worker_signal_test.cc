// An idle worker learns of jobs enqueued elsewhere through the store's
// signal (Redis: a stream read with XREAD BLOCK; SQLite: PRAGMA data_version),
// not by polling: with a one-minute idle poll, a job enqueued through another
// connection still starts at once. Both backends, real files and servers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "retraced/worker.h"
#include "support/redis_server.h"

namespace retraced {
namespace {

class WorkerSignalTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "redis") {
      if (!testing::RedisServer::Available()) GTEST_SKIP() << "redis-server is not installed";
      std::string error;
      server_ = testing::RedisServer::Start({}, &error);
      ASSERT_TRUE(server_) << error;
      url_ = server_->Url();
    } else {
      dir_ =
          std::filesystem::temp_directory_path() / ("retraced-signal-" + std::to_string(getpid()));
      std::filesystem::remove_all(dir_);
      std::filesystem::create_directories(dir_);
      url_ = "sqlite:" + (dir_ / "jobs.db").string();
    }
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // A worker of queue "emails" that polls once a minute when idle: only the
  // store's signal can wake it sooner.
  static WorkerOptions Sleepy() {
    WorkerOptions o;
    o.queues = {"emails"};
    o.idle_poll = Millis(60'000);
    o.log = [](std::string_view) {};
    return o;
  }

  std::unique_ptr<testing::RedisServer> server_;
  std::filesystem::path dir_;
  std::string url_;
};

TEST_P(WorkerSignalTest, AnIdleWorkerStartsAJobEnqueuedElsewhereWithoutWaitingForItsPoll) {
  std::unique_ptr<Store> worker_store = std::move(*OpenStore(url_));
  std::unique_ptr<Store> producer = std::move(*OpenStore(url_));
  Worker w(*worker_store, Sleepy());
  std::atomic<int> ran{0};
  w.HandleAny([&](const JobContext&) {
    ++ran;
    return HandlerResult::Success();
  });
  ASSERT_TRUE(w.Start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // idle, asleep for a minute
  for (int round = 1; round <= 3; ++round) {
    NewJob j;
    j.queue = "emails";
    j.type = "send";
    ASSERT_TRUE(producer->Enqueue({&j, 1}, "test").ok());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ran < round && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_EQ(ran, round) << "job " << round << " did not start while the worker slept";
  }
  w.Stop();
}

TEST_P(WorkerSignalTest, AnIdleWorkerStartsARetryAnotherProcessMadeReady) {
  // Another process holds the job and fails it; the policy retries at once,
  // so the job is ready again: the idle worker must hear of it too.
  std::unique_ptr<Store> worker_store = std::move(*OpenStore(url_));
  std::unique_ptr<Store> other = std::move(*OpenStore(url_));
  NewJob j;
  j.queue = "emails";
  j.type = "send";
  j.policy = *ParsePolicy("immediate(1)");
  ASSERT_TRUE(other->Enqueue({&j, 1}, "test").ok());
  std::vector<ClaimedJob> held = *other->Claim(ClaimRequest{"emails", "other", 1, Millis(30'000)});
  ASSERT_EQ(held.size(), 1u);
  Worker w(*worker_store, Sleepy());
  std::atomic<int> ran{0};
  w.HandleAny([&](const JobContext& c) {
    if (c.attempt.trigger == Trigger::kAuto) ++ran;
    return HandlerResult::Success();
  });
  ASSERT_TRUE(w.Start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // idle, asleep for a minute
  FailRequest f;
  f.lease = held[0].lease;
  f.worker = "other";
  f.error = Classify({ErrorClass::kTemporary, "TIMEOUT", "took too long", ""}, {}, *j.policy);
  ASSERT_EQ(other->Fail(f)->state, JobState::kReady);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ran < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(ran, 1) << "the retry did not start while the worker slept";
  w.Stop();
}

TEST_P(WorkerSignalTest, TheSignalReportsAChangeMadeBeforeTheWaitAndIsQuietOtherwise) {
  std::unique_ptr<Store> store = std::move(*OpenStore(url_));
  std::vector<std::string> queues = {"emails"};
  Result<std::unique_ptr<JobSignal>> signal = store->WatchQueues(queues);
  ASSERT_TRUE(signal.ok()) << signal.status().message();
  ASSERT_TRUE(*signal) << "both backends have a signal";
  EXPECT_FALSE(*(*signal)->Wait(Millis(50))) << "nothing happened";
  NewJob j;
  j.queue = "emails";
  j.type = "send";
  ASSERT_TRUE(store->Enqueue({&j, 1}, "test").ok());
  // Enqueued before the call: reported by it, not lost.
  EXPECT_TRUE(*(*signal)->Wait(Millis(5'000)));
  EXPECT_FALSE(*(*signal)->Wait(Millis(50))) << "reported once";
}

TEST_P(WorkerSignalTest, InterruptEndsAWaitInProgressAndEveryLaterOne) {
  std::unique_ptr<Store> store = std::move(*OpenStore(url_));
  std::vector<std::string> queues = {"emails"};
  std::unique_ptr<JobSignal> signal = std::move(*store->WatchQueues(queues));
  ASSERT_TRUE(signal);
  auto started = std::chrono::steady_clock::now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    signal->Interrupt();
  });
  Result<bool> woke = signal->Wait(Millis(60'000));
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30))
      << "the wait did not end at the interrupt";
  EXPECT_TRUE(woke.ok() && !*woke) << "an interrupt is not a change";
  EXPECT_FALSE(*signal->Wait(Millis(60'000))) << "later waits return at once";
}

INSTANTIATE_TEST_SUITE_P(Backends, WorkerSignalTest, ::testing::Values("sqlite", "redis"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace retraced
