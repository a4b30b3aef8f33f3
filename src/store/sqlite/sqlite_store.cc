// The SQLite store: opening, migrations, and the pieces the operations share.
#include "store/sqlite/sqlite_store.h"

#include <random>

#include "retraced/decide.h"
#include "retraced/json.h"
#include "store/embedded.h"
#include "store/sqlite/sqlite_rows.h"

namespace retraced::sqlite {
namespace {

uint64_t EntropySeed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

SqliteStore::SqliteStore(std::unique_ptr<Db> db, const StoreOptions& options)
    : db_(std::move(db)),
      options_(options),
      clock_(options.clock ? *options.clock : system_clock_),
      ids_(clock_, EntropySeed()) {}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                       const StoreOptions& options) {
  RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Db> db, Db::Open(path));
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(db), options));
  RETRACED_RETURN_IF_ERROR(store->Migrate().WithContext("sqlite:" + path));
  return store;
}

Status SqliteStore::Migrate() {
  std::lock_guard lock(mu_);
  RETRACED_RETURN_IF_ERROR(
      db_->Exec("CREATE TABLE IF NOT EXISTS schema_version ("
                "  version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"));
  // Each migration in its own transaction, read and applied under the write
  // lock so that processes opening a new file together apply it once.
  for (const EmbeddedFile& file : SqliteMigrationFiles()) {
    int version = std::stoi(std::string(file.name.substr(0, file.name.find('_'))));
    Txn txn(*db_);
    RETRACED_RETURN_IF_ERROR(txn.Begin());
    RETRACED_ASSIGN_OR_RETURN(Stmt * q,
                              db_->Prepare("SELECT 1 FROM schema_version WHERE version = ?"));
    q->Bind(1, int64_t{version});
    RETRACED_ASSIGN_OR_RETURN(bool applied, q->Step());
    q->Reset();
    if (applied) continue;
    RETRACED_RETURN_IF_ERROR(
        db_->Exec(file.text).WithContext("migration " + std::string(file.name)));
    RETRACED_ASSIGN_OR_RETURN(
        Stmt * ins,
        db_->Prepare("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)"));
    RETRACED_RETURN_IF_ERROR(
        ins->Bind(1, int64_t{version}).Bind(2, file.name).Bind(3, T(clock_.Now())).Run());
    RETRACED_RETURN_IF_ERROR(txn.Commit());
  }
  return Status::Ok();
}

Result<int> SqliteStore::SchemaVersion() {
  std::lock_guard lock(mu_);
  RETRACED_ASSIGN_OR_RETURN(Stmt * q, db_->Prepare("SELECT max(version) FROM schema_version"));
  RETRACED_ASSIGN_OR_RETURN(bool row, q->Step());
  int v = row ? static_cast<int>(q->Int(0)) : 0;
  q->Reset();
  return v;
}

Status SqliteStore::AddEvent(std::string_view job_id, TimePoint at, std::optional<JobState> from,
                             std::optional<JobState> to, std::string_view reason,
                             std::string_view actor, std::string_view note) {
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * next, db_->Prepare("UPDATE jobs SET history_len = history_len + 1 WHERE id = ? "
                                "RETURNING history_len"));
  next->Bind(1, job_id);
  RETRACED_ASSIGN_OR_RETURN(bool found, next->Step());
  if (!found) return Status::Internal("an event for job " + std::string(job_id) + ", not stored");
  const int64_t pos = next->Int(0);
  next->Reset();
  return AddEventAt(job_id, pos, at, from, to, reason, actor, note);
}

