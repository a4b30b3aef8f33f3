// The SQLite store's job lifecycle: enqueue, claim, complete, fail, heartbeat, recover.
#include <set>

#include "retraced/decide.h"
#include "store/sqlite/sqlite_rows.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store_checks.h"

namespace retraced::sqlite {

using internal::CheckActor;

namespace {

// Row numbers as a JSON array, for `seq IN (SELECT value FROM json_each(?))`:
// one statement for a batch of rows. A statement run once per row opens its
// cursors on the table and on each of its indexes again every time.
std::string SeqArray(const std::vector<int64_t>& seqs) {
  std::string out = "[";
  for (int64_t seq : seqs) {
    if (out.size() > 1) out += ',';
    out += std::to_string(seq);
  }
  out += ']';
  return out;
}

}  // namespace

Result<std::vector<EnqueueResult>> SqliteStore::Enqueue(std::span<const NewJob> jobs,
                                                        std::string_view actor) {
  RETRACED_RETURN_IF_ERROR(CheckActor("enqueue actor", actor));
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  // Build and check every job before touching the file: all or none.
  RETRACED_ASSIGN_OR_RETURN(std::vector<Job> built, internal::BuildNewJobs(jobs, now, ids_));
  for (Job& j : built) {
    if (!j.deadline_at) j.deadline_at = DeadlineAt(j.policy, now);
  }

  Txn txn(*db_);
  RETRACED_RETURN_IF_ERROR(txn.Begin());
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * holder, db_->Prepare("SELECT id FROM jobs WHERE queue = ? AND unique_key = ? AND "
                                  "state IN ('scheduled', 'ready', 'active', 'retry_wait')"));
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * ins,
      db_->Prepare("INSERT INTO jobs (id, queue, type, state, payload, policy, priority, "
                   "created_at, updated_at, run_at, unique_key, timeout_ms, deadline_at, "
                   "history_len) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
                   "ON CONFLICT (id) DO NOTHING"));
  std::vector<EnqueueResult> results;
  Counters counters;
  for (const Job& j : built) {
    EnqueueResult r{j.id, true, ""};
    if (j.unique_key) {
      holder->Reset();
      holder->Bind(1, j.queue).Bind(2, *j.unique_key);
      RETRACED_ASSIGN_OR_RETURN(bool held, holder->Step());
      if (held) {
        r.id = holder->Text(0);
        r.created = false;
        r.note = "unique key '" + *j.unique_key + "' is held by live job " + r.id;
        holder->Reset();
        results.push_back(std::move(r));
        continue;
      }
    }
    ins->Reset();
    ins->Bind(1, j.id).Bind(2, j.queue).Bind(3, j.type).Bind(4, Name(j.state));
    ins->BindBlob(5, j.payload).Bind(6, FormatPolicy(j.policy)).Bind(7, int64_t{j.priority});
    ins->Bind(8, T(now)).Bind(9, T(now)).Bind(10, T(j.run_at)).BindOpt(11, j.unique_key);
    if (j.timeout) ins->Bind(12, j.timeout->count());
    if (j.deadline_at) ins->Bind(13, T(*j.deadline_at));
    RETRACED_RETURN_IF_ERROR(ins->Run());
    if (db_->Changes() == 0) {
      r.created = false;
      r.note = "a job with id " + j.id + " exists";
      results.push_back(std::move(r));
      continue;
    }
    std::string note = j.state == JobState::kScheduled ? "due at " + T(j.run_at) : "";
    RETRACED_RETURN_IF_ERROR(
        AddEventAt(j.id, 1, now, std::nullopt, j.state, "enqueued", actor, note));
    ++counters[{j.queue, "enqueued"}];
    Moved(counters, j.queue, std::nullopt, Name(j.state));
    results.push_back(std::move(r));
  }
  RETRACED_RETURN_IF_ERROR(FlushCounters(counters));
  RETRACED_RETURN_IF_ERROR(txn.Commit());
  return results;
}

