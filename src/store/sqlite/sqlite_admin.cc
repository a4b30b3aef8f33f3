// The SQLite store's operator actions: replay, cancel, purge, retention.
#include <array>
#include <set>

#include "retraced/decide.h"
#include "retraced/json.h"
#include "store/sqlite/sqlite_rows.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store_checks.h"

namespace retraced::sqlite {
namespace {

bool IsLive(std::string_view state) {
  return state == "scheduled" || state == "ready" || state == "active" || state == "retry_wait";
}

}  // namespace

Result<ReplayResult> SqliteStore::ReplayJobs(const ReplayRequest& req) {
  RETRACED_RETURN_IF_ERROR(internal::CheckReplay(req));
  Replay replay;
  replay.by = req.by;
  replay.note = req.note;
  replay.mode = req.mode;
  replay.more = req.more;
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  replay.at = now;
  Txn txn(*db_);
  RETRACED_RETURN_IF_ERROR(txn.Begin());

  // Which jobs: named ones must each exist and be dead or cancelled; a filter
  // takes the dead letter queue's jobs that match.
  struct Target {
    int64_t seq;
    std::string id, queue, state, policy;
    std::optional<std::string> unique_key;
  };
  std::vector<Target> targets;
  std::string sql = "SELECT seq, id, queue, state, policy, unique_key FROM jobs WHERE ";
  std::vector<std::string> args;
  if (!req.filter.ids.empty()) {
    sql += "id = ?";
  } else {
    sql += "state = 'dead'";
    if (req.filter.queue) sql += " AND queue = ?", args.push_back(*req.filter.queue);
    if (req.filter.type) sql += " AND type = ?", args.push_back(*req.filter.type);
    if (req.filter.code) sql += " AND last_error_code = ?", args.push_back(*req.filter.code);
    if (req.filter.error_class) {
      sql += " AND last_error_class = ?",
          args.push_back(std::string(Name(*req.filter.error_class)));
    }
    if (req.filter.created_after)
      sql += " AND created_at >= ?", args.push_back(T(*req.filter.created_after));
    if (req.filter.created_before)
      sql += " AND created_at < ?", args.push_back(T(*req.filter.created_before));
    sql += " ORDER BY seq";
  }
  RETRACED_ASSIGN_OR_RETURN(Stmt * q, db_->Prepare(sql));
  auto read = [&]() -> Status {
    while (true) {
      RETRACED_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) return Status::Ok();
      targets.push_back(
          Target{q->Int(0), q->Text(1), q->Text(2), q->Text(3), q->Text(4), q->OptText(5)});
    }
  };
  if (!req.filter.ids.empty()) {
    std::set<std::string> named;  // an id named twice is replayed once
    for (const std::string& id : req.filter.ids) {
      if (!named.insert(id).second) continue;
      q->Reset();
      q->Bind(1, id);
      size_t before = targets.size();
      RETRACED_RETURN_IF_ERROR(read());
      if (targets.size() == before) return Status::NotFound("no job " + id);
      const std::string& state = targets.back().state;
      if (state != "dead" && state != "cancelled") {
        return Status::FailedPrecondition("job " + id + " is " + state +
                                          "; only dead or cancelled jobs can be replayed");
      }
    }
  } else {
    for (size_t i = 0; i < args.size(); ++i) q->Bind(static_cast<int>(i) + 1, args[i]);
    RETRACED_RETURN_IF_ERROR(read());
  }

  ReplayResult result;
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * holder, db_->Prepare("SELECT id FROM jobs WHERE queue = ? AND unique_key = ? AND "
                                  "state IN ('scheduled', 'ready', 'active', 'retry_wait')"));
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * up,
      db_->Prepare("UPDATE jobs SET state = 'ready', run_at = ?, next_trigger = 'manual', "
                   "seq_start = attempt_count + 1, last_delay_ms = 0, lease_expired_streak = 0, "
                   "replay_budget = ?, replay_by = ?, replay_note = ?, replay_at = ?, "
                   "replay_mode = ?, dead_reason = NULL, dead_at = NULL, dead_evidence = NULL, "
                   "deadline_at = coalesce(?, deadline_at), updated_at = ? WHERE seq = ?"));
  Counters counters;
  for (const Target& t : targets) {
    if (t.unique_key) {
      holder->Reset();
      holder->Bind(1, t.queue).Bind(2, *t.unique_key);
      RETRACED_ASSIGN_OR_RETURN(bool held, holder->Step());
      if (held) {
        std::string other = holder->Text(0);
        holder->Reset();
        return Status::Conflict("job " + t.id + " cannot be replayed: its unique key '" +
                                *t.unique_key + "' is held by live job " + other);
      }
    }
    result.replayed.push_back(t.id);
    if (req.dry_run) continue;
    RETRACED_ASSIGN_OR_RETURN(RetryPolicy policy, StoredPolicy(t.policy));
    std::optional<TimePoint> deadline = DeadlineAt(policy, now);
    up->Reset();
    up->Bind(1, T(now));
    if (req.mode == Replay::Mode::kMore) up->Bind(2, int64_t{req.more});
    up->Bind(3, req.by).Bind(4, req.note).Bind(5, T(now)).Bind(6, ReplayModeText(replay));
    if (deadline) up->Bind(7, T(*deadline));
    RETRACED_RETURN_IF_ERROR(up->Bind(8, T(now)).Bind(9, t.seq).Run());
    RETRACED_ASSIGN_OR_RETURN(JobState from, ParseJobState(t.state));
    std::string note = "mode " + ReplayModeText(replay) + (req.note.empty() ? "" : ": " + req.note);
    RETRACED_RETURN_IF_ERROR(AddEvent(t.id, now, from, JobState::kReady, "replayed", req.by, note));
    ++counters[{t.queue, "replayed"}];
    Moved(counters, t.queue, t.state, "ready");
  }
  if (req.dry_run) return result;  // the transaction rolls back: nothing changed
  RETRACED_RETURN_IF_ERROR(FlushCounters(counters));
  RETRACED_RETURN_IF_ERROR(txn.Commit());
  return result;
}

