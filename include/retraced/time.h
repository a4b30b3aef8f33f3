// Time in ReTraced: instants are UTC milliseconds since the Unix epoch, durations
// are whole milliseconds. Text forms: instants as RFC 3339 UTC with milliseconds
// ("2026-11-28T12:00:01.513Z"), durations as "200ms", "2s", "1m30s", "1h", "2d".
#ifndef RETRACED_TIME_H_
#define RETRACED_TIME_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "retraced/status.h"

namespace retraced {

using Millis = std::chrono::milliseconds;
using TimePoint = std::chrono::sys_time<Millis>;

inline int64_t ToUnixMillis(TimePoint t) { return t.time_since_epoch().count(); }
inline TimePoint FromUnixMillis(int64_t ms) { return TimePoint(Millis(ms)); }

// The instants that have a text form: years 0001 to 9999, UTC.
inline constexpr TimePoint kMinTime{Millis(-62'135'596'800'000)};  // 0001-01-01T00:00:00.000Z
inline constexpr TimePoint kMaxTime{Millis(253'402'300'799'999)};  // 9999-12-31T23:59:59.999Z

// "2026-11-28T12:00:01.513Z". Always UTC, always three fractional digits;
// instants outside [kMinTime, kMaxTime] are clamped to it.
std::string FormatTime(TimePoint t);

// Only the time of day, "12:00:01.513Z": for reasons and tables where the date is noise.
std::string FormatTimeOfDay(TimePoint t);

// Parses RFC 3339: "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)". The
// fraction is truncated to milliseconds; offsets are converted to UTC.
Result<TimePoint> ParseTime(std::string_view text);

// Canonical text of a duration: the largest units that express it exactly,
// e.g. 0 -> "0ms", 1500 -> "1500ms", 90000 -> "1m30s", 3600000 -> "1h".
// Negative durations get a leading '-'.
std::string FormatDuration(Millis d);

// Parses one or more <integer><unit> groups, units ms, s, m, h, d, largest
// first ("1h30m", "250ms", "2s"). Bare numbers are refused: a unit is required.
Result<Millis> ParseDuration(std::string_view text);

// The source of "now". Injected everywhere time matters so tests can drive it.
// Implementations must be safe to call from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

// Wall-clock time from the operating system.
class SystemClock final : public Clock {
 public:
  TimePoint Now() const override;
};

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start) : now_ms_(ToUnixMillis(start)) {}
  TimePoint Now() const override { return FromUnixMillis(now_ms_.load()); }
  void Set(TimePoint t) { now_ms_.store(ToUnixMillis(t)); }
  void Advance(Millis d) { now_ms_.fetch_add(d.count()); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace retraced

#endif  // RETRACED_TIME_H_