Result<std::vector<ClaimedJob>> SqliteStore::Claim(const ClaimRequest& req) {
  RETRACED_RETURN_IF_ERROR(internal::CheckClaim(req));
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  Txn txn(*db_);
  RETRACED_RETURN_IF_ERROR(txn.Begin());
  Counters counters;

  // Due scheduled and retry_wait jobs become ready first.
  for (JobState from : {JobState::kScheduled, JobState::kRetryWait}) {
    // The literal state list matches the partial index jobs_due (queue,
    // run_at), so only due entries are read; `state = ?` alone would walk
    // every waiting job of the queue.
    RETRACED_ASSIGN_OR_RETURN(
        Stmt * due,
        db_->Prepare("UPDATE jobs SET state = 'ready', updated_at = ?, history_len = "
                     "history_len + 1 WHERE queue = ? AND state IN ('scheduled', 'retry_wait') "
                     "AND state = ? AND run_at <= ? RETURNING id, history_len"));
    due->Bind(1, T(now)).Bind(2, req.queue).Bind(3, Name(from)).Bind(4, T(now));
    std::vector<std::pair<std::string, int64_t>> promoted;
    while (true) {
      RETRACED_ASSIGN_OR_RETURN(bool row, due->Step());
      if (!row) break;
      promoted.emplace_back(due->Text(0), due->Int(1));
    }
    for (const auto& [id, pos] : promoted) {
      RETRACED_RETURN_IF_ERROR(
          AddEventAt(id, pos, now, from, JobState::kReady, "due", "system", ""));
      Moved(counters, req.queue, Name(from), "ready");
    }
  }

  RETRACED_ASSIGN_OR_RETURN(
      Stmt * pick, db_->Prepare(std::string("SELECT ") + kJobColumns +
                                ", next_trigger, history_len FROM jobs WHERE queue = ? AND "
                                "state = 'ready' "
                                "ORDER BY priority DESC, run_at, seq LIMIT ?"));
  pick->Bind(1, req.queue).Bind(2, int64_t{req.max});
  std::vector<ClaimedJob> claimed;
  std::vector<int64_t> seqs, positions;  // positions: of each claim in its job's history
  while (true) {
    RETRACED_ASSIGN_OR_RETURN(bool row, pick->Step());
    if (!row) break;
    int64_t seq = 0;
    RETRACED_ASSIGN_OR_RETURN(JobSummary s, ReadJobRow(*pick, &seq));
    Result<Trigger> trigger = ParseTrigger(pick->Text(25));
    if (!trigger.ok())
      return Status::Internal("stored next_trigger: " + trigger.status().message());
    ClaimedJob c;
    c.job = std::move(s.job);
    c.attempt.n = c.job.attempt_count + 1;
    c.attempt.trigger = *trigger;
    c.attempt.worker = req.worker;
    c.attempt.started_at = now;
    c.attempt.lateness = now - c.job.run_at;
    c.lease = Lease{c.job.id, c.attempt.n};
    c.lease_expires_at = now + req.lease;
    c.job.attempt_count = c.attempt.n;
    c.job.state = JobState::kActive;
    claimed.push_back(std::move(c));
    seqs.push_back(seq);
    positions.push_back(pick->Int(26) + 1);
  }

  // One statement takes the whole batch (SeqArray). The attempt count
  // becomes the lease token (SET reads the row as it was).
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * take, db_->Prepare("UPDATE jobs SET state = 'active', attempt_count = attempt_count + "
                                "1, lease_token = attempt_count + 1, lease_worker = ?, "
                                "lease_expires_at = ?, updated_at = ?, history_len = history_len "
                                "+ 1 WHERE seq IN (SELECT value FROM json_each(?))"));
  if (!claimed.empty()) {
    take->Bind(1, req.worker).Bind(2, T(now + req.lease)).Bind(3, T(now)).Bind(4, SeqArray(seqs));
    RETRACED_RETURN_IF_ERROR(take->Run());
  }
  // The attempt's row stands for its 'claimed' event (see the view `history`).
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * attempt, db_->Prepare("INSERT INTO attempts (job_id, n, trigger, worker, started_at, "
                                   "lateness_ms, claimed_pos) VALUES (?, ?, ?, ?, ?, ?, ?)"));
  for (size_t i = 0; i < claimed.size(); ++i) {
    const ClaimedJob& c = claimed[i];
    attempt->Reset();
    attempt->Bind(1, c.job.id).Bind(2, int64_t{c.attempt.n}).Bind(3, Name(c.attempt.trigger));
    attempt->Bind(4, req.worker).Bind(5, T(now)).Bind(6, c.attempt.lateness.count());
    RETRACED_RETURN_IF_ERROR(attempt->Bind(7, positions[i]).Run());
    ++counters[{req.queue, "attempts"}];
    Moved(counters, req.queue, "ready", "active");
    ++counters[{req.queue, "attempts_" + std::string(Name(c.attempt.trigger))}];
  }
  RETRACED_RETURN_IF_ERROR(FlushCounters(counters));
  RETRACED_RETURN_IF_ERROR(txn.Commit());
  return claimed;
}

