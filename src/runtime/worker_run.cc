// The worker's executors, which run handlers, and reporters, which store
// their results in batches (worker_impl.h).
#include "runtime/worker_impl.h"

namespace retraced {

void Worker::Impl::ExecutorLoop() {
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

void Worker::Impl::Run(const InFlightPtr& f) {
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
        HandlerResult::Failure({o_.exception_class, std::string(kCodeUnhandledException), e.what(),
                                std::string("exception of type ") + typeid(e).name()});
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

const Handler* Worker::Impl::FindHandler(const std::string& type) const {
  auto it = handlers_.find(type);
  if (it != handlers_.end()) return &it->second;
  return any_ ? &any_ : nullptr;
}

const ClassifierConfig& Worker::Impl::ClassesFor(const std::string& queue) const {
  auto it = o_.queue_classes.find(queue);
  return it == o_.queue_classes.end() ? o_.classes : it->second;
}

FailRequest Worker::Impl::PrepareFailure(const ClaimedJob& c, Outcome outcome,
                                         HandlerFailure failure) {
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

void Worker::Impl::ReportFailure(const ClaimedJob& c, Outcome outcome, HandlerFailure failure) {
  FailRequest req = PrepareFailure(c, outcome, std::move(failure));
  AfterFailure(c, req, WithRetries<FailResult>([&] { return store_.Fail(req); }));
}

void Worker::Impl::AfterFailure(const ClaimedJob& c, const FailRequest& req,
                                const Result<FailResult>& r) {
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

void Worker::Impl::ReporterLoop() {
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

void Worker::Impl::ReportSuccesses(const std::vector<InFlightPtr>& batch) {
  std::vector<Completion> items;
  for (const InFlightPtr& f : batch) items.push_back({f->claimed.lease, o_.id});
  Result<std::vector<Status>> r =
      WithRetries<std::vector<Status>>([&] { return store_.Complete(items); });
  Reported(batch);
  if (!r.ok()) {
    Log("reporting " + std::to_string(items.size()) + " successes failed: " + r.status().message());
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

void Worker::Impl::Reported(const std::vector<InFlightPtr>& batch) {
  std::lock_guard lock(mu_);
  for (const InFlightPtr& f : batch) reporting_.erase(KeyOf(*f));
}

void Worker::Impl::ReportFailures(const std::vector<std::pair<InFlightPtr, FailRequest>>& fails) {
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

}  // namespace retraced