Status SqliteStore::Cancel(std::string_view id, std::string_view by, std::string_view note) {
  RETRACED_RETURN_IF_ERROR(internal::CheckOperator(by));
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  Txn txn(*db_);
  RETRACED_RETURN_IF_ERROR(txn.Begin());
  RETRACED_ASSIGN_OR_RETURN(std::optional<LeaseRow> row, LoadLeaseRow(id));
  if (!row) return Status::NotFound("no job " + std::string(id));
  if (!IsLive(row->state)) {
    return Status::FailedPrecondition("job " + std::string(id) + " is " + row->state +
                                      "; only scheduled, ready, retry_wait or active jobs can be "
                                      "cancelled");
  }
  std::string line =
      "cancelled by " + std::string(by) + (note.empty() ? "" : ": " + std::string(note));
  if (row->state == "active") {
    // The running attempt ends here; its worker's ack will be refused.
    RETRACED_ASSIGN_OR_RETURN(
        Stmt * a, db_->Prepare("UPDATE attempts SET ended_at = ?, action = 'dead', reason = ?, "
                               "dead_reason = 'cancelled' WHERE job_id = ? AND n = ?"));
    RETRACED_RETURN_IF_ERROR(
        a->Bind(1, T(now))
            .Bind(2, line + " while attempt " + std::to_string(row->attempt_count) + " was running")
            .Bind(3, row->id)
            .Bind(4, row->attempt_count)
            .Run());
  }
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * q, db_->Prepare("UPDATE jobs SET state = 'cancelled', dead_reason = 'cancelled', "
                             "dead_at = ?, dead_evidence = ?, lease_token = NULL, lease_worker = "
                             "NULL, lease_expires_at = NULL, updated_at = ? WHERE seq = ?"));
  RETRACED_RETURN_IF_ERROR(q->Bind(1, T(now))
                               .Bind(2, DumpJson(Json::array({line})))
                               .Bind(3, T(now))
                               .Bind(4, row->seq)
                               .Run());
  RETRACED_ASSIGN_OR_RETURN(JobState from, ParseJobState(row->state));
  RETRACED_RETURN_IF_ERROR(
      AddEvent(row->id, now, from, JobState::kCancelled, "cancelled", by, note));
  Counters counters{{{row->queue, "cancelled"}, 1}};
  Moved(counters, row->queue, row->state, "cancelled");
  RETRACED_RETURN_IF_ERROR(FlushCounters(counters));
  return txn.Commit();
}

Result<PurgeResult> SqliteStore::Purge(const PurgeRequest& req) {
  RETRACED_RETURN_IF_ERROR(internal::CheckPurge(req));
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  Txn txn(*db_);
  RETRACED_RETURN_IF_ERROR(txn.Begin());

  std::string sql = "SELECT id, queue, state FROM jobs WHERE ";
  std::vector<std::string> args;
  std::string rule;
  if (req.state) {
    sql += "state = ?";
    args.push_back(std::string(Name(*req.state)));
    rule = "state=" + args.back();
  } else {
    sql += "state IN ('completed', 'dead', 'cancelled')";
    rule = "state in (completed, dead, cancelled)";
  }
  if (req.queue)
    sql += " AND queue = ?", args.push_back(*req.queue), rule += " queue=" + *req.queue;
  if (req.older_than) {
    sql += " AND updated_at <= ?";
    args.push_back(T(now - *req.older_than));
    rule += " older_than=" + FormatDuration(*req.older_than);
  }
  if (!req.ids.empty()) {
    sql += " AND id IN (";
    for (size_t i = 0; i < req.ids.size(); ++i) sql += i ? ", ?" : "?", args.push_back(req.ids[i]);
    sql += ")";
    rule += " ids=" + std::to_string(req.ids.size());
    // Named jobs must each exist and be finished: a live one is an operator's mistake.
    RETRACED_ASSIGN_OR_RETURN(Stmt * check, db_->Prepare("SELECT state FROM jobs WHERE id = ?"));
    for (const std::string& id : req.ids) {
      check->Reset();
      check->Bind(1, id);
      RETRACED_ASSIGN_OR_RETURN(bool found, check->Step());
      if (!found) return Status::NotFound("no job " + id);
      std::string state = check->Text(0);
      check->Reset();
      if (IsLive(state)) {
        return Status::FailedPrecondition("job " + id + " is " + state +
                                          "; live jobs are never purged");
      }
    }
  }
  RETRACED_ASSIGN_OR_RETURN(Stmt * q, db_->Prepare(sql));
  for (size_t i = 0; i < args.size(); ++i) q->Bind(static_cast<int>(i) + 1, args[i]);
  std::vector<std::array<std::string, 3>> rows;
  while (true) {
    RETRACED_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    rows.push_back({q->Text(0), q->Text(1), q->Text(2)});
  }
  PurgeResult result{static_cast<int64_t>(rows.size())};
  if (req.dry_run) return result;
  std::map<std::pair<std::string, std::string>, int64_t> removed;  // (queue, state) -> count
  for (const auto& [id, queue, state] : rows) {
    RETRACED_RETURN_IF_ERROR(DeleteJob(id));
    ++removed[{queue, state}];
  }
  Counters counters;
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * rec, db_->Prepare("INSERT INTO removals (at, actor, queue, state, count, rule, note) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)"));
  for (const auto& [key, count] : removed) {
    rec->Reset();
    rec->Bind(1, T(now)).Bind(2, req.by).Bind(3, key.first).Bind(4, key.second).Bind(5, count);
    RETRACED_RETURN_IF_ERROR(rec->Bind(6, rule).Bind(7, req.note).Run());
    counters[{key.first, "purged"}] += count;
  }
  RETRACED_RETURN_IF_ERROR(FlushCounters(counters));
  RETRACED_RETURN_IF_ERROR(txn.Commit());
  return result;
}

