// The SQLite store: the embedded default. One file in WAL mode shared by any
// number of processes on one machine; one transaction per operation (BEGIN
// IMMEDIATE, so writers queue on the file lock rather than deadlock);
// numbered migrations; prepared statements. docs/sqlite-schema.md describes
// the tables.
//
// Thread-safe: calls are serialized on the one connection.
#ifndef RETRACED_STORE_SQLITE_SQLITE_STORE_H_
#define RETRACED_STORE_SQLITE_SQLITE_STORE_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "retraced/id.h"
#include "retraced/store.h"
#include "store/sqlite/sqlite_db.h"

namespace retraced::sqlite {

class SqliteStore final : public Store {
 public:
  // Opens or creates the file and brings its schema up to date.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                   const StoreOptions& options);

  Result<std::vector<EnqueueResult>> Enqueue(std::span<const NewJob> jobs,
                                             std::string_view actor) override;
  Result<std::vector<ClaimedJob>> Claim(const ClaimRequest& req) override;
  Result<std::vector<Status>> Complete(std::span<const Completion> items) override;
  Result<FailResult> Fail(const FailRequest& req) override;
  Result<std::vector<Result<FailResult>>> FailMany(std::span<const FailRequest> reqs) override;
  Result<std::vector<Status>> Heartbeat(std::span<const Lease> leases, Millis lease) override;
  Result<std::vector<Status>> Release(std::span<const Lease> leases,
                                      std::string_view worker) override;
  Result<std::vector<RecoveredJob>> RecoverExpired(int max) override;
  Result<Job> GetJob(std::string_view id) override;
  Result<JobPage> ListJobs(const JobFilter& filter) override;
  Result<std::vector<DeadGroup>> GroupDead(const JobFilter& filter) override;
  Result<ReplayResult> ReplayJobs(const ReplayRequest& req) override;
  Status Cancel(std::string_view id, std::string_view by, std::string_view note) override;
  Result<PurgeResult> Purge(const PurgeRequest& req) override;
  Result<std::vector<QueueStats>> Stats(std::optional<std::string_view> queue) override;
  Result<int64_t> ApplyRetention() override;
  Result<std::optional<TimePoint>> NextDueAt(std::string_view queue) override;
  Result<std::unique_ptr<JobSignal>> WatchQueues(std::span<const std::string> queues) override;
  TimePoint Now() override { return clock_.Now(); }

  // The schema version the file is at.
  Result<int> SchemaVersion();

 private:
  // A live job's row as the lease operations need it.
  struct LeaseRow {
    int64_t seq = 0;
    std::string id, queue, state, policy, lease_worker;
    int64_t lease_token = 0, attempt_count = 0, seq_start = 1, last_delay_ms = 0, streak = 0;
    int64_t history_len = 0;  // entries in the job's history so far
    std::optional<int64_t> replay_budget;
    std::optional<std::string> deadline_at;
  };
  // Counter increments gathered during one operation, written at its end.
  // Names starting with kStateCount are changes to the number of the queue's
  // jobs in a state (table queue_states); the others are queue_counters.
  using Counters = std::map<std::pair<std::string, std::string>, int64_t>;
  static constexpr std::string_view kStateCount = "state:";
  // A job of `queue` moved from one state to another (or, with no `from`, was created).
  static void Moved(Counters& counters, const std::string& queue,
                    std::optional<std::string_view> from, std::string_view to);

  SqliteStore(std::unique_ptr<Db> db, const StoreOptions& options);
  Status Migrate();

  // Appends a stored event at the job's next history position (counted in
  // jobs.history_len). AddEventAt: at a position the caller has counted.
  Status AddEvent(std::string_view job_id, TimePoint at, std::optional<JobState> from,
                  std::optional<JobState> to, std::string_view reason, std::string_view actor,
                  std::string_view note);
  Status AddEventAt(std::string_view job_id, int64_t pos, TimePoint at,
                    std::optional<JobState> from, std::optional<JobState> to,
                    std::string_view reason, std::string_view actor, std::string_view note);
  Status FlushCounters(const Counters& counters);
  Result<std::optional<LeaseRow>> LoadLeaseRow(std::string_view id);
  // Conflict for a lease that is not the job's current one, after recording
  // the refusal; OK when `row` is active under `token`.
  Status CheckLease(const LeaseRow& row, int64_t token, std::string_view worker,
                    std::string_view what, TimePoint now, Counters& counters);
  // Ends the current attempt of an active job as failed, timed out or lease
  // expired, applying the policy's decision.
  // `event` names the event (empty: retry_scheduled or dead, as decided);
  // lease_expired attempts count toward poison unless their code is WORKER_STOPPED.
  Result<FailResult> EndAttempt(const LeaseRow& row, Outcome outcome, const Classified& error,
                                std::string_view actor, std::string_view event, TimePoint now,
                                Counters& counters);
  // For each (lease, worker), in one transaction: loads the job, refuses (and
  // records) a lease that is not its current one, and runs `apply` on it.
  // Per item: OK, Conflict, NotFound; an error from `apply` fails the whole call.
  // `deferred` writes what `apply` leaves for the whole batch: `before` runs
  // before each item is loaded (to write what that item must see), `after`
  // once all are done, both in the transaction.
  using LeaseAction =
      std::function<Status(const LeaseRow&, std::string_view worker, TimePoint, Counters&)>;
  struct DeferredWrites {
    std::function<Status(const Lease& next, TimePoint)> before;
    std::function<Status(TimePoint)> after;
  };
  Result<std::vector<Status>> EachLease(
      const std::vector<std::pair<Lease, std::string_view>>& items, std::string_view what,
      const LeaseAction& apply, const DeferredWrites& deferred = {});
  Result<std::vector<Attempt>> LoadAttempts(std::string_view job_id);
  Result<std::vector<Event>> LoadEvents(std::string_view job_id);
  Status DeleteJob(std::string_view id);

  std::mutex mu_;
  std::unique_ptr<Db> db_;
  StoreOptions options_;
  SystemClock system_clock_;
  const Clock& clock_;
  UlidGenerator ids_;
};

}  // namespace retraced::sqlite

#endif  // RETRACED_STORE_SQLITE_SQLITE_STORE_H_
