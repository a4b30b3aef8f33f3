// The SQLite store's read side: one job with its history, listings, dead-letter
// groups, statistics.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <thread>

#include "store/sqlite/sqlite_rows.h"
#include "store/sqlite/sqlite_store.h"

namespace retraced::sqlite {
namespace {

// A WHERE clause built from a filter, with its bound values in order.
struct Where {
  std::string sql;
  std::vector<std::string> args;

  void Add(std::string clause, std::string arg) {
    sql += sql.empty() ? " WHERE " : " AND ";
    sql += clause;
    args.push_back(std::move(arg));
  }
  void AddRaw(std::string clause) {
    sql += sql.empty() ? " WHERE " : " AND ";
    sql += clause;
  }
  void Bind(Stmt& q, int first = 1) const {
    for (size_t i = 0; i < args.size(); ++i) q.Bind(first + static_cast<int>(i), args[i]);
  }
};

Result<Where> WhereFor(const JobFilter& f, bool with_state) {
  Where w;
  if (f.queue) w.Add("queue = ?", *f.queue);
  if (with_state && f.state) {
    // Written out, not bound, so that the partial index of that state
    // (jobs_ready, jobs_due, jobs_leases, jobs_dead, jobs_cancelled) applies.
    w.AddRaw("state = '" + std::string(Name(*f.state)) + "'");
    if (*f.state == JobState::kScheduled || *f.state == JobState::kRetryWait) {
      w.AddRaw("state IN ('scheduled', 'retry_wait')");
    }
  }
  if (f.type) w.Add("type = ?", *f.type);
  if (f.code) w.Add("last_error_code = ?", *f.code);
  if (f.error_class) w.Add("last_error_class = ?", std::string(Name(*f.error_class)));
  if (f.created_after) w.Add("created_at >= ?", T(*f.created_after));
  if (f.created_before) w.Add("created_at < ?", T(*f.created_before));
  if (!f.ids.empty()) {
    std::string in = "id IN (";
    for (size_t i = 0; i < f.ids.size(); ++i) in += i ? ", ?" : "?";
    w.AddRaw(in + ")");
    for (const std::string& id : f.ids) w.args.push_back(id);
  }
  return w;
}

}  // namespace

Result<Job> SqliteStore::GetJob(std::string_view id) {
  std::lock_guard lock(mu_);
  Txn snapshot(*db_, /*read_only=*/true);
  RETRACED_RETURN_IF_ERROR(snapshot.Begin());
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * q, db_->Prepare(std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = ?"));
  q->Bind(1, id);
  RETRACED_ASSIGN_OR_RETURN(bool found, q->Step());
  if (!found) return Status::NotFound("no job " + std::string(id));
  RETRACED_ASSIGN_OR_RETURN(JobSummary s, ReadJobRow(*q));
  q->Reset();
  RETRACED_ASSIGN_OR_RETURN(s.job.attempts, LoadAttempts(id));
  RETRACED_ASSIGN_OR_RETURN(s.job.events, LoadEvents(id));
  return std::move(s.job);
}

Result<JobPage> SqliteStore::ListJobs(const JobFilter& filter) {
  if (filter.limit < 1 || filter.limit > 1000) {
    return Status::InvalidArgument("limit must be from 1 to 1000, got " +
                                   std::to_string(filter.limit));
  }
  RETRACED_ASSIGN_OR_RETURN(Where w, WhereFor(filter, true));
  if (!filter.cursor.empty()) {
    int64_t after = 0;
    auto [p, ec] =
        std::from_chars(filter.cursor.data(), filter.cursor.data() + filter.cursor.size(), after);
    if (ec != std::errc() || p != filter.cursor.data() + filter.cursor.size()) {
      return Status::InvalidArgument("invalid cursor '" + filter.cursor + "'");
    }
    w.Add("seq < ?", "");
    w.args.back() = filter.cursor;
  }
  // Jobs in a live state are found through that state's partial index and
  // sorted, which costs what that state holds; the planner would otherwise
  // walk every job newest first, finished ones included, to find them.
  std::string indexed;
  if (filter.state && filter.ids.empty()) {
    switch (*filter.state) {
      case JobState::kActive:
        indexed = " INDEXED BY jobs_leases";
        break;
      case JobState::kReady:
        indexed = " INDEXED BY jobs_ready";
        break;
      case JobState::kScheduled:
      case JobState::kRetryWait:
        indexed = " INDEXED BY jobs_due";
        break;
      default:
        break;
    }
  }
  std::lock_guard lock(mu_);
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * q, db_->Prepare(std::string("SELECT ") + kJobColumns + " FROM jobs" + indexed + w.sql +
                             " ORDER BY seq DESC LIMIT ?"));
  w.Bind(*q);
  q->Bind(static_cast<int>(w.args.size()) + 1, int64_t{filter.limit} + 1);
  JobPage page;
  int64_t last_seq = 0;
  while (true) {
    RETRACED_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    if (static_cast<int>(page.jobs.size()) == filter.limit) {
      page.next_cursor = std::to_string(last_seq);
      q->Reset();
      break;
    }
    RETRACED_ASSIGN_OR_RETURN(JobSummary s, ReadJobRow(*q, &last_seq));
    page.jobs.push_back(std::move(s));
  }
  return page;
}

Result<std::vector<DeadGroup>> SqliteStore::GroupDead(const JobFilter& filter) {
  RETRACED_ASSIGN_OR_RETURN(Where w, WhereFor(filter, false));
  w.AddRaw("state = 'dead'");
  std::lock_guard lock(mu_);
  Txn snapshot(*db_, /*read_only=*/true);
  RETRACED_RETURN_IF_ERROR(snapshot.Begin());
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * q, db_->Prepare("SELECT queue, last_error_class, coalesce(last_error_code, ''), "
                             "coalesce(last_error_signature, ''), dead_reason, count(*), max(seq), "
                             "min(dead_at), max(dead_at) FROM jobs" +
                             w.sql + " GROUP BY 1, 2, 3, 4, 5"));
  w.Bind(*q);
  std::vector<DeadGroup> groups;
  std::vector<int64_t> newest;
  while (true) {
    RETRACED_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    std::optional<ErrorClass> cls;
    if (!q->IsNull(1)) {
      RETRACED_ASSIGN_OR_RETURN(cls, ParseErrorClass(q->Text(1)));
    }
    std::string queue = q->Text(0), code = q->Text(2), signature = q->Text(3);
    RETRACED_ASSIGN_OR_RETURN(DeadReason reason, ParseDeadReason(q->Text(4)));
    RETRACED_ASSIGN_OR_RETURN(TimePoint first, ReadTime(q->Text(7), "dead_at"));
    RETRACED_ASSIGN_OR_RETURN(TimePoint last, ReadTime(q->Text(8), "dead_at"));
    // Rows differ by dead reason only: fold them into one group per error.
    size_t i = 0;
    while (i < groups.size() && !(groups[i].queue == queue && groups[i].error_class == cls &&
                                  groups[i].code == code && groups[i].signature == signature)) {
      ++i;
    }
    if (i == groups.size()) {
      groups.push_back(DeadGroup{queue, cls, code, signature, 0, "", "", {}, first, last});
      newest.push_back(0);
    }
    DeadGroup& g = groups[i];
    g.count += q->Int(5);
    g.reasons[reason] += q->Int(5);
    g.first_dead_at = std::min(g.first_dead_at, first);
    g.last_dead_at = std::max(g.last_dead_at, last);
    newest[i] = std::max(newest[i], q->Int(6));
  }
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * sample,
      db_->Prepare("SELECT id, coalesce(last_error_message, '') FROM jobs WHERE seq = ?"));
  for (size_t i = 0; i < groups.size(); ++i) {
    sample->Reset();
    sample->Bind(1, newest[i]);
    RETRACED_ASSIGN_OR_RETURN(bool found, sample->Step());
    if (found) {
      groups[i].sample_job_id = sample->Text(0);
      groups[i].sample_message = sample->Text(1);
    }
    sample->Reset();
  }
  std::stable_sort(groups.begin(), groups.end(), [](const DeadGroup& a, const DeadGroup& b) {
    return a.count != b.count ? a.count > b.count : a.last_dead_at > b.last_dead_at;
  });
  return groups;
}

