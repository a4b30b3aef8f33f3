// The one place Redis key names are built (docs/redis-schema.md). Every key
// of a queue carries the hash tag {QUEUE}, so a queue lives in one Cluster slot.
#ifndef RETRACED_STORE_REDIS_REDIS_KEYS_H_
#define RETRACED_STORE_REDIS_REDIS_KEYS_H_

#include <string>
#include <string_view>

#include "retraced/vocabulary.h"

namespace retraced::redis {

// The key outside any queue (another slot): the queues there are.
inline constexpr std::string_view kQueuesKey = "rt:queues";

class QueueKeys {
 public:
  explicit QueueKeys(std::string_view queue) : prefix_("rt:{" + std::string(queue) + "}:") {}

  // Scripts build these keys from the prefix: PREFIX jobs, PREFIX specs,
  // PREFIX hist.
  const std::string& prefix() const { return prefix_; }
  // A hash of the queue's jobs: id -> the job's record (text with a
  // MessagePack rest: docs/redis-schema.md), rewritten at each step.
  std::string Jobs() const { return prefix_ + "jobs"; }
  // A hash: id -> the job's unchanging part (a MessagePack map: type, policy,
  // created, payload, timeout), written once.
  std::string Specs() const { return prefix_ + "specs"; }
  // A hash of the queue's histories: ID, then ID#1, ID#2... -> the job's
  // history records written before its first claim, then while its attempt
  // count was 1, 2...; each value oldest first, joined by newlines.
  std::string History() const { return prefix_ + "hist"; }
  // One sorted set per state (docs/redis-schema.md gives each one's score).
  std::string State(JobState s) const { return prefix_ + std::string(Name(s)); }
  std::string Ready() const { return State(JobState::kReady); }
  std::string Scheduled() const { return State(JobState::kScheduled); }
  std::string RetryWait() const { return State(JobState::kRetryWait); }
  std::string Active() const { return State(JobState::kActive); }
  std::string All() const { return prefix_ + "all"; }  // every job, by insertion number
  // The latest insertion number given in the queue (see enqueue.lua).
  std::string Seq() const { return prefix_ + "seq"; }
  std::string Unique() const { return prefix_ + "unique"; }
  std::string Counters() const { return prefix_ + "counters"; }
  // A stream that enqueue and replay append to, so idle workers wake (XREAD BLOCK).
  std::string Signal() const { return prefix_ + "signal"; }

 private:
  std::string prefix_;
};

}  // namespace retraced::redis

#endif  // RETRACED_STORE_REDIS_REDIS_KEYS_H_
