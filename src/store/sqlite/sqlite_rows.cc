#include "store/sqlite/sqlite_rows.h"

#include "retraced/json.h"

namespace retraced::sqlite {
namespace {

// Collects the first failure while a row is read field by field.
class RowReader {
 public:
  explicit RowReader(const Stmt& row) : row_(row) {}

  TimePoint Time(int col, std::string_view name) {
    if (!status_.ok()) return {};
    Result<TimePoint> t = ReadTime(row_.Text(col), name);
    if (!t.ok()) status_ = t.status();
    return t.ok() ? *t : TimePoint{};
  }
  std::optional<TimePoint> OptTime(int col, std::string_view name) {
    if (row_.IsNull(col)) return std::nullopt;
    return Time(col, name);
  }
  template <typename E, typename F>
  E Enum(int col, F parse, std::string_view name) {
    Result<E> v = parse(row_.Text(col));
    if (!v.ok() && status_.ok()) {
      status_ = Status::Internal("stored " + std::string(name) + ": " + v.status().message());
    }
    return v.ok() ? *v : E{};
  }
  template <typename E, typename F>
  std::optional<E> OptEnum(int col, F parse, std::string_view name) {
    if (row_.IsNull(col)) return std::nullopt;
    return Enum<E>(col, parse, name);
  }
  const Status& status() const { return status_; }

 private:
  const Stmt& row_;
  Status status_;
};

}  // namespace

Result<TimePoint> ReadTime(const std::string& text, std::string_view column) {
  Result<TimePoint> t = ParseTime(text);
  if (!t.ok())
    return Status::Internal("stored " + std::string(column) + ": " + t.status().message());
  return t;
}

Result<JobSummary> ReadJobRow(const Stmt& row, int64_t* seq) {
  RowReader r(row);
  JobSummary s;
  Job& j = s.job;
  if (seq) *seq = row.Int(0);
  j.id = row.Text(1);
  j.queue = row.Text(2);
  j.type = row.Text(3);
  j.state = r.Enum<JobState>(4, ParseJobState, "state");
  j.payload = row.Blob(5);
  Result<RetryPolicy> policy = StoredPolicy(row.Text(6));
  if (!policy.ok())
    return Status::Internal("stored policy of " + j.id + ": " + policy.status().message());
  j.policy = std::move(*policy);
  j.priority = static_cast<int>(row.Int(7));
  j.attempt_count = static_cast<int>(row.Int(8));
  j.created_at = r.Time(9, "created_at");
  s.updated_at = r.Time(10, "updated_at");
  j.run_at = r.Time(11, "run_at");
  j.unique_key = row.OptText(12);
  if (!row.IsNull(13)) j.timeout = Millis(row.Int(13));
  j.deadline_at = r.OptTime(14, "deadline_at");
  if (!row.IsNull(15)) {
    Error e;
    e.error_class = r.Enum<ErrorClass>(15, ParseErrorClass, "last_error_class");
    e.code = row.Text(16);
    e.message = row.Text(17);
    s.last_error = std::move(e);
  }
  if (!row.IsNull(18)) {
    DeadInfo d;
    d.reason = r.Enum<DeadReason>(18, ParseDeadReason, "dead_reason");
    d.at = r.Time(19, "dead_at");
    Result<Json> evidence = ParseJson(row.Text(20));
    if (evidence.ok() && evidence->is_array()) {
      for (const Json& line : *evidence) {
        if (line.is_string()) d.evidence.push_back(line.get<std::string>());
      }
    }
    j.dead = std::move(d);
  }
  if (!row.IsNull(21)) {
    Replay rep;
    rep.by = row.Text(21);
    rep.note = row.Text(22);
    rep.at = r.Time(23, "replay_at");
    Status m = ParseReplayMode(row.Text(24), rep);
    if (!m.ok()) return Status::Internal("stored replay_mode of " + j.id + ": " + m.message());
    j.replay = std::move(rep);
  }
  if (!r.status().ok()) return r.status().WithContext("job " + j.id);
  return s;
}

Result<Attempt> ReadAttemptRow(const Stmt& row) {
  RowReader r(row);
  Attempt a;
  a.n = static_cast<int>(row.Int(0));
  a.trigger = r.Enum<Trigger>(1, ParseTrigger, "trigger");
  a.worker = row.Text(2);
  a.started_at = r.Time(3, "started_at");
  a.ended_at = r.OptTime(4, "ended_at");
  a.outcome = r.OptEnum<Outcome>(5, ParseOutcome, "outcome");
  a.lateness = Millis(row.Int(6));
  if (!row.IsNull(7)) {
    Error e;
    e.error_class = r.Enum<ErrorClass>(7, ParseErrorClass, "error_class");
    e.code = row.Text(8);
    e.message = row.Text(9);
    e.detail = row.Text(10);
    e.code_cut_bytes = static_cast<size_t>(row.Int(11));
    e.message_cut_bytes = static_cast<size_t>(row.Int(12));
    e.detail_cut_bytes = static_cast<size_t>(row.Int(13));
    a.error = std::move(e);
  }
  if (!row.IsNull(14)) {
    Decision d;
    d.action = r.Enum<Action>(14, ParseAction, "action");
    d.reason = row.Text(15);
    d.phase = static_cast<int>(row.OptInt(16).value_or(0));
    d.base_delay = Millis(row.OptInt(17).value_or(0));
    d.jitter = Millis(row.OptInt(18).value_or(0));
    d.delay = Millis(row.OptInt(19).value_or(0));
    d.next_run_at = r.OptTime(20, "next_run_at");
    d.dead_reason = r.OptEnum<DeadReason>(21, ParseDeadReason, "dead_reason");
    a.decision = std::move(d);
  }
  if (!r.status().ok()) return r.status().WithContext("attempt " + std::to_string(a.n));
  return a;
}

}  // namespace retraced::sqlite