Result<int64_t> SqliteStore::ApplyRetention() {
  const Retention& r = options_.retention;
  if (!r.completed_max_count && !r.completed_max_age && !r.dead_max_age) return int64_t{0};
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  Txn txn(*db_);
  RETRACED_RETURN_IF_ERROR(txn.Begin());
  // (queue, state, rule) -> ids to remove
  std::map<std::array<std::string, 3>, std::vector<std::string>> doomed;
  auto collect = [&](const std::string& sql, const std::vector<std::string>& args,
                     const std::string& state, const std::string& rule) -> Status {
    RETRACED_ASSIGN_OR_RETURN(Stmt * q, db_->Prepare(sql));
    for (size_t i = 0; i < args.size(); ++i) q->Bind(static_cast<int>(i) + 1, args[i]);
    while (true) {
      RETRACED_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) return Status::Ok();
      doomed[{q->Text(1), state, rule}].push_back(q->Text(0));
    }
  };
  if (r.completed_max_age) {
    RETRACED_RETURN_IF_ERROR(
        collect("SELECT id, queue FROM jobs WHERE state = 'completed' AND updated_at <= ?",
                {T(now - *r.completed_max_age)}, "completed",
                "completed_max_age=" + FormatDuration(*r.completed_max_age)));
  }
  if (r.dead_max_age) {
    RETRACED_RETURN_IF_ERROR(collect(
        "SELECT id, queue FROM jobs WHERE state = 'dead' AND updated_at <= ?",
        {T(now - *r.dead_max_age)}, "dead", "dead_max_age=" + FormatDuration(*r.dead_max_age)));
  }
  if (r.completed_max_count) {
    // Per queue, everything completed past the newest N.
    RETRACED_RETURN_IF_ERROR(collect(
        "SELECT id, queue FROM (SELECT id, queue, row_number() OVER (PARTITION BY queue ORDER BY "
        "seq DESC) AS rank FROM jobs WHERE state = 'completed') WHERE rank > " +
            std::to_string(*r.completed_max_count),
        {}, "completed", "completed_max_count=" + std::to_string(*r.completed_max_count)));
  }
  int64_t total = 0;
  Counters counters;
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * rec, db_->Prepare("INSERT INTO removals (at, actor, queue, state, count, rule, note) "
                               "VALUES (?, 'retention', ?, ?, ?, ?, '')"));
  for (const auto& [key, ids] : doomed) {
    int64_t removed = 0;
    for (const std::string& id : ids) {
      RETRACED_ASSIGN_OR_RETURN(Stmt * exists, db_->Prepare("SELECT 1 FROM jobs WHERE id = ?"));
      exists->Bind(1, id);
      RETRACED_ASSIGN_OR_RETURN(bool still, exists->Step());
      exists->Reset();
      if (!still) continue;  // already removed by an earlier rule
      RETRACED_RETURN_IF_ERROR(DeleteJob(id));
      ++removed;
    }
    if (removed == 0) continue;
    rec->Reset();
    rec->Bind(1, T(now)).Bind(2, key[0]).Bind(3, key[1]).Bind(4, removed).Bind(5, key[2]);
    RETRACED_RETURN_IF_ERROR(rec->Run());
    counters[{key[0], "trimmed"}] += removed;
    total += removed;
  }
  RETRACED_RETURN_IF_ERROR(FlushCounters(counters));
  RETRACED_RETURN_IF_ERROR(txn.Commit());
  return total;
}

}  // namespace retraced::sqlite
