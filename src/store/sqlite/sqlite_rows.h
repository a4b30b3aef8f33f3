// Internal to the SQLite store: reading rows into the core's records, and the
// column lists the queries share.
#ifndef RETRACED_STORE_SQLITE_SQLITE_ROWS_H_
#define RETRACED_STORE_SQLITE_SQLITE_ROWS_H_

#include <string>

#include "retraced/store.h"
#include "store/sqlite/sqlite_db.h"
#include "store/store_checks.h"

namespace retraced::sqlite {

// Columns of `jobs` read by ReadJobRow, in order.
inline constexpr const char* kJobColumns =
    "seq, id, queue, type, state, payload, policy, priority, attempt_count, created_at, "
    "updated_at, run_at, unique_key, timeout_ms, deadline_at, last_error_class, last_error_code, "
    "last_error_message, dead_reason, dead_at, dead_evidence, replay_by, replay_note, replay_at, "
    "replay_mode";

// The job (without history) and listing extras from a row of kJobColumns.
// Internal for a row the store cannot have written (a corrupted file).
Result<JobSummary> ReadJobRow(const Stmt& row, int64_t* seq = nullptr);

// Columns of `attempts` read by ReadAttemptRow, in order.
inline constexpr const char* kAttemptColumns =
    "n, trigger, worker, started_at, ended_at, outcome, lateness_ms, error_class, error_code, "
    "error_message, error_detail, error_code_cut_bytes, error_message_cut_bytes, "
    "error_detail_cut_bytes, action, reason, phase, base_delay_ms, jitter_ms, delay_ms, "
    "next_run_at, dead_reason";

Result<Attempt> ReadAttemptRow(const Stmt& row);

// A stored policy. Custom strategies registered by the process that enqueued
// the job need not be registered in this one.
using internal::StoredPolicy;

// Text of an instant as stored.
// One operation writes the same instant many times: the last one's text is kept.
inline std::string T(TimePoint t) {
  thread_local TimePoint last{};
  thread_local std::string text;
  if (t != last || text.empty()) {
    last = t;
    text = FormatTime(t);
  }
  return text;
}
// An instant read back; Internal naming the column when it does not parse.
Result<TimePoint> ReadTime(const std::string& text, std::string_view column);

}  // namespace retraced::sqlite

#endif  // RETRACED_STORE_SQLITE_SQLITE_ROWS_H_