Status SqliteStore::AddEventAt(std::string_view job_id, int64_t pos, TimePoint at,
                               std::optional<JobState> from, std::optional<JobState> to,
                               std::string_view reason, std::string_view actor,
                               std::string_view note) {
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * q, db_->Prepare("INSERT INTO events (job_id, pos, at, from_state, to_state, reason, "
                             "actor, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  q->Bind(1, job_id).Bind(2, pos).Bind(3, T(at));
  if (from) q->Bind(4, Name(*from));
  if (to) q->Bind(5, Name(*to));
  return q->Bind(6, reason).Bind(7, actor).Bind(8, note).Run();
}

void SqliteStore::Moved(Counters& counters, const std::string& queue,
                        std::optional<std::string_view> from, std::string_view to) {
  if (from) --counters[{queue, std::string(kStateCount) + std::string(*from)}];
  ++counters[{queue, std::string(kStateCount) + std::string(to)}];
}

Status SqliteStore::FlushCounters(const Counters& counters) {
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * q,
      db_->Prepare("INSERT INTO queue_counters (queue, name, value) VALUES (?, ?, ?) "
                   "ON CONFLICT (queue, name) DO UPDATE SET value = value + excluded.value"));
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * states,
      db_->Prepare("INSERT INTO queue_states (queue, state, jobs) VALUES (?, ?, ?) "
                   "ON CONFLICT (queue, state) DO UPDATE SET jobs = jobs + excluded.jobs"));
  for (const auto& [key, delta] : counters) {
    if (delta == 0) continue;
    Stmt* into = q;
    std::string_view name = key.second;
    if (name.starts_with(kStateCount)) {
      into = states;
      name.remove_prefix(kStateCount.size());
    }
    into->Reset();
    RETRACED_RETURN_IF_ERROR(into->Bind(1, key.first).Bind(2, name).Bind(3, delta).Run());
  }
  return Status::Ok();
}

Result<std::optional<SqliteStore::LeaseRow>> SqliteStore::LoadLeaseRow(std::string_view id) {
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * q, db_->Prepare("SELECT seq, id, queue, state, policy, lease_worker, lease_token, "
                             "attempt_count, seq_start, last_delay_ms, lease_expired_streak, "
                             "replay_budget, deadline_at, history_len FROM jobs WHERE id = ?"));
  q->Bind(1, id);
  RETRACED_ASSIGN_OR_RETURN(bool found, q->Step());
  if (!found) return std::optional<LeaseRow>();
  LeaseRow r;
  r.seq = q->Int(0);
  r.id = q->Text(1);
  r.queue = q->Text(2);
  r.state = q->Text(3);
  r.policy = q->Text(4);
  r.lease_worker = q->Text(5);
  r.lease_token = q->OptInt(6).value_or(0);
  r.attempt_count = q->Int(7);
  r.seq_start = q->Int(8);
  r.last_delay_ms = q->Int(9);
  r.streak = q->Int(10);
  r.replay_budget = q->OptInt(11);
  r.deadline_at = q->OptText(12);
  r.history_len = q->Int(13);
  q->Reset();
  return std::optional<LeaseRow>(std::move(r));
}

Status SqliteStore::CheckLease(const LeaseRow& row, int64_t token, std::string_view worker,
                               std::string_view what, TimePoint now, Counters& counters) {
  if (row.state == "active" && row.lease_token == token) return Status::Ok();
  std::string note = std::string(what) + " with lease token " + std::to_string(token) +
                     " refused: the job is " + row.state;
  if (row.state == "active") note += " under token " + std::to_string(row.lease_token);
  Result<JobState> state = ParseJobState(row.state);
  RETRACED_RETURN_IF_ERROR(AddEvent(row.id, now, state.ok() ? std::optional(*state) : std::nullopt,
                                    std::nullopt, "stale_lease_refused", worker, note));
  ++counters[{row.queue, "stale_refused"}];
  return Status::Conflict("job " + row.id + ": " + note);
}

