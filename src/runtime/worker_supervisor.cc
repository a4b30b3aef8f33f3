// The worker's supervisor: attempts past their timeout, heartbeats of held
// leases, and recovery of expired ones (worker_impl.h).
#include "runtime/worker_impl.h"

namespace retraced {

void Worker::Impl::SupervisorLoop() {
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

void Worker::Impl::TimeOutExpired(TimePoint now) {
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

void Worker::Impl::Heartbeat() {
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

void Worker::Impl::Recover() {
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

}  // namespace retraced
