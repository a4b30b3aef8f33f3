// The worker: fetcher, executors, reporters, supervisor and watcher threads around a store.
#include "retraced/worker.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>
#include <typeinfo>

#include "retraced/id.h"

namespace retraced {
namespace {

enum State : int { kQueued, kRunning, kDone, kAbandoned };

}  // namespace

class Worker::Impl {
 public:
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
  // A lease identifies one attempt: the same job may be claimed again (after
  // a cancel and replay) while an abandoned attempt of it still runs here.
  using Key = std::pair<std::string, int64_t>;
  static Key KeyOf(const InFlight& f) { return {f.claimed.lease.job_id, f.claimed.lease.token}; }

  Status Start() {
    if (o_.queues.empty()) return Status::InvalidArgument("a worker needs at least one queue");
    for (const std::string& q : o_.queues) RETRACED_RETURN_IF_ERROR(ValidateName("queue", q));
    if (o_.concurrency < 1 || o_.concurrency > 1000) {
      return Status::InvalidArgument("concurrency must be from 1 to 1000");
    }
    if (o_.lease.count() < 100) return Status::InvalidArgument("the lease must be at least 100ms");
    if (handlers_.empty() && !any_) return Status::InvalidArgument("the worker has no handler");
    // Jobs enqueued elsewhere wake the fetcher through the store's signal
    // where it has one; the idle poll remains the fallback.
    Result<std::unique_ptr<JobSignal>> signal = store_.WatchQueues(o_.queues);
    if (!signal.ok()) {
      Log("no wake-up signal from the store, polling every " + FormatDuration(o_.idle_poll) + ": " +
          signal.status().message());
    }
    std::lock_guard lock(mu_);
    if (started_) return Status::FailedPrecondition("the worker was already started");
    started_ = true;
    Log("started: queues " + Join(o_.queues) + ", concurrency " + std::to_string(o_.concurrency) +
        ", lease " + FormatDuration(o_.lease));
    for (int i = 0; i < o_.concurrency; ++i) {
      executors_.emplace_back([this] { ExecutorLoop(); });
      thread_ids_.push_back(executors_.back().get_id());
    }
    for (int i = 0; i < kReporters; ++i) {
      reporters_.emplace_back([this] { ReporterLoop(); });
      thread_ids_.push_back(reporters_.back().get_id());
    }
    if (signal.ok() && *signal) {
      signal_ = std::move(*signal);
      watcher_ = std::thread([this] { WatcherLoop(*signal_); });
      thread_ids_.push_back(watcher_.get_id());
    }
    supervisor_ = std::thread([this] { SupervisorLoop(); });
    fetcher_ = std::thread([this] { FetcherLoop(); });
    thread_ids_.insert(thread_ids_.end(), {supervisor_.get_id(), fetcher_.get_id()});
    return Status::Ok();
  }

  void Stop() {
    if (OnOwnThread()) {
      // A handler or hook cannot wait for its own thread: ask, and let Wait()
      // (or the destructor) finish the shutdown.
      {
        std::lock_guard lock(mu_);
        stop_requested_ = true;
        stopping_ = true;
      }
      fetch_cv_.notify_all();
      done_cv_.notify_all();
      return;
    }
    std::lock_guard stop_lock(stop_mu_);
    {
      std::unique_lock lock(mu_);
      if (!started_ || stopped_) return;
      stopping_ = true;
    }
    fetch_cv_.notify_all();
    if (signal_) signal_->Interrupt();
    if (fetcher_.joinable()) fetcher_.join();
    if (watcher_.joinable()) watcher_.join();

    // Jobs claimed but not started go back at once.
    std::vector<InFlightPtr> unstarted;
    {
      std::lock_guard lock(mu_);
      for (InFlightPtr& f : queue_) {
        int expected = kQueued;
        if (f->state.compare_exchange_strong(expected, kAbandoned)) {
          inflight_.erase(KeyOf(*f));
          unstarted.push_back(f);
        }
      }
      queue_.clear();
    }
    ReleaseAll(unstarted);

    // Running jobs get the grace period; those still running are asked to
    // stop, get a moment to do so, and are released.
    std::vector<InFlightPtr> running;
    {
      std::unique_lock lock(mu_);
      done_cv_.wait_for(lock, o_.grace, [this] { return inflight_.empty(); });
      for (auto& [key, f] : inflight_) {
        int expected = kRunning;
        if (f->state.compare_exchange_strong(expected, kAbandoned)) {
          f->stop.request_stop();
          running.push_back(f);
          ++abandoned_running_;
        }
      }
      inflight_.clear();
      halt_ = true;
      done_cv_.wait_for(lock, kStopWait, [this] { return abandoned_running_ == 0; });
    }
    if (!running.empty()) {
      Log(std::to_string(running.size()) + " jobs still running after the grace period");
    }
    ReleaseAll(running);
    work_cv_.notify_all();
    for (std::thread& t : executors_) t.join();  // waits for handlers that ignore their stop token
    {
      std::lock_guard lock(ack_mu_);
      ack_stop_ = true;
    }
    ack_cv_.notify_all();
    for (std::thread& t : reporters_) t.join();
    {
      std::lock_guard lock(mu_);
      supervisor_stop_ = true;
    }
    supervisor_cv_.notify_all();
    if (supervisor_.joinable()) supervisor_.join();
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    done_cv_.notify_all();
    Log("stopped");
  }