Result<std::vector<QueueStats>> SqliteStore::Stats(std::optional<std::string_view> queue) {
  std::lock_guard lock(mu_);
  Txn snapshot(*db_, /*read_only=*/true);
  RETRACED_RETURN_IF_ERROR(snapshot.Begin());
  std::map<std::string, QueueStats> by_queue;
  const std::string where = queue ? " WHERE queue = ?" : "";
  // Kept by every change (FlushCounters, DeleteJob): the jobs table is not counted.
  RETRACED_ASSIGN_OR_RETURN(
      Stmt * states, db_->Prepare("SELECT queue, state, jobs FROM queue_states WHERE jobs > 0" +
                                  (queue ? std::string(" AND queue = ?") : std::string())));
  if (queue) states->Bind(1, *queue);
  while (true) {
    RETRACED_ASSIGN_OR_RETURN(bool row, states->Step());
    if (!row) break;
    RETRACED_ASSIGN_OR_RETURN(JobState s, ParseJobState(states->Text(1)));
    QueueStats& qs = by_queue[states->Text(0)];
    qs.states[s] = states->Int(2);
  }
  RETRACED_ASSIGN_OR_RETURN(Stmt * counters,
                            db_->Prepare("SELECT queue, name, value FROM queue_counters" + where));
  if (queue) counters->Bind(1, *queue);
  while (true) {
    RETRACED_ASSIGN_OR_RETURN(bool row, counters->Step());
    if (!row) break;
    by_queue[counters->Text(0)].counters[counters->Text(1)] = counters->Int(2);
  }
  std::vector<QueueStats> out;
  for (auto& [name, qs] : by_queue) {
    qs.queue = name;
    out.push_back(std::move(qs));
  }
  return out;
}

