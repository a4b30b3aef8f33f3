#include "retraced/time.h"

#include <gtest/gtest.h>

namespace retraced {
namespace {

TEST(FormatTime, IsRfc3339UtcWithMilliseconds) {
  EXPECT_EQ(FormatTime(FromUnixMillis(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTime(FromUnixMillis(1'795'867'201'513)), "2026-11-28T12:00:01.513Z");
  EXPECT_EQ(FormatTimeOfDay(FromUnixMillis(1'795'867'201'513)), "12:00:01.513Z");
}

TEST(ParseTime, AcceptsZuluOffsetsAndFractions) {
  EXPECT_EQ(ToUnixMillis(*ParseTime("2026-11-28T12:00:01.513Z")), 1'795'867'201'513);
  EXPECT_EQ(ToUnixMillis(*ParseTime("2026-11-28T12:00:01Z")), 1'795'867'201'000);
  EXPECT_EQ(ToUnixMillis(*ParseTime("2026-11-28T12:00:01.5Z")), 1'795'867'201'500);
  EXPECT_EQ(ToUnixMillis(*ParseTime("2026-11-28T12:00:01.513999Z")), 1'795'867'201'513);
  EXPECT_EQ(ToUnixMillis(*ParseTime("2026-11-28T13:30:01.513+01:30")), 1'795'867'201'513);
  EXPECT_EQ(ToUnixMillis(*ParseTime("2026-11-28T10:00:01.513-02:00")), 1'795'867'201'513);
}

TEST(ParseTime, RoundTripsFormatTime) {
  for (int64_t ms : {int64_t{0}, int64_t{951'782'400'000}, int64_t{1'795'867'201'513},
                     int64_t{4'102'444'799'999}}) {
    EXPECT_EQ(ToUnixMillis(*ParseTime(FormatTime(FromUnixMillis(ms)))), ms);
  }
}

TEST(ParseTime, RefusesMalformedTextWithAReason) {
  struct Case {
    const char* text;
    const char* says;
  };
  for (const Case& c : {Case{"", "date must be YYYY-MM-DD"}, Case{"2026-11-28", "missing 'T'"},
                        Case{"2026-02-30T00:00:00Z", "no such calendar date"},
                        Case{"2026-11-28T25:00:00Z", "out of range"},
                        Case{"2026-11-28T12:00:00", "missing time zone"},
                        Case{"2026-11-28T12:00:00.Z", "empty fraction"},
                        Case{"2026-11-28T12:00:00Zjunk", "unexpected text"},
                        Case{"2026-11-28T12:00:00+0100", "offset must be"}}) {
    Result<TimePoint> r = ParseTime(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().message();
  }
}

TEST(Duration, FormatsWithTheLargestExactUnits) {
  EXPECT_EQ(FormatDuration(Millis(0)), "0ms");
  EXPECT_EQ(FormatDuration(Millis(250)), "250ms");
  EXPECT_EQ(FormatDuration(Millis(1500)), "1500ms");
  EXPECT_EQ(FormatDuration(Millis(2000)), "2s");
  EXPECT_EQ(FormatDuration(Millis(90'000)), "1m30s");
  EXPECT_EQ(FormatDuration(Millis(3'600'000)), "1h");
  EXPECT_EQ(FormatDuration(Millis(90'061'000)), "1d1h1m1s");
  EXPECT_EQ(FormatDuration(Millis(-287)), "-287ms");
}

TEST(Duration, ParsesUnitsLargestFirst) {
  EXPECT_EQ(*ParseDuration("250ms"), Millis(250));
  EXPECT_EQ(*ParseDuration("2s"), Millis(2000));
  EXPECT_EQ(*ParseDuration("1m30s"), Millis(90'000));
  EXPECT_EQ(*ParseDuration("1h"), Millis(3'600'000));
  EXPECT_EQ(*ParseDuration("2d"), Millis(172'800'000));
  EXPECT_EQ(*ParseDuration("0ms"), Millis(0));
  for (int64_t ms : {0, 1, 999, 1000, 1500, 60'000, 3'723'004, 86'400'000}) {
    EXPECT_EQ(*ParseDuration(FormatDuration(Millis(ms))), Millis(ms));
  }
}

TEST(Duration, RefusesBadText) {
  // 200000000000d once overflowed int64 into a negative duration.
  for (const char* bad : {"", "5", "s", "1.5s", "-1s", "3w", "1s1m", "1s 2ms", "99999999999999d",
                          "200000000000d", "36500d1ms", "9223372036854775807ms"}) {
    Result<Millis> r = ParseDuration(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("invalid duration"), std::string::npos);
    }
  }
}

TEST(Duration, FormatsTheExtremes) {
  EXPECT_EQ(FormatDuration(Millis(INT64_MIN)), "-9223372036854775808ms");
  EXPECT_EQ(FormatDuration(Millis(INT64_MAX)), "9223372036854775807ms");
  EXPECT_EQ(*ParseDuration("36500d"), Millis(36500LL * 86'400'000));
}

TEST(ParseTime, RefusesInstantsWhoseYearHasNoTextForm) {
  EXPECT_FALSE(ParseTime("0000-01-01T00:00:00+00:01").ok());
  EXPECT_FALSE(ParseTime("9999-12-31T23:59:59-00:01").ok());
  EXPECT_EQ(*ParseTime("0001-01-01T00:00:00Z"), kMinTime);
  EXPECT_EQ(*ParseTime("9999-12-31T23:59:59.999Z"), kMaxTime);
  EXPECT_EQ(FormatTime(TimePoint::min()), "0001-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTime(TimePoint::max()), "9999-12-31T23:59:59.999Z");
}

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock(FromUnixMillis(1000));
  EXPECT_EQ(ToUnixMillis(clock.Now()), 1000);
  clock.Advance(Millis(250));
  EXPECT_EQ(ToUnixMillis(clock.Now()), 1250);
  clock.Set(FromUnixMillis(5));
  EXPECT_EQ(ToUnixMillis(clock.Now()), 5);
}

}  // namespace
}  // namespace retraced
