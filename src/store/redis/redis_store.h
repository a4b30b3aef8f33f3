// The Redis store: the distributed backend (docs/redis-schema.md). Every state
// change of a queue is one Lua script fenced by the lease token; time is the
// Redis server's unless the store is given a clock.
//
// Thread-safe: each call borrows a connection from a small pool (opening one
// when none is free), so a worker's claims, acks and failures overlap.
#ifndef RETRACED_STORE_REDIS_REDIS_STORE_H_
#define RETRACED_STORE_REDIS_REDIS_STORE_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "retraced/id.h"
#include "retraced/store.h"
#include "store/redis/redis_connection.h"
#include "store/redis/redis_keys.h"

namespace retraced::redis {

class RedisStore final : public Store {
 public:
  static Result<std::unique_ptr<RedisStore>> Open(std::string_view url,
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
  TimePoint Now() override;

  // A connection with the SHAs of the scripts as loaded on it.
  struct PooledConnection {
    std::unique_ptr<Connection> conn;
    std::map<std::string, Script, std::less<>> scripts;
  };

 private:
  // Holds a pooled connection for one operation and makes it the calling
  // thread's current one (Conn()); gives it back when destroyed.
  class Borrow {
   public:
    explicit Borrow(RedisStore& store);
    ~Borrow();
    Borrow(const Borrow&) = delete;
    Borrow& operator=(const Borrow&) = delete;
    const Status& status() const { return status_; }

   private:
    RedisStore& store_;
    PooledConnection* previous_;
    std::unique_ptr<PooledConnection> mine_;
    Status status_ = Status::Ok();
  };
  std::unique_ptr<PooledConnection> NewPooled(std::unique_ptr<Connection> conn);
  Connection& Conn();
  Script& ScriptNamed(std::string_view name);

  // A job's record, as read (DecodeRecord), with its id.
  using Fields = std::map<std::string, std::string>;
  struct Ended {
    Decision decision;
    JobState state;
  };

  RedisStore(std::unique_ptr<Connection> conn, const StoreOptions& options);

  Result<TimePoint> NowLocked();
  // The time to pass scripts: empty for the server's own, else the store's clock.
  std::string NowArg();
  Result<Reply> Run(std::string_view script, const std::vector<std::string>& keys,
                    const std::vector<std::string>& args);
  // After an enqueue whose producer wrote the specs (enqueue.lua, written)
  // failed in its script: deletes the specs of those jobs that have no record.
  void DropSpecsWithoutJobs(const QueueKeys& k, const std::vector<Job>& built,
                            const std::vector<size_t>& indexes);
  Result<std::optional<std::string>> QueueOf(std::string_view id);
  Result<std::map<std::string, std::string>> QueuesOf(const std::vector<std::string>& ids);
  // The queue of each of `ids`, in order ("" for no job), answered from the
  // jobs this store claimed where it can (one lock for all), the rest by
  // QueuesOf.
  Result<std::vector<std::string>> ClaimedQueuesOf(std::span<const std::string_view> ids);
  // What a claim remembers of each job it took. `record`: the job's record
  // as the claim wrote it (packed), and its policy: what a failure's decision
  // needs, unchanged while the lease is held (every step that changes it
  // moves the job out of active or raises n; end_attempt.lua tells a job
  // removed and claimed again under its id apart by its attempt's start).
  struct Held {
    std::string queue;
    std::string record, policy;
  };
  void RememberClaimed(std::vector<std::pair<std::string, Held>> jobs);
  void ForgetClaimed(std::span<const std::string_view> ids);
  void ForgetClaimed(std::string_view id) { ForgetClaimed(std::span(&id, 1)); }
  // The record remembered at claim, if this store claimed the job under
  // `token`; the job is forgotten.
  std::optional<Fields> TakeClaimedRecord(const std::string& id, int64_t token);
  Result<std::vector<std::string>> Queues();
  // Just `queue` when given, else every queue there is.
  Result<std::vector<std::string>> QueuesOrAll(const std::optional<std::string>& queue);
  Result<std::optional<Fields>> LoadFields(const QueueKeys& k, std::string_view id);
  Result<JobSummary> ToSummary(const std::string& queue, const Fields& f);
  Result<Job> LoadJob(const std::string& queue, std::string_view id);
  // `records`: a job's history value, records joined by newlines.
  static Status ParseHistory(std::string_view records, Job& job);
  // The event an attempt's start stands for (ready -> active, by its worker).
  static Event ClaimedEvent(const Attempt& a);
  // Ends the attempt `token` of job `id` as the policy decides; nullopt when
  // the lease is not the job's (recorded as a refusal when `record_refusal`).
  // `loaded` is the job's record when the caller has just read it, else null.
  // An end_attempt.lua call, prepared: the policy's decision made from the
  // job's record `f` (nullopt: no such job) at `now`.
  struct EndPlan {
    std::string id, what;
    int64_t token = 0;
    std::vector<std::string> keys, args;
    std::optional<Ended> ended;  // where the job goes if the call applies; unset: a refusal
  };
  Result<EndPlan> PlanEnd(const std::string& queue, const std::string& id, int64_t token,
                          Outcome outcome, const Classified& error, std::string_view actor,
                          std::string_view event, std::string_view what, bool record_refusal,
                          TimePoint now, const std::optional<Fields>& f);
  // What the call's reply says: the end, nullopt for a refusal (`refusal` says
  // why), NotFound, or Internal for a script error.
  Result<std::optional<Ended>> Applied(const EndPlan& plan, const Reply& r, std::string* refusal);
  Result<std::optional<Ended>> EndWithDecision(const std::string& queue, const std::string& id,
                                               int64_t token, Outcome outcome,
                                               const Classified& error, std::string_view actor,
                                               std::string_view event, std::string_view what,
                                               bool record_refusal, std::string* refusal,
                                               const Fields* loaded = nullptr);
  Result<int64_t> Remove(const std::string& queue, const std::vector<std::string>& ids,
                         std::string_view counter);

  RedisAddress address_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<PooledConnection>> idle_;
  StoreOptions options_;
  SystemClock system_clock_;
  // The latest insertion number this store's enqueues were given: the next
  // enqueue's least (see enqueue.lua), so its jobs list in the order given.
  std::atomic<int64_t> last_seq_{0};
  UlidGenerator ids_;
  std::mutex given_ids_mu_;  // enqueues with producers' own ids, one at a time
  std::mutex cache_mu_;
  // Looked up by string_view: the ids come from leases, not copied per job.
  struct IdHash {
    using is_transparent = void;
    size_t operator()(std::string_view id) const { return std::hash<std::string_view>{}(id); }
  };
  // id -> what this store claimed, while held
  std::unordered_map<std::string, Held, IdHash, std::equal_to<>> claimed_;
};

}  // namespace retraced::redis

#endif  // RETRACED_STORE_REDIS_REDIS_STORE_H_
