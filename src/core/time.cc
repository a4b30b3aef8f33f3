#include "retraced/time.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>

namespace retraced {
namespace {

using std::chrono::days;
using std::chrono::floor;
using std::chrono::sys_days;
using std::chrono::year_month_day;

struct Unit {
  std::string_view name;
  int64_t ms;
};
// Largest first: both the formatter and the parser's ordering rule rely on it.
constexpr std::array<Unit, 5> kUnits = {{
    {"d", 86'400'000},
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

// Reads exactly `n` digits at `pos`, advancing it.
bool ReadDigits(std::string_view s, size_t& pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += n;
  out = v;
  return true;
}

bool Expect(std::string_view s, size_t& pos, char c) {
  if (pos < s.size() && (s[pos] == c || (c == 'T' && (s[pos] == 't' || s[pos] == ' ')) ||
                         (c == 'Z' && s[pos] == 'z'))) {
    ++pos;
    return true;
  }
  return false;
}

}  // namespace

std::string FormatTime(TimePoint t) {
  t = std::clamp(t, kMinTime, kMaxTime);
  auto day = floor<days>(t);
  year_month_day ymd{day};
  int64_t ms_of_day = (t - day).count();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<long long>(ms_of_day / 3'600'000),
                static_cast<long long>(ms_of_day / 60'000 % 60),
                static_cast<long long>(ms_of_day / 1000 % 60),
                static_cast<long long>(ms_of_day % 1000));
  return buf;
}

std::string FormatTimeOfDay(TimePoint t) {
  std::string full = FormatTime(t);
  return full.substr(full.find('T') + 1);
}

Result<TimePoint> ParseTime(std::string_view text) {
  auto bad = [&](std::string_view what) {
    return Status::InvalidArgument("invalid time '" + std::string(text) +
                                   "': " + std::string(what) +
                                   " (expected RFC 3339, e.g. 2026-11-28T12:00:00.000Z)");
  };
  size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!ReadDigits(text, pos, 4, year) || !Expect(text, pos, '-') ||
      !ReadDigits(text, pos, 2, month) || !Expect(text, pos, '-') ||
      !ReadDigits(text, pos, 2, day)) {
    return bad("date must be YYYY-MM-DD");
  }
  if (!Expect(text, pos, 'T')) return bad("missing 'T' between date and time");
  if (!ReadDigits(text, pos, 2, hour) || !Expect(text, pos, ':') ||
      !ReadDigits(text, pos, 2, minute) || !Expect(text, pos, ':') ||
      !ReadDigits(text, pos, 2, second)) {
    return bad("time must be HH:MM:SS");
  }
  year_month_day ymd{std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
                     std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return bad("no such calendar date");
  if (hour > 23 || minute > 59 || second > 60) return bad("time of day out of range");
  int64_t millis = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 3) millis = millis * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return bad("empty fraction of a second");
    for (size_t i = digits; i < 3; ++i) millis *= 10;
  }
  int64_t offset_minutes = 0;
  if (Expect(text, pos, 'Z')) {
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int oh = 0, om = 0;
    if (!ReadDigits(text, pos, 2, oh) || !Expect(text, pos, ':') || !ReadDigits(text, pos, 2, om) ||
        oh > 23 || om > 59) {
      return bad("offset must be Z or +HH:MM");
    }
    offset_minutes = sign * (oh * 60 + om);
  } else {
    return bad("missing time zone: end with Z or +HH:MM");
  }
  if (pos != text.size()) return bad("unexpected text after the time");
  TimePoint t = TimePoint(sys_days(ymd)) + Millis(((hour * 60LL + minute) * 60 + second) * 1000) +
                Millis(millis) - Millis(offset_minutes * 60'000);
  if (t < kMinTime || t > kMaxTime) return bad("outside the years 0001 to 9999 in UTC");
  return t;
}

std::string FormatDuration(Millis d) {
  if (d.count() == 0) return "0ms";
  std::string out;
  uint64_t v = static_cast<uint64_t>(d.count());
  if (d.count() < 0) {
    out = "-";
    v = 0 - v;  // magnitude, also for the most negative value
  }
  // Units above ms only when they express the value exactly, so that 1500ms
  // stays "1500ms" rather than "1s500ms".
  if (v % 1000 != 0) return out + std::to_string(v) + "ms";
  for (const Unit& u : kUnits) {
    uint64_t unit = static_cast<uint64_t>(u.ms);
    if (unit == 1) break;
    if (v >= unit) {
      out += std::to_string(v / unit);
      out += u.name;
      v %= unit;
    }
  }
  return out;
}

Result<Millis> ParseDuration(std::string_view text) {
  auto bad = [&](std::string_view what) {
    return Status::InvalidArgument("invalid duration '" + std::string(text) + "': " +
                                   std::string(what) + " (expected e.g. 250ms, 2s, 1m30s, 1h, 2d)");
  };
  if (text.empty()) return bad("empty");
  int64_t total = 0;
  size_t pos = 0;
  size_t last_unit = 0;  // index into kUnits + 1 of the previous group's unit
  while (pos < text.size()) {
    size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start) return bad("expected a number");
    int64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data() + start, text.data() + pos, n);
    if (ec != std::errc() || n > 1'000'000'000'000LL) return bad("number too large");
    size_t ustart = pos;
    while (pos < text.size() && ((text[pos] >= 'a' && text[pos] <= 'z'))) ++pos;
    std::string_view unit = text.substr(ustart, pos - ustart);
    if (unit.empty()) return bad("missing unit after " + std::to_string(n));
    size_t index = 0;
    for (; index < kUnits.size(); ++index) {
      if (kUnits[index].name == unit) break;
    }
    if (index == kUnits.size()) return bad("unknown unit '" + std::string(unit) + "'");
    if (index + 1 <= last_unit) return bad("units must go from largest to smallest");
    last_unit = index + 1;
    constexpr int64_t kLimit = 100LL * 365 * 86'400'000;
    if (n > kLimit / kUnits[index].ms || total + n * kUnits[index].ms > kLimit) {
      return bad("longer than 100 years");
    }
    total += n * kUnits[index].ms;
  }
  return Millis(total);
}

TimePoint SystemClock::Now() const {
  return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
}

}  // namespace retraced