Result<std::vector<Status>> SqliteStore::EachLease(
    const std::vector<std::pair<Lease, std::string_view>>& items, std::string_view what,
    const LeaseAction& apply, const DeferredWrites& deferred) {
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  Txn txn(*db_);
  RETRACED_RETURN_IF_ERROR(txn.Begin());
  Counters counters;
  std::vector<Status> results;
  for (const auto& [lease, worker] : items) {
    if (deferred.before) RETRACED_RETURN_IF_ERROR(deferred.before(lease, now));
    RETRACED_ASSIGN_OR_RETURN(std::optional<LeaseRow> row, LoadLeaseRow(lease.job_id));
    if (!row) {
      results.push_back(Status::NotFound("no job " + lease.job_id));
      continue;
    }
    Status held = CheckLease(*row, lease.token, worker, what, now, counters);
    if (!held.ok()) {
      if (held.code() != StatusCode::kConflict) return held;
      results.push_back(held);  // the refusal is recorded and committed
      continue;
    }
    RETRACED_RETURN_IF_ERROR(apply(*row, worker, now, counters));
    results.push_back(Status::Ok());
  }
  if (deferred.after) RETRACED_RETURN_IF_ERROR(deferred.after(now));
  RETRACED_RETURN_IF_ERROR(FlushCounters(counters));
  RETRACED_RETURN_IF_ERROR(txn.Commit());
  return results;
}

Result<std::vector<Status>> SqliteStore::Complete(std::span<const Completion> items) {
  std::vector<std::pair<Lease, std::string_view>> leases;
  for (const Completion& c : items) leases.emplace_back(c.lease, c.worker);
  // The jobs' rows move to completed together, in one statement (SeqArray),
  // before a job named a second time is read again, and at the end.
  std::vector<int64_t> done;
  std::set<std::string, std::less<>> done_ids;
  auto finish = [&](TimePoint now) -> Status {
    if (done.empty()) return Status::Ok();
    RETRACED_ASSIGN_OR_RETURN(
        Stmt * j, db_->Prepare("UPDATE jobs SET state = 'completed', lease_token = NULL, "
                               "lease_worker = NULL, lease_expires_at = NULL, "
                               "lease_expired_streak = 0, updated_at = ?, history_len = "
                               "history_len + 1 WHERE seq IN (SELECT value FROM json_each(?))"));
    RETRACED_RETURN_IF_ERROR(j->Bind(1, T(now)).Bind(2, SeqArray(done)).Run());
    done.clear();
    done_ids.clear();
    return Status::Ok();
  };
  DeferredWrites deferred;
  deferred.before = [&](const Lease& next, TimePoint now) {
    return done_ids.count(next.job_id) ? finish(now) : Status::Ok();
  };
  deferred.after = finish;
  return EachLease(
      leases, "completion",
      [&](const LeaseRow& row, std::string_view worker, TimePoint now,
          Counters& counters) -> Status {
        // The attempt's row stands for the 'succeeded' event (see the view
        // `history`), the job's next history position.
        RETRACED_ASSIGN_OR_RETURN(
            Stmt * a, db_->Prepare("UPDATE attempts SET ended_at = ?, outcome = 'succeeded', "
                                   "action = 'none', reason = 'succeeded', end_pos = ?, "
                                   "end_to = 'completed', end_event = 'succeeded', end_actor = "
                                   "? WHERE job_id = ? AND n = ?"));
        a->Bind(1, T(now)).Bind(2, row.history_len + 1);
        if (worker != row.lease_worker) a->Bind(3, worker);
        RETRACED_RETURN_IF_ERROR(a->Bind(4, row.id).Bind(5, row.attempt_count).Run());
        done.push_back(row.seq);
        done_ids.insert(row.id);
        ++counters[{row.queue, "completed"}];
        Moved(counters, row.queue, "active", "completed");
        return Status::Ok();
      },
      deferred);
}

Result<FailResult> SqliteStore::Fail(const FailRequest& req) {
  RETRACED_ASSIGN_OR_RETURN(std::vector<Result<FailResult>> one,
                            FailMany(std::span<const FailRequest>(&req, 1)));
  return std::move(one[0]);
}