Result<std::optional<TimePoint>> SqliteStore::NextDueAt(std::string_view queue) {
  std::lock_guard lock(mu_);
  RETRACED_ASSIGN_OR_RETURN(Stmt * q,
                            db_->Prepare("SELECT min(run_at) FROM jobs WHERE queue = ? AND "
                                         "state IN ('scheduled', 'retry_wait')"));
  q->Bind(1, queue);
  RETRACED_ASSIGN_OR_RETURN(bool row, q->Step());
  std::optional<TimePoint> due;
  if (row && !q->IsNull(0)) {
    RETRACED_ASSIGN_OR_RETURN(due, ReadTime(q->Text(0), "run_at"));
  }
  q->Reset();
  return due;
}

}  // namespace retraced::sqlite

namespace retraced::sqlite {
namespace {

// PRAGMA data_version changes whenever another connection commits to the
// file: reading it is cheap (no I/O), so the signal polls it every millisecond.
class SqliteSignal final : public JobSignal {
 public:
  explicit SqliteSignal(std::unique_ptr<Db> db) : db_(std::move(db)) {}

  Result<int64_t> Version() {
    RETRACED_ASSIGN_OR_RETURN(Stmt * q, db_->Prepare("PRAGMA data_version"));
    RETRACED_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) return Status::Internal("PRAGMA data_version returned no row");
    int64_t v = q->Int(0);
    q->Reset();
    return v;
  }

  void Interrupt() override { interrupted_ = true; }

  Result<bool> Wait(Millis timeout) override {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (true) {
      RETRACED_ASSIGN_OR_RETURN(int64_t v, Version());
      if (v != last_) {
        last_ = v;
        return true;
      }
      if (interrupted_ || std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  int64_t last_ = 0;

 private:
  std::unique_ptr<Db> db_;
  std::atomic<bool> interrupted_{false};
};

}  // namespace

Result<std::unique_ptr<JobSignal>> SqliteStore::WatchQueues(std::span<const std::string>) {
  RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Db> db, Db::Open(db_->path()));
  auto signal = std::make_unique<SqliteSignal>(std::move(db));
  RETRACED_ASSIGN_OR_RETURN(signal->last_, signal->Version());
  return std::unique_ptr<JobSignal>(std::move(signal));
}

}  // namespace retraced::sqlite
