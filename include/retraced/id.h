// Job ids. Generated ids are ULIDs: 26 Crockford base32 characters, the first
// 10 the creation time in milliseconds, the rest random, so ids sort by
// creation time and are unique across processes and machines. Producers may
// give their own id instead (see ValidateJobId).
#ifndef RETRACED_ID_H_
#define RETRACED_ID_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "retraced/status.h"
#include "retraced/time.h"

namespace retraced {

// The ULID text for a time and 80 bits of randomness (the low 80 bits of
// hi:lo, hi holding the top 16).
std::string FormatUlid(TimePoint t, uint16_t random_hi, uint64_t random_lo);

// Generates ULIDs. Within one millisecond the random part is incremented, so
// ids from one generator are strictly increasing. Thread-safe.
class UlidGenerator {
 public:
  // `seed` feeds the random part; give each process a different one (the
  // runtime seeds from the operating system's entropy).
  UlidGenerator(const Clock& clock, uint64_t seed);
  UlidGenerator(const UlidGenerator&) = delete;
  UlidGenerator& operator=(const UlidGenerator&) = delete;

  std::string Next();

 private:
  const Clock& clock_;
  std::mutex mu_;
  uint64_t state_;
  int64_t last_ms_ = -1;
  uint16_t hi_ = 0;
  uint64_t lo_ = 0;
};

// Ids, queue names, job types and unique keys are 1 to kMaxNameBytes bytes
// of [A-Za-z0-9] and "_-.:@". InvalidArgument names `what` and the problem.
inline constexpr size_t kMaxNameBytes = 128;
Status ValidateName(std::string_view what, std::string_view value);

}  // namespace retraced

#endif  // RETRACED_ID_H_
