// The store: where jobs and their whole history live. One interface in domain
// terms, implemented by every backend (SQLite embedded, Redis distributed);
// no backend type crosses it, and one conformance suite
// (tests/store/conformance_*_test.cc) holds every backend to it.
//
// Every operation is atomic: it happens completely or not at all, and every
// state change it makes appends an event. Reads see one consistent snapshot. Time comes from the
// store's own clock (Now()), so that all workers sharing a store agree about it.
//
// Thread-safety: implementations are safe to call from many threads at once,
// and several processes may share one store.
#ifndef RETRACED_STORE_H_
#define RETRACED_STORE_H_

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "retraced/classify.h"
#include "retraced/job.h"
#include "retraced/status.h"
#include "retraced/time.h"

namespace retraced {

// What a producer gives to enqueue a job.
struct NewJob {
  std::optional<std::string> id;  // unset: the store generates a ULID
  std::string queue;
  std::string type;
  std::string payload;
  std::optional<RetryPolicy> policy;      // unset: DefaultPolicy()
  std::optional<TimePoint> run_at;        // unset or past: ready now
  std::optional<std::string> unique_key;  // at most one live job per (queue, key)
  std::optional<Millis> timeout;
  std::optional<TimePoint> deadline_at;  // unset: from the policy's deadline=
  int priority = 0;
};

struct EnqueueResult {
  std::string id;
  bool created = true;  // false: an existing job was returned instead
  std::string note;     // why not created: "unique key 'k' is held by live job X", ...
};

// A claimed job's lease: the job id and its fencing token. Only the holder of
// the current token may complete, fail or extend the job.
struct Lease {
  std::string job_id;
  int64_t token = 0;
};

struct ClaimRequest {
  std::string queue;
  std::string worker;  // the claiming worker's id, recorded on the attempt
  int max = 1;         // claim up to this many jobs
  Millis lease{30'000};
};

// A job handed to a worker: its fields (without history), the attempt just
// started, and the lease.
struct ClaimedJob {
  Job job;
  Attempt attempt;
  Lease lease;
  TimePoint lease_expires_at;
};

struct Completion {
  Lease lease;
  std::string worker;
};

struct FailRequest {
  Lease lease;
  std::string worker;
  Outcome outcome = Outcome::kFailed;  // kFailed or kTimedOut
  Classified error;                    // see Classify() in retraced/classify.h
};

struct FailResult {
  Decision decision;
  JobState state;  // where the job went: retry_wait, ready, or dead
};

struct RecoveredJob {
  std::string job_id;
  std::string worker;  // the worker whose lease expired
  Decision decision;
  JobState state;
};

// Filters for listing, grouping, replaying. Unset fields match everything.
struct JobFilter {
  std::optional<std::string> queue;
  std::optional<JobState> state;
  std::optional<std::string> type;
  std::optional<std::string> code;          // the latest error's code
  std::optional<ErrorClass> error_class;    // the latest error's class
  std::optional<TimePoint> created_after;   // inclusive
  std::optional<TimePoint> created_before;  // exclusive
  std::vector<std::string> ids;             // only these jobs (empty: any)
  int limit = 50;                           // page size, 1 to 1000
  std::string cursor;                       // from the previous page's next_cursor
};

// One line of a listing: the job without its history, and its latest error.
struct JobSummary {
  Job job;  // attempts and events left empty
  std::optional<Error> last_error;
  TimePoint updated_at;
};

struct JobPage {
  std::vector<JobSummary> jobs;  // newest first
  std::string next_cursor;       // empty on the last page
};

// Dead jobs that failed the same way: same queue, error class, code and
// message signature (the message with numbers and ids blanked out).
struct DeadGroup {
  std::string queue;
  std::optional<ErrorClass> error_class;  // every dead job has an error (poison: LEASE_EXPIRED)
  std::string code;
  std::string signature;
  int64_t count = 0;
  std::string sample_job_id;  // the newest
  std::string sample_message;
  std::map<DeadReason, int64_t> reasons;
  TimePoint first_dead_at;
  TimePoint last_dead_at;
};

struct ReplayRequest {
  // Which jobs: filter.ids names dead or cancelled jobs (and the other fields
  // are then ignored); without ids, the dead jobs matching the filter.
  // filter.state and filter.limit are ignored.
  JobFilter filter;
  std::string by;  // operator, required
  std::string note;
  Replay::Mode mode = Replay::Mode::kFresh;
  int more = 0;  // with kMore: runs allowed, the replayed one included
  bool dry_run = false;
};

struct ReplayResult {
  std::vector<std::string> replayed;  // ids (that would be, with dry_run)
};

struct PurgeRequest {
  std::optional<std::string> queue;
  std::optional<JobState> state;     // must be terminal; unset: every terminal state
  std::optional<Millis> older_than;  // last changed at least this long ago
  std::vector<std::string> ids;
  std::string by;  // operator, required
  std::string note;
  bool dry_run = false;
};

struct PurgeResult {
  int64_t purged = 0;
};

struct QueueStats {
  std::string queue;
  std::map<JobState, int64_t> states;       // jobs stored now, per state
  std::map<std::string, int64_t> counters;  // since the store was created: enqueued,
                                            // attempts, attempts_initial|auto|manual|recovery,
                                            // completed, failed, lease_expired, retries_scheduled,
                                            // dead_<reason>, replayed, cancelled, purged,
                                            // trimmed, stale_refused
};

// Retention: completed and dead jobs are kept until purged unless these say
// otherwise. Every trim is counted ("trimmed") and recorded.
struct Retention {
  std::optional<int64_t> completed_max_count;  // per queue
  std::optional<Millis> completed_max_age;
  std::optional<Millis> dead_max_age;
};

struct StoreOptions {
  const Clock* clock = nullptr;  // unset: the system clock (backends may use their server's)
  int poison_after = 3;          // lease expirations in a row that make a job poison; 0: never
  Retention retention;
  ClassifierConfig lease_expiry_classes;  // how LEASE_EXPIRED is classified (temporary by default)
};

// Wakes an idle worker when jobs may have become ready in its queues through
// a change made elsewhere (another process enqueued or replayed jobs), so new
// jobs start within milliseconds without polling the store hard. Each signal
// has a connection of its own; use it from one thread.
class JobSignal {
 public:
  virtual ~JobSignal() = default;
  // Blocks until such a change or until `timeout` passes. True when woken by
  // a change (which may be spurious: claim to find out). A change made
  // between two calls is reported by the second, not lost.
  virtual Result<bool> Wait(Millis timeout) = 0;
  // Makes a Wait in progress, and every later one, return at once. The only
  // method that may be called from another thread (a worker that is stopping).
  virtual void Interrupt() = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Adds jobs, all or none. A job whose id exists, or whose unique key is held
  // by a live job of its queue, is not added: its result names the existing
  // job and says why. InvalidArgument (naming the job's index) for a bad job.
  virtual Result<std::vector<EnqueueResult>> Enqueue(std::span<const NewJob> jobs,
                                                     std::string_view actor) = 0;