Result<FailResult> SqliteStore::EndAttempt(const LeaseRow& row, Outcome outcome,
                                           const Classified& error, std::string_view actor,
                                           std::string_view event, TimePoint now,
                                           Counters& counters) {
  Result<RetryPolicy> policy = StoredPolicy(row.policy);
  if (!policy.ok())
    return Status::Internal("stored policy of " + row.id + ": " + policy.status().message());
  RetryContext ctx;
  ctx.job_id = row.id;
  ctx.attempt = static_cast<int>(row.attempt_count);
  ctx.run_in_sequence = static_cast<int>(row.attempt_count - row.seq_start + 1);
  if (row.replay_budget) ctx.budget = static_cast<int>(*row.replay_budget);
  ctx.previous_delay = Millis(row.last_delay_ms);
  if (row.deadline_at) {
    RETRACED_ASSIGN_OR_RETURN(ctx.deadline_at, ReadTime(*row.deadline_at, "deadline_at"));
  }
  // A release (WORKER_STOPPED) neither counts toward poison nor breaks the streak.
  const bool released = outcome == Outcome::kLeaseExpired && error.error.code == kCodeWorkerStopped;
  const bool lost = outcome == Outcome::kLeaseExpired && !released;
  ctx.lease_expired_in_row = lost ? static_cast<int>(row.streak) + 1 : 0;
  const int64_t streak = released ? row.streak : ctx.lease_expired_in_row;
  ctx.poison_after = options_.poison_after;
  ctx.now = now;
  Decision d = Decide(*policy, ctx, ToFailure(outcome, error));

  const Error& e = error.error;
  FailResult result{d, JobState::kDead};
  if (d.action == Action::kRetry) {
    result.state = d.delay.count() == 0 ? JobState::kReady : JobState::kRetryWait;
  }
  std::string_view reason = !event.empty()               ? event
                            : d.action == Action::kRetry ? "retry_scheduled"
                                                         : "dead";
  // The attempt's row records the move it ended with: the history's entry
  // at the next position (see the view `history`).
  const int64_t pos = row.history_len + 1;
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * up,
      db_->Prepare(
          "UPDATE attempts SET ended_at = ?, outcome = ?, error_class = ?, error_code = ?, "
          "error_message = ?, error_detail = ?, error_code_cut_bytes = ?, "
          "error_message_cut_bytes = ?, error_detail_cut_bytes = ?, action = ?, "
          "reason = ?, phase = ?, base_delay_ms = ?, jitter_ms = ?, delay_ms = ?, "
          "next_run_at = ?, dead_reason = ?, end_pos = ?, end_to = ?, end_event = ?, "
          "end_actor = ? WHERE job_id = ? AND n = ?"));
  up->Bind(1, T(now)).Bind(2, Name(outcome)).Bind(3, Name(e.error_class)).Bind(4, e.code);
  up->Bind(5, e.message).Bind(6, e.detail).Bind(7, static_cast<int64_t>(e.code_cut_bytes));
  up->Bind(8, static_cast<int64_t>(e.message_cut_bytes));
  up->Bind(9, static_cast<int64_t>(e.detail_cut_bytes)).Bind(10, Name(d.action)).Bind(11, d.reason);
  if (d.phase > 0) up->Bind(12, int64_t{d.phase});
  up->Bind(13, d.base_delay.count()).Bind(14, d.jitter.count()).Bind(15, d.delay.count());
  if (d.next_run_at) up->Bind(16, T(*d.next_run_at));
  if (d.dead_reason) up->Bind(17, Name(*d.dead_reason));
  up->Bind(18, pos).Bind(19, Name(result.state)).Bind(20, reason);
  if (actor != row.lease_worker) up->Bind(21, actor);
  RETRACED_RETURN_IF_ERROR(up->Bind(22, row.id).Bind(23, row.attempt_count).Run());

  const std::string signature = ErrorSignature(e.message);
  if (d.action == Action::kRetry) {
    RETRACED_ASSIGN_OR_RETURN(
        Stmt * q, db_->Prepare("UPDATE jobs SET state = ?, run_at = ?, next_trigger = ?, "
                               "last_delay_ms = ?, lease_expired_streak = ?, lease_token = NULL, "
                               "lease_worker = NULL, lease_expires_at = NULL, "
                               "last_error_class = ?, last_error_code = ?, last_error_message = ?, "
                               "last_error_signature = ?, updated_at = ?, history_len = ? "
                               "WHERE seq = ?"));
    q->Bind(1, Name(result.state)).Bind(2, T(*d.next_run_at));
    q->Bind(3, Name(outcome == Outcome::kLeaseExpired ? Trigger::kRecovery : Trigger::kAuto));
    q->Bind(4, d.delay.count()).Bind(5, streak);
    q->Bind(6, Name(e.error_class)).Bind(7, e.code).Bind(8, e.message).Bind(9, signature);
    RETRACED_RETURN_IF_ERROR(q->Bind(10, T(now)).Bind(11, pos).Bind(12, row.seq).Run());
    ++counters[{row.queue, "retries_scheduled"}];
  } else {
    RETRACED_ASSIGN_OR_RETURN(std::vector<Attempt> history, LoadAttempts(row.id));
    Json evidence = DeadEvidence(history, d);
    RETRACED_ASSIGN_OR_RETURN(
        Stmt * q, db_->Prepare("UPDATE jobs SET state = 'dead', dead_reason = ?, dead_at = ?, "
                               "dead_evidence = ?, lease_expired_streak = ?, lease_token = NULL, "
                               "lease_worker = NULL, lease_expires_at = NULL, "
                               "last_error_class = ?, last_error_code = ?, last_error_message = ?, "
                               "last_error_signature = ?, updated_at = ?, history_len = ? "
                               "WHERE seq = ?"));
    q->Bind(1, Name(*d.dead_reason)).Bind(2, T(now)).Bind(3, DumpJson(evidence));
    q->Bind(4, streak).Bind(5, Name(e.error_class)).Bind(6, e.code);
    q->Bind(7, e.message).Bind(8, signature).Bind(9, T(now));
    RETRACED_RETURN_IF_ERROR(q->Bind(10, pos).Bind(11, row.seq).Run());
    ++counters[{row.queue, "dead_" + std::string(Name(*d.dead_reason))}];
  }
  ++counters[{row.queue, outcome == Outcome::kLeaseExpired ? "lease_expired" : "failed"}];
  Moved(counters, row.queue, "active", Name(result.state));
  return result;
}

