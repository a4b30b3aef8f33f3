#include "store/store_checks.h"

#include <mutex>
#include <string>
#include <unordered_map>

namespace retraced::internal {

Status CheckActor(std::string_view what, std::string_view actor) {
  if (actor.empty()) return Status::InvalidArgument(std::string(what) + " is empty");
  if (actor.size() > 256) return Status::InvalidArgument(std::string(what) + " is over 256 bytes");
  return Status::Ok();
}

Status CheckOperator(std::string_view by) {
  if (by.empty()) return Status::InvalidArgument("the operator's name (--by) is required");
  if (by.size() > 256) return Status::InvalidArgument("the operator's name is over 256 bytes");
  return Status::Ok();
}

Status CheckLeaseLength(Millis lease) {
  if (lease.count() <= 0) return Status::InvalidArgument("lease must be positive");
  return Status::Ok();
}

Status CheckClaim(const ClaimRequest& req) {
  RETRACED_RETURN_IF_ERROR(ValidateName("queue", req.queue));
  RETRACED_RETURN_IF_ERROR(CheckActor("worker id", req.worker));
  if (req.max < 1 || req.max > kMaxStoreBatch) {
    return Status::InvalidArgument("claim size must be from 1 to 1000, got " +
                                   std::to_string(req.max));
  }
  return CheckLeaseLength(req.lease);
}

Status CheckRecoverySize(int max) {
  if (max < 1 || max > kMaxStoreBatch) {
    return Status::InvalidArgument("recovery size must be from 1 to 1000");
  }
  return Status::Ok();
}

Status CheckReplay(const ReplayRequest& req) {
  RETRACED_RETURN_IF_ERROR(CheckOperator(req.by));
  if (req.mode == Replay::Mode::kMore && (req.more < 1 || req.more > kMaxPolicyRetries)) {
    return Status::InvalidArgument("more=N needs N from 1 to 10000, got " +
                                   std::to_string(req.more));
  }
  return Status::Ok();
}

Status CheckPurge(const PurgeRequest& req) {
  RETRACED_RETURN_IF_ERROR(CheckOperator(req.by));
  if (req.state && !IsTerminal(*req.state)) {
    return Status::InvalidArgument("only completed, dead or cancelled jobs can be purged, not " +
                                   std::string(Name(*req.state)));
  }
  if (req.older_than && req.older_than->count() < 0) {
    return Status::InvalidArgument("--older-than must not be negative");
  }
  return Status::Ok();
}

Status CheckFailure(const FailRequest& req) {
  if (req.outcome != Outcome::kFailed && req.outcome != Outcome::kTimedOut) {
    return Status::InvalidArgument("a failure's outcome is failed or timed_out, not " +
                                   std::string(Name(req.outcome)));
  }
  return Status::Ok();
}

Status CheckFailures(std::span<const FailRequest> reqs) {
  for (size_t i = 0; i < reqs.size(); ++i) {
    Status s = CheckFailure(reqs[i]);
    if (!s.ok()) return reqs.size() == 1 ? s : s.WithContext("failure " + std::to_string(i));
  }
  return Status::Ok();
}

Result<std::vector<Job>> BuildNewJobs(std::span<const NewJob> jobs, TimePoint now,
                                      UlidGenerator& ids) {
  std::vector<Job> built;
  built.reserve(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    const NewJob& n = jobs[i];
    Job j;
    j.id = n.id ? *n.id : ids.Next();
    j.queue = n.queue;
    j.type = n.type;
    j.payload = n.payload;
    j.policy = n.policy ? *n.policy : DefaultPolicy();
    j.created_at = now;
    j.run_at = n.run_at && *n.run_at > now ? *n.run_at : now;
    j.state = j.run_at > now ? JobState::kScheduled : JobState::kReady;
    j.unique_key = n.unique_key;
    j.timeout = n.timeout;
    j.deadline_at = n.deadline_at;
    j.priority = n.priority;
    Status s = ValidateNewJob(j);
    if (!s.ok()) return jobs.size() == 1 ? s : s.WithContext("job " + std::to_string(i));
    built.push_back(std::move(j));
  }
  return built;
}

Result<RetryPolicy> StoredPolicy(std::string_view text) {
  // Few distinct policies exist in practice; the cache is emptied if it ever
  // holds more than kMax, so a store full of one-off policies costs a parse each.
  constexpr size_t kMax = 4096;
  static std::mutex mu;
  static auto* cache = new std::unordered_map<std::string, RetryPolicy>();
  {
    std::lock_guard lock(mu);
    auto it = cache->find(std::string(text));
    if (it != cache->end()) return it->second;
  }
  ParseOptions lenient;
  lenient.allow_unregistered = true;
  Result<RetryPolicy> parsed = ParsePolicy(text, lenient);
  if (parsed.ok()) {
    std::lock_guard lock(mu);
    if (cache->size() >= kMax) cache->clear();
    cache->emplace(std::string(text), *parsed);
  }
  return parsed;
}

}  // namespace retraced::internal