  // Makes the queue's due scheduled and retry_wait jobs ready, then claims up
  // to req.max ready jobs (highest priority, then earliest run_at), starting
  // an attempt on each under a new lease. Empty when none is ready.
  virtual Result<std::vector<ClaimedJob>> Claim(const ClaimRequest& req) = 0;

  // Marks jobs completed. Per item: OK, Conflict for a stale lease (recorded
  // as an event, nothing else changes), NotFound for an unknown job.
  virtual Result<std::vector<Status>> Complete(std::span<const Completion> items) = 0;

  // Ends the lease holder's attempt as failed: applies the job's retry policy
  // and moves it to retry_wait (or ready when the delay is 0) or dead.
  // Conflict for a stale lease (recorded as an event, nothing else changes).
  virtual Result<FailResult> Fail(const FailRequest& req) = 0;

  // Fail for each request, with the same per-item results, but in one go (one
  // transaction, one round trip) where the backend can: how a worker reports
  // the failures of a batch. Each item is atomic on its own. InvalidArgument
  // for the whole call when one request's outcome is not failed or timed_out.
  virtual Result<std::vector<Result<FailResult>>> FailMany(std::span<const FailRequest> reqs);

  // Extends leases by `lease` from now. Per item: OK, or Conflict when the
  // lease is no longer the job's (the worker should stop the job).
  virtual Result<std::vector<Status>> Heartbeat(std::span<const Lease> leases, Millis lease) = 0;

