// The worker: its lifecycle, and the fetcher that claims jobs and waits
// for more (the threads around a store: worker_impl.h).
#include "runtime/worker_impl.h"

namespace retraced {

Status Worker::Impl::Start() {
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

void Worker::Impl::Stop() {
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

void Worker::Impl::Notify() {
  {
    std::lock_guard lock(mu_);
    notified_ = true;
  }
  fetch_cv_.notify_all();
}

void Worker::Impl::Wait() {
  {
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [this] { return stopped_ || drained_ || stop_requested_ || !started_; });
    if (!started_ || stopped_) return;
  }
  Stop();  // drained or asked from inside: finish the shutdown from this thread
}

void Worker::Impl::FetcherLoop() {
  size_t next_queue = 0;
  while (true) {
    int capacity;
    {
      std::unique_lock lock(mu_);
      if (stopping_) return;
      capacity = o_.concurrency + o_.prefetch - Load();
      if (capacity <= 0) {
        fetch_cv_.wait(lock, [this] { return stopping_ || Load() < o_.concurrency + o_.prefetch; });
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

void Worker::Impl::WatcherLoop(JobSignal& signal) {
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

void Worker::Impl::Enqueue(std::vector<ClaimedJob> claimed) {
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

bool Worker::Impl::Drained() {
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

void Worker::Impl::SleepUntilSomethingIsDue() {
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

void Worker::Impl::ReleaseAll(const std::vector<InFlightPtr>& jobs) {
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

void Worker::Impl::Log(const std::string& line) {
  std::string full = "worker " + o_.id + ": " + line;
  if (o_.log) {
    o_.log(full);
  } else {
    std::lock_guard lock(log_mu_);
    std::cerr << FormatTime(SystemClock().Now()) << " " << full << "\n";
  }
}

std::string Worker::Impl::Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

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