Result<std::vector<Result<FailResult>>> SqliteStore::FailMany(std::span<const FailRequest> reqs) {
  RETRACED_RETURN_IF_ERROR(internal::CheckFailures(reqs));
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  Txn txn(*db_);
  RETRACED_RETURN_IF_ERROR(txn.Begin());
  Counters counters;
  std::vector<Result<FailResult>> out;
  for (const FailRequest& req : reqs) {
    RETRACED_ASSIGN_OR_RETURN(std::optional<LeaseRow> row, LoadLeaseRow(req.lease.job_id));
    if (!row) {
      out.push_back(Status::NotFound("no job " + req.lease.job_id));
      continue;
    }
    // A stale lease's refusal is recorded (committed with the rest) and reported.
    Status lease = CheckLease(*row, req.lease.token, req.worker, "failure", now, counters);
    if (!lease.ok()) {
      out.push_back(lease);
      continue;
    }
    out.push_back(EndAttempt(*row, req.outcome, req.error, req.worker, "", now, counters));
    RETRACED_RETURN_IF_ERROR(out.back().status());
  }
  RETRACED_RETURN_IF_ERROR(FlushCounters(counters));
  RETRACED_RETURN_IF_ERROR(txn.Commit());
  return out;
}

Result<std::vector<Status>> SqliteStore::Heartbeat(std::span<const Lease> leases, Millis lease) {
  RETRACED_RETURN_IF_ERROR(internal::CheckLeaseLength(lease));
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  Txn txn(*db_);
  RETRACED_RETURN_IF_ERROR(txn.Begin());
  RETRACED_ASSIGN_OR_RETURN(Stmt * q,
                            db_->Prepare("UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND "
                                         "state = 'active' AND lease_token = ?"));
  std::vector<Status> results;
  for (const Lease& l : leases) {
    q->Reset();
    RETRACED_RETURN_IF_ERROR(q->Bind(1, T(now + lease)).Bind(2, l.job_id).Bind(3, l.token).Run());
    if (db_->Changes() == 1) {
      results.push_back(Status::Ok());
    } else {
      results.push_back(Status::Conflict("job " + l.job_id + ": lease token " +
                                         std::to_string(l.token) + " is no longer the job's"));
    }
  }
  RETRACED_RETURN_IF_ERROR(txn.Commit());
  return results;
}

Result<std::vector<Status>> SqliteStore::Release(std::span<const Lease> leases,
                                                 std::string_view worker) {
  RETRACED_RETURN_IF_ERROR(CheckActor("worker id", worker));
  std::vector<std::pair<Lease, std::string_view>> items;
  for (const Lease& l : leases) items.emplace_back(l, worker);
  return EachLease(
      items, "release",
      [this](const LeaseRow& row, std::string_view by, TimePoint now,
             Counters& counters) -> Status {
        RETRACED_ASSIGN_OR_RETURN(RetryPolicy policy, StoredPolicy(row.policy));
        HandlerFailure stopped{
            ErrorClass::kTemporary, std::string(kCodeWorkerStopped),
            "worker " + std::string(by) + " stopped before the attempt finished and released it",
            ""};
        Classified error = Classify(stopped, ClassifierConfig{}, policy);
        return EndAttempt(row, Outcome::kLeaseExpired, error, by, "released", now, counters)
            .status();
      });
}

Result<std::vector<RecoveredJob>> SqliteStore::RecoverExpired(int max) {
  RETRACED_RETURN_IF_ERROR(internal::CheckRecoverySize(max));
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  Txn txn(*db_);
  RETRACED_RETURN_IF_ERROR(txn.Begin());
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * q, db_->Prepare("SELECT id, lease_expires_at FROM jobs WHERE state = 'active' AND "
                             "lease_expires_at < ? ORDER BY lease_expires_at LIMIT ?"));
  q->Bind(1, T(now)).Bind(2, int64_t{max});
  std::vector<std::pair<std::string, std::string>> expired;
  while (true) {
    RETRACED_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    expired.emplace_back(q->Text(0), q->Text(1));
  }
  Counters counters;
  std::vector<RecoveredJob> recovered;
  for (const auto& [id, expired_at] : expired) {
    RETRACED_ASSIGN_OR_RETURN(std::optional<LeaseRow> row, LoadLeaseRow(id));
    RETRACED_ASSIGN_OR_RETURN(RetryPolicy policy, StoredPolicy(row->policy));
    HandlerFailure lost{ErrorClass::kTemporary, std::string(kCodeLeaseExpired),
                        "the lease of worker " + row->lease_worker + " expired at " + expired_at,
                        ""};
    Classified error = Classify(lost, options_.lease_expiry_classes, policy);
    RETRACED_ASSIGN_OR_RETURN(FailResult r, EndAttempt(*row, Outcome::kLeaseExpired, error,
                                                       "system", "lease_expired", now, counters));
    recovered.push_back(RecoveredJob{id, row->lease_worker, std::move(r.decision), r.state});
  }
  RETRACED_RETURN_IF_ERROR(FlushCounters(counters));
  RETRACED_RETURN_IF_ERROR(txn.Commit());
  return recovered;
}

}  // namespace retraced::sqlite