Result<std::vector<Attempt>> SqliteStore::LoadAttempts(std::string_view job_id) {
  RETRACED_ASSIGN_OR_RETURN(Stmt * q, db_->Prepare(std::string("SELECT ") + kAttemptColumns +
                                                   " FROM attempts WHERE job_id = ? ORDER BY n"));
  q->Bind(1, job_id);
  std::vector<Attempt> out;
  while (true) {
    RETRACED_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    RETRACED_ASSIGN_OR_RETURN(Attempt a, ReadAttemptRow(*q));
    out.push_back(std::move(a));
  }
  return out;
}

Result<std::vector<Event>> SqliteStore::LoadEvents(std::string_view job_id) {
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * q, db_->Prepare("SELECT at, from_state, to_state, reason, actor, note FROM history "
                             "WHERE job_id = ? ORDER BY pos"));
  q->Bind(1, job_id);
  std::vector<Event> out;
  while (true) {
    RETRACED_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    Event e;
    RETRACED_ASSIGN_OR_RETURN(e.at, ReadTime(q->Text(0), "events.at"));
    for (int col : {1, 2}) {
      if (q->IsNull(col)) continue;
      Result<JobState> s = ParseJobState(q->Text(col));
      if (!s.ok()) return Status::Internal("stored event state: " + s.status().message());
      (col == 1 ? e.from : e.to) = *s;
    }
    e.reason = q->Text(3);
    e.actor = q->Text(4);
    e.note = q->Text(5);
    out.push_back(std::move(e));
  }
  return out;
}

Status SqliteStore::DeleteJob(std::string_view id) {
  for (const char* sql :
       {"DELETE FROM attempts WHERE job_id = ?", "DELETE FROM events WHERE job_id = ?"}) {
    RETRACED_ASSIGN_OR_RETURN(Stmt * q, db_->Prepare(sql));
    RETRACED_RETURN_IF_ERROR(q->Bind(1, id).Run());
  }
  RETRACED_ASSIGN_OR_RETURN(Stmt * job,
                            db_->Prepare("DELETE FROM jobs WHERE id = ? RETURNING queue, state"));
  job->Bind(1, id);
  RETRACED_ASSIGN_OR_RETURN(bool found, job->Step());
  if (!found) return Status::Ok();
  const std::string queue = job->Text(0), state = job->Text(1);
  job->Reset();
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * count,
      db_->Prepare("UPDATE queue_states SET jobs = jobs - 1 WHERE queue = ? AND state = ?"));
  return count->Bind(1, queue).Bind(2, state).Run();
}

}  // namespace retraced::sqlite
