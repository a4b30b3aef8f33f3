// The worker's state and threads, shared by the files that define them:
// its lifecycle and fetcher (worker.cc), its executors and reporters
// (worker_run.cc), and its supervisor: timeouts, heartbeats and recovery
// (worker_supervisor.cc). Internal to the runtime: users include
// retraced/worker.h.
#ifndef RETRACED_RUNTIME_WORKER_IMPL_H_
#define RETRACED_RUNTIME_WORKER_IMPL_H_

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include "retraced/id.h"
#include "retraced/worker.h"

namespace retraced {

class Worker::Impl {
 public:
  // Where a claimed job is: queued here, running, done, or abandoned
  // (timed out, lease lost or released while its handler runs).
  enum State : int { kQueued, kRunning, kDone, kAbandoned };

  Impl(Store& store, WorkerOptions o) : store_(store), o_(std::move(o)) {
    if (o_.id.empty()) o_.id = DefaultWorkerId();
    if (o_.prefetch < 0) o_.prefetch = o_.concurrency;
    if (o_.heartbeat_every.count() <= 0) o_.heartbeat_every = o_.lease / 3;
  }
  ~Impl() { Stop(); }

  // One claimed job, from claim until its result is reported (or it is
  // abandoned). `claimed` never changes after the job is enqueued locally, so
  // any thread holding the pointer may read it.
  struct InFlight {
    ClaimedJob claimed;
    std::stop_source stop;
    std::atomic<int> state{kQueued};
    std::optional<TimePoint> deadline;  // when the attempt times out (guarded by mu_)
  };
  using InFlightPtr = std::shared_ptr<InFlight>;
  // Held by the attempt's own entry, not by its job id: the same job may be
  // claimed again (after a cancel and replay) while an abandoned attempt of it
  // still runs here. A pointer is hashed without copying or comparing an id,
  // on the path every job takes twice.
  using Key = const InFlight*;
  static Key KeyOf(const InFlight& f) { return &f; }

  // ---- Lifecycle (worker.cc) ------------------------------------------------

  Status Start();
  void Stop();
  void Notify();
  void Wait();

  // Set before Start() and only read after (counts_: atomic).
  Store& store_;
  WorkerOptions o_;
  std::map<std::string, Handler, std::less<>> handlers_;
  Handler any_;
  FailureClassifier classifier_;
  std::vector<std::shared_ptr<LifecycleHooks>> hooks_;

  struct AtomicCounts {
    std::atomic<int64_t> claimed{0}, succeeded{0}, failed{0}, timed_out{0}, lost{0}, released{0};
  } counts_;

