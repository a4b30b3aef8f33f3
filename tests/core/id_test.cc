#include "retraced/id.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "retraced/job.h"

namespace retraced {
namespace {

TEST(Ulid, EncodesTimeAndRandomnessInCrockfordBase32) {
  EXPECT_EQ(FormatUlid(FromUnixMillis(0), 0, 0), "00000000000000000000000000");
  EXPECT_EQ(FormatUlid(FromUnixMillis((int64_t{1} << 48) - 1), 0xFFFF, ~uint64_t{0}),
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
  // The ULID spec's example time, 1469918176385 ms, encodes as 01ARYZ6S41.
  EXPECT_EQ(FormatUlid(FromUnixMillis(1469918176385), 0, 0).substr(0, 10), "01ARYZ6S41");
}

TEST(UlidGenerator, IdsSortByCreationTimeAndIncreaseWithinAMillisecond) {
  ManualClock clock(FromUnixMillis(1'795'867'201'513));
  UlidGenerator gen(clock, 42);
  std::string a = gen.Next();
  std::string b = gen.Next();  // same millisecond
  clock.Advance(Millis(1));
  std::string c = gen.Next();
  EXPECT_EQ(a.size(), 26u);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(a.substr(0, 10), b.substr(0, 10));
  EXPECT_NE(b.substr(0, 10), c.substr(0, 10));
}

TEST(UlidGenerator, GeneratorsWithDifferentSeedsDoNotCollide) {
  ManualClock clock(FromUnixMillis(1'795'867'201'513));
  UlidGenerator g1(clock, 1), g2(clock, 2);
  std::set<std::string> ids;
  for (int i = 0; i < 10'000; ++i) {
    ids.insert(g1.Next());
    ids.insert(g2.Next());
  }
  EXPECT_EQ(ids.size(), 20'000u);
}

TEST(UlidGenerator, IsSafeFromManyThreads) {
  SystemClock clock;
  UlidGenerator gen(clock, 7);
  std::vector<std::vector<std::string>> per_thread(4);
  std::vector<std::thread> threads;
  for (auto& out : per_thread) {
    threads.emplace_back([&gen, &out] {
      for (int i = 0; i < 5000; ++i) out.push_back(gen.Next());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (auto& out : per_thread) {
    EXPECT_TRUE(std::is_sorted(out.begin(), out.end()));
    all.insert(out.begin(), out.end());
  }
  EXPECT_EQ(all.size(), 20'000u);
}

TEST(ValidateName, AcceptsIdentifiersAndNamesTheProblem) {
  EXPECT_TRUE(ValidateName("queue", "emails").ok());
  EXPECT_TRUE(ValidateName("job id", "order-42:retry@v2.b_c").ok());
  EXPECT_EQ(ValidateName("queue", "").message(), "queue is empty");
  EXPECT_EQ(ValidateName("queue", "has space").message(),
            "queue 'has space' contains a character outside [A-Za-z0-9_-.:@]");
  EXPECT_EQ(ValidateName("job id", std::string(129, 'a')).message(),
            "job id is 129 bytes long; the limit is 128");
}

TEST(ValidateNewJob, ChecksEveryProducerField) {
  Job job;
  job.id = "01J";
  job.queue = "emails";
  job.type = "send";
  job.policy = DefaultPolicy();
  EXPECT_TRUE(ValidateNewJob(job).ok());
  job.unique_key = "bad key";
  EXPECT_FALSE(ValidateNewJob(job).ok());
  job.unique_key.reset();
  job.timeout = Millis(0);
  EXPECT_EQ(ValidateNewJob(job).message(), "timeout must be from 1ms to 7d, got 0ms");
  job.timeout = std::chrono::days(8);
  EXPECT_EQ(ValidateNewJob(job).message(), "timeout must be from 1ms to 7d, got 8d");
  job.timeout.reset();
  job.payload.assign(kMaxPayloadBytes + 1, 'x');
  EXPECT_FALSE(ValidateNewJob(job).ok());
}

}  // namespace
}  // namespace retraced
