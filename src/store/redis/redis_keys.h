// The one place Redis key names are built (docs/redis-schema.md). Every key
// of a queue carries the hash tag {QUEUE}, so a queue lives in one Cluster slot.
#ifndef RETRACED_STORE_REDIS_REDIS_KEYS_H_
#define RETRACED_STORE_REDIS_REDIS_KEYS_H_

#include <string>
#include <string_view>

namespace retraced::redis {

class QueueKeys {
 public:
  explicit QueueKeys(std::string_view queue) : prefix_("rt:{" + std::string(queue) + "}:") {}

  // Scripts build a job's keys from this prefix: PREFIX job:ID, PREFIX hist:ID.
  const std::string& prefix() const { return prefix_; }
  std::string Job(std::string_view id) const { return prefix_ + "job:" + std::string(id); }
  std::string History(std::string_view id) const { return prefix_ + "hist:" + std::string(id); }
  std::string Ready() const { return prefix_ + "ready"; }
  std::string Due() const { return prefix_ + "due"; }
  std::string Active() const { return prefix_ + "active"; }
  std::string Unique() const { return prefix_ + "unique"; }
  std::string Seq() const { return prefix_ + "seq"; }
  std::string Counters() const { return prefix_ + "counters"; }

 private:
  std::string prefix_;
};

}  // namespace retraced::redis

#endif  // RETRACED_STORE_REDIS_REDIS_KEYS_H_