 private:
  // How long Stop() waits for handlers asked to stop before releasing them.
  static constexpr Millis kStopWait{3'000};
  // Threads reporting results: with two, one batch's store call overlaps the
  // next one's (retries on Redis: 26,000 -> 33,000 attempts/s, bench/README.md).
  static constexpr int kReporters = 2;
  // Longest single wait on the store's signal (Stop() interrupts it).
  static constexpr Millis kSignalWait{1'000};

  bool OnOwnThread() {
    std::lock_guard lock(mu_);
    return std::find(thread_ids_.begin(), thread_ids_.end(), std::this_thread::get_id()) !=
           thread_ids_.end();
  }

  // Jobs this worker holds or whose handlers still occupy an executor.
  int Load() const { return static_cast<int>(inflight_.size()) + abandoned_running_; }

  // ---- Fetcher (worker.cc) --------------------------------------------------

  void FetcherLoop();

  // Waits on the store's signal and wakes the fetcher when it fires.
  void WatcherLoop(JobSignal& signal);
  void Enqueue(std::vector<ClaimedJob> claimed);

  // True when no served queue holds a live job and nothing is in flight here.
  bool Drained();

  // Sleeps until the earliest due job of the served queues, a retry this
  // worker planned, the idle poll, a Notify(), or Stop(), whichever comes first.
  void SleepUntilSomethingIsDue();

  // ---- Executors (worker_run.cc) --------------------------------------------

  void ExecutorLoop();
  void Run(const InFlightPtr& f);
  const Handler* FindHandler(const std::string& type) const;
  const ClassifierConfig& ClassesFor(const std::string& queue) const;

  // Calls `op` until it succeeds or fails for a reason retrying cannot fix
  // (everything but `unavailable`), a few times with a short back-off.
  template <typename T, typename Op>
  Result<T> WithRetries(Op op) {
    Result<T> r = op();
    for (int i = 0; i < 4 && !r.ok() && r.status().code() == StatusCode::kUnavailable; ++i) {
      std::this_thread::sleep_for(Millis(50 << i));
      r = op();
    }
    return r;
  }

  // The store's request for a failure, classified (custom classifier first).
  FailRequest PrepareFailure(const ClaimedJob& c, Outcome outcome, HandlerFailure failure);
  void ReportFailure(const ClaimedJob& c, Outcome outcome, HandlerFailure failure);

  // Counts a reported failure, wakes the fetcher for a planned retry, calls the hooks.
  void AfterFailure(const ClaimedJob& c, const FailRequest& req, const Result<FailResult>& r);

  template <typename F>
  void CallHooks(std::string_view which, F call) {
    for (const std::shared_ptr<LifecycleHooks>& h : hooks_) {
      try {
        call(*h);
      } catch (const std::exception& e) {
        Log("hook " + std::string(which) + " threw: " + e.what());
      } catch (...) {
        Log("hook " + std::string(which) + " threw");
      }
    }
  }

  // ---- Reporters (worker_run.cc) --------------------------------------------

  // Reports successes and failures to the store in batches of up to
  // ack_batch each: one Complete and one FailMany call per batch.
  void ReporterLoop();
  void ReportSuccesses(const std::vector<InFlightPtr>& batch);

  // The results of `batch` are stored (or given up on): no more heartbeats.
  void Reported(const std::vector<InFlightPtr>& batch);
  void ReportFailures(const std::vector<std::pair<InFlightPtr, FailRequest>>& fails);

  // ---- Supervisor (worker_supervisor.cc) ------------------------------------

  void SupervisorLoop();
  void TimeOutExpired(TimePoint now);
  void Heartbeat();
  void Recover();

  // ---- Shared (worker.cc) ---------------------------------------------------

  void ReleaseAll(const std::vector<InFlightPtr>& jobs);
  void Log(const std::string& line);
  static std::string Join(const std::vector<std::string>& v);

  // ---- State ----------------------------------------------------------------

  std::mutex stop_mu_;  // serializes Stop()
  std::mutex mu_;
  std::condition_variable fetch_cv_, work_cv_, done_cv_, supervisor_cv_;
  std::deque<InFlightPtr> queue_;                   // claimed, not started
  std::unordered_map<Key, InFlightPtr> inflight_;   // claimed, not finished
  std::unordered_map<Key, InFlightPtr> reporting_;  // finished, result not yet stored
  int abandoned_running_ = 0;                       // handlers still running after being abandoned
  std::optional<TimePoint> wake_hint_;              // earliest retry this worker planned
  bool started_ = false, stopping_ = false, stopped_ = false, drained_ = false;
  bool stop_requested_ = false, notified_ = false, halt_ = false;
  bool supervisor_stop_ = false, supervisor_wake_ = false;
  std::vector<std::thread::id> thread_ids_;

  std::mutex ack_mu_;
  std::condition_variable ack_cv_;
  std::vector<InFlightPtr> acks_;
  std::vector<std::pair<InFlightPtr, FailRequest>> fails_;
  bool ack_stop_ = false;

  std::mutex log_mu_;
  std::thread fetcher_, supervisor_, watcher_;
  std::vector<std::thread> reporters_;
  std::unique_ptr<JobSignal> signal_;  // the store's, when it has one (watcher_ waits on it)
  std::vector<std::thread> executors_;
};

}  // namespace retraced

#endif  // RETRACED_RUNTIME_WORKER_IMPL_H_