  void Notify() {
    {
      std::lock_guard lock(mu_);
      notified_ = true;
    }
    fetch_cv_.notify_all();
  }

  void Wait() {
    {
      std::unique_lock lock(mu_);
      done_cv_.wait(lock, [this] { return stopped_ || drained_ || stop_requested_ || !started_; });
      if (!started_ || stopped_) return;
    }
    Stop();  // drained or asked from inside: finish the shutdown from this thread
  }

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

  // ---- Fetcher -------------------------------------------------------------

  void FetcherLoop() {
    size_t next_queue = 0;
    while (true) {
      int capacity;
      {
        std::unique_lock lock(mu_);
        if (stopping_) return;
        capacity = o_.concurrency + o_.prefetch - Load();
        if (capacity <= 0) {
          fetch_cv_.wait(lock,
                         [this] { return stopping_ || Load() < o_.concurrency + o_.prefetch; });
          continue;
        }
        notified_ = false;
      }
      bool claimed_any = false, failed = false;
      for (size_t i = 0; i < o_.queues.size() && capacity > 0; ++i) {
        {
          std::lock_guard lock(mu_);
          if (stopping_) return;
        }
        const std::string& queue = o_.queues[(next_queue + i) % o_.queues.size()];
        Result<std::vector<ClaimedJob>> claimed =
            store_.Claim(ClaimRequest{queue, o_.id, std::min(capacity, 1000), o_.lease});
        if (!claimed.ok()) {
          Log("claim from " + queue + " failed: " + claimed.status().message());
          failed = true;
          continue;
        }
        capacity -= static_cast<int>(claimed->size());
        claimed_any = claimed_any || !claimed->empty();
        Enqueue(std::move(*claimed));
      }
      next_queue = (next_queue + 1) % o_.queues.size();
      if (claimed_any) continue;
      if (failed) {
        // The store is failing: do not spin on it.
        std::unique_lock lock(mu_);
        fetch_cv_.wait_for(lock, std::max(o_.idle_poll, Millis(100)), [this] { return stopping_; });
        continue;
      }
      if (o_.drain && Drained()) {
        Log("drained: the served queues have no job left");
        {
          std::lock_guard lock(mu_);
          drained_ = true;
        }
        done_cv_.notify_all();
        return;
      }
      SleepUntilSomethingIsDue();
    }
  }

