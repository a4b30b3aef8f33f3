#include "store/store_fixture.h"

#include <unistd.h>

#include <filesystem>

#include "store/redis/redis_connection.h"
#include "support/redis_server.h"

namespace retraced::testing {
namespace {

std::string TempPath(const std::string& stem) {
  static int counter = 0;
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("retraced-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  return (dir / (stem + "-" + std::to_string(++counter) + ".db")).string();
}

// One redis-server for the whole test process, emptied before each test.
RedisServer* SharedRedis() {
  static std::unique_ptr<RedisServer> server = [] {
    std::unique_ptr<RedisServer> s;
    if (!RedisServer::Available()) return s;
    std::string error;
    s = RedisServer::Start({}, &error);
    if (!s) ADD_FAILURE() << error;
    return s;
  }();
  return server.get();
}

void FlushRedis(const std::string& url) {
  Result<std::unique_ptr<redis::Connection>> c =
      redis::Connection::Open(*redis::ParseRedisUrl(url));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ((*c)->Command({"FLUSHALL"})->str, "OK");
}

}  // namespace

std::vector<Backend> Backends() {
  std::vector<Backend> backends;
  backends.push_back(Backend{"sqlite", [] { return TempPath("conformance"); },
                             [](const std::string& path, const StoreOptions& options) {
                               return OpenStore("sqlite:" + path, options);
                             },
                             [](const std::string& path) {
                               for (const char* suffix : {"", "-wal", "-shm"})
                                 std::filesystem::remove(path + suffix);
                             }});
  backends.push_back(Backend{
      "redis",
      []() -> std::string {
        RedisServer* server = SharedRedis();
        if (server == nullptr) return "";
        FlushRedis(server->Url());
        return server->Url();
      },
      [](const std::string& url, const StoreOptions& options) { return OpenStore(url, options); },
      [](const std::string& url) {
        if (!url.empty()) FlushRedis(url);
      }});
  return backends;
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::ValuesIn(Backends()),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param.name;
                         });

void StoreTest::SetUp() {
  where_ = GetParam().create();
  if (where_.empty()) GTEST_SKIP() << GetParam().name << ": redis-server is not installed";
  Reopen({});
}

void StoreTest::TearDown() {
  store_.reset();
  if (!where_.empty()) GetParam().destroy(where_);
}

void StoreTest::Reopen(StoreOptions options) {
  store_.reset();
  store_ = OpenAnother(options);
}

std::unique_ptr<Store> StoreTest::OpenAnother(StoreOptions options) {
  options.clock = &clock_;
  Result<std::unique_ptr<Store>> s = GetParam().open(where_, options);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

NewJob StoreTest::Job(std::string queue, std::string type) {
  NewJob j;
  j.queue = std::move(queue);
  j.type = std::move(type);
  j.payload = R"({"to":"a@example.com"})";
  j.policy = *ParsePolicy("fixed(2s, retries=2)");
  return j;
}

std::string StoreTest::Add(NewJob job) {
  Result<std::vector<EnqueueResult>> r = store_->Enqueue({&job, 1}, "test");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return "";
  EXPECT_TRUE((*r)[0].created) << (*r)[0].note;
  return (*r)[0].id;
}

std::vector<ClaimedJob> StoreTest::ClaimN(const std::string& queue, int max, std::string worker,
                                          Millis lease) {
  Result<std::vector<ClaimedJob>> r =
      store_->Claim(ClaimRequest{queue, std::move(worker), max, lease});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : std::vector<ClaimedJob>{};
}

ClaimedJob StoreTest::ClaimOne(const std::string& queue, std::string worker, Millis lease) {
  std::vector<ClaimedJob> c = ClaimN(queue, 1, std::move(worker), lease);
  EXPECT_EQ(c.size(), 1u) << "nothing to claim in " << queue;
  return c.empty() ? ClaimedJob{} : std::move(c.front());
}

void StoreTest::CompleteOk(const ClaimedJob& c) {
  Completion done{c.lease, c.attempt.worker};
  Result<std::vector<Status>> r = store_->Complete({&done, 1});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)[0].ok()) << (*r)[0].ToString();
}

FailResult StoreTest::FailWith(const ClaimedJob& c, ErrorClass cls, std::string code,
                               std::string message, Outcome outcome) {
  FailRequest req;
  req.lease = c.lease;
  req.worker = c.attempt.worker;
  req.outcome = outcome;
  req.error = Classify({cls, std::move(code), std::move(message), "trace"}, ClassifierConfig{},
                       c.job.policy);
  Result<FailResult> r = store_->Fail(req);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : FailResult{};
}

retraced::Job StoreTest::Get(const std::string& id) {
  Result<retraced::Job> j = store_->GetJob(id);
  EXPECT_TRUE(j.ok()) << j.status().ToString();
  return j.ok() ? *j : retraced::Job{};
}

QueueStats StoreTest::StatsOf(const std::string& queue) {
  Result<std::vector<QueueStats>> s = store_->Stats(queue);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok() || s->empty()) return QueueStats{};
  return s->front();
}

std::vector<std::string> StoreTest::ListAll(JobFilter f) {
  std::vector<std::string> seen;
  do {
    Result<JobPage> p = store_->ListJobs(f);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    if (!p.ok()) break;
    for (const JobSummary& s : p->jobs) seen.push_back(s.job.id);
    f.cursor = p->next_cursor;
  } while (!f.cursor.empty());
  return seen;
}

std::vector<std::string> EventReasons(const retraced::Job& job) {
  std::vector<std::string> out;
  for (const Event& e : job.events) out.push_back(e.reason);
  return out;
}

}  // namespace retraced::testing
