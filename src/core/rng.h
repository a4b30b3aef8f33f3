// The deterministic generator behind jitter and id randomness. Defined here
// bit for bit (SplitMix64 over an FNV-1a seed) rather than with <random>
// distributions, whose results differ between standard libraries: a stored
// decision must be recomputable anywhere.
#ifndef RETRACED_CORE_RNG_H_
#define RETRACED_CORE_RNG_H_

#include <cstdint>
#include <string_view>

namespace retraced::internal {

inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

inline uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ULL;
  }
  return h;
}

// A generator seeded by (job id, attempt number).
class JitterRng {
 public:
  JitterRng(std::string_view job_id, int attempt)
      : state_(Fnv1a64(job_id) ^ (static_cast<uint64_t>(attempt) * 0xD6E8FEB86659FD93ULL)) {}

  // Uniform in [lo, hi] (inclusive); lo when hi <= lo.
  int64_t Between(int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    uint64_t r = SplitMix64(state_);
    return lo + static_cast<int64_t>((static_cast<unsigned __int128>(r) * span) >> 64);
  }

 private:
  uint64_t state_;
};

}  // namespace retraced::internal

#endif  // RETRACED_CORE_RNG_H_