  // Waits on the store's signal and wakes the fetcher when it fires.
  void WatcherLoop(JobSignal& signal) {
    while (true) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
      }
      Result<bool> woke = signal.Wait(kSignalWait);
      if (woke.ok() && *woke) {
        Notify();
      } else if (!woke.ok()) {
        std::unique_lock lock(mu_);
        fetch_cv_.wait_for(lock, kSignalWait, [this] { return stopping_; });
      }
    }
  }

  void Enqueue(std::vector<ClaimedJob> claimed) {
    if (claimed.empty()) return;
    {
      std::lock_guard lock(mu_);
      for (ClaimedJob& c : claimed) {
        auto f = std::make_shared<InFlight>();
        f->claimed = std::move(c);
        inflight_[KeyOf(*f)] = f;
        queue_.push_back(std::move(f));
      }
    }
    counts_.claimed += static_cast<int64_t>(claimed.size());
    work_cv_.notify_all();
  }

  // True when no served queue holds a live job and nothing is in flight here.
  bool Drained() {
    {
      std::lock_guard lock(mu_);
      if (Load() > 0) return false;
    }
    for (const std::string& q : o_.queues) {
      Result<std::vector<QueueStats>> s = store_.Stats(q);
      if (!s.ok()) return false;
      for (const QueueStats& qs : *s) {
        for (JobState st :
             {JobState::kReady, JobState::kScheduled, JobState::kRetryWait, JobState::kActive}) {
          auto it = qs.states.find(st);
          if (it != qs.states.end() && it->second > 0) return false;
        }
      }
    }
    return true;
  }

  // Sleeps until the earliest due job of the served queues, a retry this
  // worker planned, the idle poll, a Notify(), or Stop(), whichever comes first.
  void SleepUntilSomethingIsDue() {
    TimePoint now = store_.Now();
    TimePoint wake = now + o_.idle_poll;
    for (const std::string& q : o_.queues) {
      Result<std::optional<TimePoint>> due = store_.NextDueAt(q);
      if (due.ok() && *due && **due < wake) wake = **due;
    }
    std::unique_lock lock(mu_);
    if (wake_hint_ && *wake_hint_ < wake) wake = *wake_hint_;
    if (wake_hint_ && *wake_hint_ <= now) wake_hint_.reset();
    if (wake <= now) return;
    fetch_cv_.wait_for(lock, wake - now, [this] { return stopping_ || notified_; });
  }

  // ---- Executors -----------------------------------------------------------

  void ExecutorLoop() {
    // Writing to a pipe whose reader has gone (an exec handler's program that
    // ignores its stdin) must fail with EPIPE, not kill the process.
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
    while (true) {
      InFlightPtr f;
      bool has_deadline = false;
      {
        std::unique_lock lock(mu_);
        work_cv_.wait(lock, [this] { return halt_ || !queue_.empty(); });
        if (queue_.empty()) return;  // halted
        f = std::move(queue_.front());
        queue_.pop_front();
        int expected = kQueued;
        if (!f->state.compare_exchange_strong(expected, kRunning)) continue;
        if (f->claimed.job.timeout) {
          // The timeout counts from when the handler starts, not from the
          // claim: time spent prefetched is not the attempt's.
          f->deadline = store_.Now() + *f->claimed.job.timeout;
          has_deadline = true;
          supervisor_wake_ = true;
        }
      }
      if (has_deadline) supervisor_cv_.notify_all();
      Run(f);
    }
  }

  void Run(const InFlightPtr& f) {
    const Job& job = f->claimed.job;
    const Attempt& attempt = f->claimed.attempt;
    if (attempt.trigger == Trigger::kManual) {
      CallHooks("OnReplay", [&](LifecycleHooks& h) { h.OnReplay(job, attempt); });
    }
    std::optional<HandlerResult> result;
    JobContext ctx{job, attempt, f->stop.get_token()};
    const Handler* handler = FindHandler(job.type);
    try {
      if (handler == nullptr) {
        result = HandlerResult::Unclassified(
            "NO_HANDLER", "worker " + o_.id + " has no handler for job type '" + job.type + "'");
      } else {
        result = (*handler)(ctx);
      }
    } catch (const std::exception& e) {
      result =
          HandlerResult::Failure({o_.exception_class, std::string(kCodeUnhandledException),
                                  e.what(), std::string("exception of type ") + typeid(e).name()});
    } catch (...) {
      result = HandlerResult::Failure({o_.exception_class, std::string(kCodeUnhandledException),
                                       "an exception that is not a std::exception", ""});
    }
    // done_cv_ is told only when what Stop() waits for happens (no job left
    // in flight, or no abandoned handler left running): a thread waiting in
    // Wait() would otherwise wake, and sleep again, for every job.
    int expected = kRunning;
    if (!f->state.compare_exchange_strong(expected, kDone)) {
      // Timed out, lease lost or released meanwhile: that is already recorded.
      bool last;
      {
        std::lock_guard lock(mu_);
        last = --abandoned_running_ == 0;
      }
      fetch_cv_.notify_all();
      if (last) done_cv_.notify_all();
      return;
    }
    bool last;
    {
      // Until a reporter has stored the result, heartbeats keep the lease:
      // a slow store must not let the job be recovered and run again.
      std::lock_guard lock(mu_);
      inflight_.erase(KeyOf(*f));
      reporting_[KeyOf(*f)] = f;
      last = inflight_.empty();
    }
    fetch_cv_.notify_all();
    if (last) done_cv_.notify_all();
    if (result->ok()) {
      {
        std::lock_guard lock(ack_mu_);
        acks_.push_back(f);
      }
      ack_cv_.notify_one();
      return;
    }
    // Failures go to the reporter too, which sends them to the store in batches.
    FailRequest req = PrepareFailure(f->claimed, Outcome::kFailed, result->failure());
    {
      std::lock_guard lock(ack_mu_);
      fails_.emplace_back(f, std::move(req));
    }
    ack_cv_.notify_one();
  }

  const Handler* FindHandler(const std::string& type) const {
    auto it = handlers_.find(type);
    if (it != handlers_.end()) return &it->second;
    return any_ ? &any_ : nullptr;
  }

  const ClassifierConfig& ClassesFor(const std::string& queue) const {
    auto it = o_.queue_classes.find(queue);
    return it == o_.queue_classes.end() ? o_.classes : it->second;
  }

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
  FailRequest PrepareFailure(const ClaimedJob& c, Outcome outcome, HandlerFailure failure) {
    if (classifier_) {
      try {
        classifier_(c.job, failure);
      } catch (const std::exception& e) {
        Log(std::string("the custom classifier threw: ") + e.what());
      }
    }
    FailRequest req;
    req.lease = c.lease;
    req.worker = o_.id;
    req.outcome = outcome;
    req.error = Classify(failure, ClassesFor(c.job.queue), c.job.policy);
    return req;
  }

  void ReportFailure(const ClaimedJob& c, Outcome outcome, HandlerFailure failure) {
    FailRequest req = PrepareFailure(c, outcome, std::move(failure));
    AfterFailure(c, req, WithRetries<FailResult>([&] { return store_.Fail(req); }));
  }

  // Counts a reported failure, wakes the fetcher for a planned retry, calls the hooks.
  void AfterFailure(const ClaimedJob& c, const FailRequest& req, const Result<FailResult>& r) {
    if (!r.ok()) {
      Log("job " + c.job.id + ": reporting the failure failed: " + r.status().message());
      if (r.status().code() == StatusCode::kConflict) ++counts_.lost;
      return;
    }
    (req.outcome == Outcome::kTimedOut ? counts_.timed_out : counts_.failed) += 1;
    if (r->decision.next_run_at) {
      {
        // An earlier wake-up than the fetcher's current one interrupts its sleep.
        std::lock_guard lock(mu_);
        if (!wake_hint_ || *r->decision.next_run_at < *wake_hint_) {
          wake_hint_ = r->decision.next_run_at;
          notified_ = true;
        }
      }
      fetch_cv_.notify_all();
    }
    if (hooks_.empty()) return;
    Attempt ended = c.attempt;
    ended.ended_at = store_.Now();
    ended.outcome = req.outcome;
    ended.error = req.error.error;
    ended.decision = r->decision;
    AttemptReport report{c.job, ended, r->state};
    CallHooks("AfterAttempt", [&](LifecycleHooks& h) { h.AfterAttempt(report); });
    if (r->decision.action == Action::kRetry) {
      CallHooks("OnRetryScheduled", [&](LifecycleHooks& h) { h.OnRetryScheduled(report); });
    } else if (r->decision.action == Action::kDead) {
      CallHooks("OnDead", [&](LifecycleHooks& h) { h.OnDead(report); });
    }
  }

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

  // ---- Reporters -----------------------------------------------------------

  // Reports successes and failures to the store in batches of up to
  // ack_batch each: one Complete and one FailMany call per batch.
  void ReporterLoop() {
    while (true) {
      std::vector<InFlightPtr> batch;
      std::vector<std::pair<InFlightPtr, FailRequest>> fails;
      {
        std::unique_lock lock(ack_mu_);
        ack_cv_.wait(lock, [this] { return ack_stop_ || !acks_.empty() || !fails_.empty(); });
        if (acks_.empty() && fails_.empty()) return;  // stopping and nothing left
        const size_t most = static_cast<size_t>(std::max(1, o_.ack_batch));
        size_t n = std::min(acks_.size(), most);
        batch.assign(acks_.begin(), acks_.begin() + static_cast<std::ptrdiff_t>(n));
        acks_.erase(acks_.begin(), acks_.begin() + static_cast<std::ptrdiff_t>(n));
        n = std::min(fails_.size(), most);
        fails.assign(std::make_move_iterator(fails_.begin()),
                     std::make_move_iterator(fails_.begin() + static_cast<std::ptrdiff_t>(n)));
        fails_.erase(fails_.begin(), fails_.begin() + static_cast<std::ptrdiff_t>(n));
      }
      if (!batch.empty()) ReportSuccesses(batch);
      if (!fails.empty()) ReportFailures(fails);
    }
  }

  void ReportSuccesses(const std::vector<InFlightPtr>& batch) {
    std::vector<Completion> items;
    for (const InFlightPtr& f : batch) items.push_back({f->claimed.lease, o_.id});
    Result<std::vector<Status>> r =
        WithRetries<std::vector<Status>>([&] { return store_.Complete(items); });
    Reported(batch);
    if (!r.ok()) {
      Log("reporting " + std::to_string(items.size()) +
          " successes failed: " + r.status().message());
      return;  // their leases will expire and the jobs will run again: at-least-once
    }
    TimePoint now = hooks_.empty() ? TimePoint{} : store_.Now();
    for (size_t i = 0; i < batch.size(); ++i) {
      const ClaimedJob& c = batch[i]->claimed;
      if (!(*r)[i].ok()) {
        ++counts_.lost;
        Log("job " + c.job.id + ": success refused: " + (*r)[i].message());
        continue;
      }
      ++counts_.succeeded;
      if (hooks_.empty()) continue;
      Attempt ended = c.attempt;
      ended.ended_at = now;
      ended.outcome = Outcome::kSucceeded;
      ended.decision = SuccessDecision();
      AttemptReport report{c.job, ended, JobState::kCompleted};
      CallHooks("AfterAttempt", [&](LifecycleHooks& h) { h.AfterAttempt(report); });
    }
  }

  // The results of `batch` are stored (or given up on): no more heartbeats.
  void Reported(const std::vector<InFlightPtr>& batch) {
    std::lock_guard lock(mu_);
    for (const InFlightPtr& f : batch) reporting_.erase(KeyOf(*f));
  }

  void ReportFailures(const std::vector<std::pair<InFlightPtr, FailRequest>>& fails) {
    std::vector<FailRequest> reqs;
    for (const auto& [f, req] : fails) reqs.push_back(req);
    Result<std::vector<Result<FailResult>>> r =
        WithRetries<std::vector<Result<FailResult>>>([&] { return store_.FailMany(reqs); });
    {
      std::lock_guard lock(mu_);
      for (const auto& [f, req] : fails) reporting_.erase(KeyOf(*f));
    }
    for (size_t i = 0; i < fails.size(); ++i) {
      AfterFailure(fails[i].first->claimed, fails[i].second, r.ok() ? (*r)[i] : r.status());
    }
  }

  // ---- Supervisor ----------------------------------------------------------

  void SupervisorLoop() {
    TimePoint next_heartbeat = store_.Now() + o_.heartbeat_every;
    TimePoint next_recover = store_.Now();
    while (true) {
      TimePoint now = store_.Now();
      TimeOutExpired(now);
      if (now >= next_heartbeat) {
        Heartbeat();
        next_heartbeat = now + o_.heartbeat_every;
      }
      if (now >= next_recover) {
        Recover();
        next_recover = now + o_.recover_every;
      }
      std::unique_lock lock(mu_);
      if (supervisor_stop_) return;
      TimePoint wake = std::min(next_heartbeat, next_recover);
      for (auto& [key, f] : inflight_) {
        if (f->deadline && *f->deadline < wake) wake = *f->deadline;
      }
      now = store_.Now();
      if (wake > now && !supervisor_wake_) {
        supervisor_cv_.wait_for(lock, wake - now,
                                [this] { return supervisor_stop_ || supervisor_wake_; });
      }
      supervisor_wake_ = false;
      if (supervisor_stop_) return;
    }
  }

  void TimeOutExpired(TimePoint now) {
    std::vector<InFlightPtr> expired;
    {
      std::lock_guard lock(mu_);
      for (auto it = inflight_.begin(); it != inflight_.end();) {
        InFlightPtr& f = it->second;
        int expected = kRunning;
        if (f->deadline && *f->deadline <= now &&
            f->state.compare_exchange_strong(expected, kAbandoned)) {
          f->stop.request_stop();
          ++abandoned_running_;
          expired.push_back(f);
          it = inflight_.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (expired.empty()) return;
    fetch_cv_.notify_all();
    done_cv_.notify_all();
    for (const InFlightPtr& f : expired) {
      const Millis limit = *f->claimed.job.timeout;
      ReportFailure(f->claimed, Outcome::kTimedOut,
                    {ErrorClass::kTemporary, std::string(kCodeTimedOut),
                     "the attempt ran past its timeout of " + FormatDuration(limit), ""});
    }
  }

  void Heartbeat() {
    std::vector<InFlightPtr> held;
    {
      std::lock_guard lock(mu_);
      for (auto& [key, f] : inflight_) held.push_back(f);
      for (auto& [key, f] : reporting_) held.push_back(f);  // a refusal shows in its report
    }
    if (held.empty()) return;
    std::vector<Lease> leases;
    for (const InFlightPtr& f : held) leases.push_back(f->claimed.lease);
    Result<std::vector<Status>> r = store_.Heartbeat(leases, o_.lease);
    if (!r.ok()) {
      Log("heartbeat failed: " + r.status().message());
      return;
    }
    for (size_t i = 0; i < held.size(); ++i) {
      if ((*r)[i].ok()) continue;
      InFlightPtr& f = held[i];
      int state = f->state.load();
      if ((state == kQueued || state == kRunning) &&
          f->state.compare_exchange_strong(state, kAbandoned)) {
        f->stop.request_stop();
        ++counts_.lost;
        Log("job " + f->claimed.job.id + ": lease lost (" + (*r)[i].message() + "); stopping it");
        std::lock_guard lock(mu_);
        inflight_.erase(KeyOf(*f));
        if (state == kRunning) ++abandoned_running_;
      }
    }
    fetch_cv_.notify_all();
    done_cv_.notify_all();
  }

  void Recover() {
    while (true) {
      Result<std::vector<RecoveredJob>> r = store_.RecoverExpired(100);
      if (!r.ok()) {
        Log("recovery failed: " + r.status().message());
        return;
      }
      for (const RecoveredJob& j : *r) {
        Log("recovered job " + j.job_id + " from " + j.worker + ": " + std::string(Name(j.state)) +
            " (" + j.decision.reason + ")");
      }
      if (!r->empty()) Notify();
      if (r->size() < 100) return;
    }
  }

  void ReleaseAll(const std::vector<InFlightPtr>& jobs) {
    if (jobs.empty()) return;
    std::vector<Lease> leases;
    for (const InFlightPtr& f : jobs) leases.push_back(f->claimed.lease);
    Result<std::vector<Status>> r =
        WithRetries<std::vector<Status>>([&] { return store_.Release(leases, o_.id); });
    if (!r.ok()) {
      Log("releasing " + std::to_string(leases.size()) +
          " jobs failed (their leases will expire): " + r.status().message());
      return;
    }
    for (const Status& s : *r) counts_.released += s.ok();
    Log("released " + std::to_string(leases.size()) + " jobs for other workers");
  }

  void Log(const std::string& line) {
    std::string full = "worker " + o_.id + ": " + line;
    if (o_.log) {
      o_.log(full);
    } else {
      std::lock_guard lock(log_mu_);
      std::cerr << FormatTime(SystemClock().Now()) << " " << full << "\n";
    }
  }

  static std::string Join(const std::vector<std::string>& v) {
    std::string out;
    for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
    return out;
  }

  std::mutex stop_mu_;  // serializes Stop()
  std::mutex mu_;
  std::condition_variable fetch_cv_, work_cv_, done_cv_, supervisor_cv_;
  std::deque<InFlightPtr> queue_;         // claimed, not started
  std::map<Key, InFlightPtr> inflight_;   // claimed, not finished
  std::map<Key, InFlightPtr> reporting_;  // finished, result not yet stored
  int abandoned_running_ = 0;             // handlers still running after being abandoned
  std::optional<TimePoint> wake_hint_;    // earliest retry this worker planned
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

Worker::Worker(Store& store, WorkerOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {}
Worker::~Worker() = default;

void Worker::Handle(std::string type, Handler handler) {
  impl_->handlers_[std::move(type)] = std::move(handler);
}
void Worker::HandleAny(Handler handler) { impl_->any_ = std::move(handler); }
void Worker::SetClassifier(FailureClassifier classifier) {
  impl_->classifier_ = std::move(classifier);
}
void Worker::AddHooks(std::shared_ptr<LifecycleHooks> hooks) {
  impl_->hooks_.push_back(std::move(hooks));
}
Status Worker::Start() { return impl_->Start(); }
void Worker::Stop() { impl_->Stop(); }
void Worker::Notify() { impl_->Notify(); }
void Worker::Wait() { impl_->Wait(); }
const std::string& Worker::id() const { return impl_->o_.id; }

Worker::Counts Worker::counts() const {
  const auto& c = impl_->counts_;
  return Counts{c.claimed.load(),   c.succeeded.load(), c.failed.load(),
                c.timed_out.load(), c.lost.load(),      c.released.load()};
}

}  // namespace retraced