  // Gives leases up before their time, for a worker that is stopping: each
  // attempt ends as lease_expired with code WORKER_STOPPED (which never counts
  // toward poison) and the policy decides; the next run is a recovery. Per
  // item: OK, Conflict for a stale lease (recorded), NotFound.
  virtual Result<std::vector<Status>> Release(std::span<const Lease> leases,
                                              std::string_view worker) = 0;

  // Ends up to `max` attempts whose lease has expired as lease_expired and
  // lets the policy decide (poison after StoreOptions::poison_after in a row).
  // Safe to run from many workers at once: each attempt is recovered once.
  virtual Result<std::vector<RecoveredJob>> RecoverExpired(int max) = 0;

  // The job with its attempts and events. NotFound for an unknown id.
  virtual Result<Job> GetJob(std::string_view id) = 0;

  virtual Result<JobPage> ListJobs(const JobFilter& filter) = 0;

  // Dead jobs matching `filter` (its state is ignored) grouped by error, largest group first.
  virtual Result<std::vector<DeadGroup>> GroupDead(const JobFilter& filter) = 0;

  // Puts dead or cancelled jobs back to ready. Each keeps its id and history;
  // its next attempt has trigger `manual`. When the policy has deadline=, the
  // job's deadline restarts from the replay (in either mode). InvalidArgument without `by`;
  // FailedPrecondition when filter.ids names a job that is not dead or cancelled.
  virtual Result<ReplayResult> ReplayJobs(const ReplayRequest& req) = 0;

  // Cancels a live job (scheduled, ready, retry_wait, or active: its worker's
  // ack will then be refused). FailedPrecondition for a finished job.
  virtual Status Cancel(std::string_view id, std::string_view by, std::string_view note) = 0;

  // Deletes finished jobs (completed, dead, cancelled) with their history,
  // counted and recorded. Live jobs are never purged.
  virtual Result<PurgeResult> Purge(const PurgeRequest& req) = 0;

  // Per queue, sorted by name; only `queue` when given.
  virtual Result<std::vector<QueueStats>> Stats(std::optional<std::string_view> queue) = 0;

  // Trims completed and dead jobs as StoreOptions::retention says. Returns how many.
  virtual Result<int64_t> ApplyRetention() = 0;

  // A signal for changes to `queues` (see JobSignal); nullptr when the
  // backend has none, and then workers poll.
  virtual Result<std::unique_ptr<JobSignal>> WatchQueues(std::span<const std::string> queues);

  // When the queue's next scheduled or retry_wait job falls due; unset when none.
  virtual Result<std::optional<TimePoint>> NextDueAt(std::string_view queue) = 0;

  // The store's clock.
  virtual TimePoint Now() = 0;
};

// Opens the store a URL names:
//   sqlite:PATH, sqlite://PATH   an SQLite file, created when missing
// InvalidArgument for an unknown scheme or a file that cannot be opened.
Result<std::unique_ptr<Store>> OpenStore(std::string_view url, const StoreOptions& options = {});

// The default store URL: sqlite:retraced.db in the working directory.
inline constexpr std::string_view kDefaultStoreUrl = "sqlite:retraced.db";

}  // namespace retraced

#endif  // RETRACED_STORE_H_
