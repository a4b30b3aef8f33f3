// What every backend checks and builds the same way before it touches its
// data: request validation with the same messages, and new jobs with their
// defaults. Internal to the store layer.
#ifndef RETRACED_STORE_STORE_CHECKS_H_
#define RETRACED_STORE_STORE_CHECKS_H_

#include <span>
#include <string_view>
#include <vector>

#include "retraced/id.h"
#include "retraced/store.h"

namespace retraced::internal {

// Most jobs a claim or recovery takes at once.
inline constexpr int kMaxStoreBatch = 1000;

Status CheckActor(std::string_view what, std::string_view actor);
Status CheckOperator(std::string_view by);
Status CheckClaim(const ClaimRequest& req);
Status CheckLeaseLength(Millis lease);
Status CheckRecoverySize(int max);
// A failure's outcome is failed or timed_out; for a batch, every one's.
Status CheckFailure(const FailRequest& req);
Status CheckFailures(std::span<const FailRequest> reqs);
Status CheckReplay(const ReplayRequest& req);
Status CheckPurge(const PurgeRequest& req);

// The jobs `jobs` describe, created at `now`: ids generated where not given,
// the default policy, run_at (now when unset or past) and state. The policy's
// deadline= is left to the backend (deadline_at is the producer's, if any).
// InvalidArgument naming the job's index (in a batch) for a bad one.
Result<std::vector<Job>> BuildNewJobs(std::span<const NewJob> jobs, TimePoint now,
                                      UlidGenerator& ids);

// A policy as stored (canonical text), read leniently: strategies this
// process has not registered are kept as written. Parsed texts are cached, so
// claims and failures of jobs sharing a policy do not parse it again.
Result<RetryPolicy> StoredPolicy(std::string_view text);

}  // namespace retraced::internal

#endif  // RETRACED_STORE_STORE_CHECKS_H_
