#include "retraced/id.h"

#include <array>

#include "core/rng.h"
#include "retraced/job.h"

namespace retraced {
namespace {

constexpr char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// The characters of names: [A-Za-z0-9_-.:@] (a table: every job of a batch
// has three names or four checked).
constexpr std::array<bool, 256> kNameChars = [] {
  std::array<bool, 256> ok{};
  for (int c = 0; c < 256; ++c) {
    ok[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '-' || c == '.' || c == ':' || c == '@';
  }
  return ok;
}();

}  // namespace

std::string FormatUlid(TimePoint t, uint16_t random_hi, uint64_t random_lo) {
  std::string out(26, '0');
  uint64_t ms = static_cast<uint64_t>(ToUnixMillis(t)) & ((uint64_t{1} << 48) - 1);
  for (int i = 9; i >= 0; --i) {
    out[i] = kCrockford[ms & 31];
    ms >>= 5;
  }
  // 80 random bits, 16 chars of 5 bits each, most significant first.
  unsigned __int128 r = (static_cast<unsigned __int128>(random_hi) << 64) | random_lo;
  for (int i = 25; i >= 10; --i) {
    out[i] = kCrockford[static_cast<unsigned>(r & 31)];
    r >>= 5;
  }
  return out;
}

UlidGenerator::UlidGenerator(const Clock& clock, uint64_t seed) : clock_(clock), state_(seed) {}

std::string UlidGenerator::Next() {
  std::lock_guard lock(mu_);
  int64_t ms = ToUnixMillis(clock_.Now());
  if (ms > last_ms_) {
    last_ms_ = ms;
    hi_ = static_cast<uint16_t>(internal::SplitMix64(state_));
    lo_ = internal::SplitMix64(state_);
  } else {
    // Same (or an earlier) millisecond: keep the time, step the random part.
    if (++lo_ == 0) ++hi_;
  }
  return FormatUlid(FromUnixMillis(last_ms_), hi_, lo_);
}

Status ValidateName(std::string_view what, std::string_view value) {
  if (value.empty()) return Status::InvalidArgument(std::string(what) + " is empty");
  if (value.size() > kMaxNameBytes) {
    return Status::InvalidArgument(std::string(what) + " is " + std::to_string(value.size()) +
                                   " bytes long; the limit is " + std::to_string(kMaxNameBytes));
  }
  for (char c : value) {
    if (!kNameChars[static_cast<unsigned char>(c)]) {
      return Status::InvalidArgument(std::string(what) + " '" + std::string(value) +
                                     "' contains a character outside [A-Za-z0-9_-.:@]");
    }
  }
  return Status::Ok();
}

Status ValidateNewJob(const Job& job) {
  RETRACED_RETURN_IF_ERROR(ValidateName("job id", job.id));
  RETRACED_RETURN_IF_ERROR(ValidateName("queue", job.queue));
  RETRACED_RETURN_IF_ERROR(ValidateName("job type", job.type));
  if (job.unique_key) RETRACED_RETURN_IF_ERROR(ValidateName("unique key", *job.unique_key));
  if (job.payload.size() > kMaxPayloadBytes) {
    return Status::InvalidArgument("payload is " + std::to_string(job.payload.size()) +
                                   " bytes; the limit is " + std::to_string(kMaxPayloadBytes));
  }
  if (job.timeout && (job.timeout->count() <= 0 || *job.timeout > kMaxTimeout)) {
    return Status::InvalidArgument("timeout must be from 1ms to 7d, got " +
                                   FormatDuration(*job.timeout));
  }
  return ValidatePolicy(job.policy);
}

}  // namespace retraced
