// SQLite-specific behaviour: the file, its schema and migrations, and several
// processes sharing it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "store/embedded.h"
#include "store/sqlite/sqlite_store.h"
#include "support/subprocess.h"

namespace retraced {
namespace {

class SqliteFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("retraced-sqlite-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "jobs.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(SqliteFileTest, ANewFileGetsTheSchemaOnceAndWalMode) {
  {
    Result<std::unique_ptr<sqlite::SqliteStore>> s = sqlite::SqliteStore::Open(path_, {});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(*(*s)->SchemaVersion(), 3);
  }
  // Reopening applies nothing twice.
  Result<std::unique_ptr<sqlite::SqliteStore>> again = sqlite::SqliteStore::Open(path_, {});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*(*again)->SchemaVersion(), 3);
  testing::ProcessResult mode = testing::RunProcess(
      {"sqlite3", path_, "PRAGMA journal_mode; SELECT count(*) FROM schema_version;"});
  ASSERT_EQ(mode.exit_code, 0) << mode.err;
  EXPECT_EQ(mode.out, "wal\n3\n");
}

TEST_F(SqliteFileTest, TheWriteAheadLogStaysBoundedUnderSteadyWrites) {
  // The log must be copied back into the database and reused, not grow with
  // every commit (whoever runs the checkpoints).
  constexpr int kBatches = 120, kPerBatch = 100;  // about 50 MB written in 120 commits
  {
    Result<std::unique_ptr<sqlite::SqliteStore>> s = sqlite::SqliteStore::Open(path_, {});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    for (int b = 0; b < kBatches; ++b) {
      std::vector<NewJob> batch(kPerBatch);
      for (NewJob& j : batch) {
        j.queue = "q";
        j.type = "big";
        j.payload = std::string(4000, static_cast<char>('a' + b % 26));
      }
      ASSERT_TRUE((*s)->Enqueue(batch, "test").ok());
    }
    const auto wal = std::filesystem::file_size(path_ + "-wal");
    EXPECT_LT(wal, uintmax_t{30} << 20) << "the log grew to " << wal << " bytes";
  }
  testing::ProcessResult count =
      testing::RunProcess({"sqlite3", path_, "PRAGMA integrity_check; SELECT count(*) FROM jobs;"});
  ASSERT_EQ(count.exit_code, 0) << count.err;
  EXPECT_EQ(count.out, "ok\n" + std::to_string(kBatches * kPerBatch) + "\n");
}

TEST_F(SqliteFileTest, AVersionOneFileKeepsItsHistoryAndCountsThroughTheMigrations) {
  // A file as the first schema left it: every event a row, ordered by rowid,
  // two jobs' events interleaved. Job "done" has finished; job "running" is
  // in the middle of its first attempt.
  std::string sql(SqliteMigrationFiles().at(0).text);
  sql += R"(
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
INSERT INTO schema_version VALUES (1, '0001_initial.sql', '2026-11-01T00:00:00.000Z');
INSERT INTO jobs (id, queue, type, state, payload, policy, attempt_count, created_at, updated_at,
                  run_at, lease_token, lease_worker, lease_expires_at) VALUES
  ('done', 'q', 't', 'completed', '{}', 'none', 1, '2026-11-01T00:00:00.000Z',
   '2026-11-01T00:00:02.000Z', '2026-11-01T00:00:00.000Z', NULL, NULL, NULL),
  ('running', 'q', 't', 'active', '{}', 'none', 1, '2026-11-01T00:00:00.000Z',
   '2026-11-01T00:00:01.000Z', '2026-11-01T00:00:00.000Z', 1, 'w1', '2999-01-01T00:00:00.000Z');
INSERT INTO attempts (job_id, n, trigger, worker, started_at, ended_at, outcome, lateness_ms,
                      action, reason) VALUES
  ('done', 1, 'initial', 'w1', '2026-11-01T00:00:01.000Z', '2026-11-01T00:00:02.000Z',
   'succeeded', 0, 'none', 'succeeded'),
  ('running', 1, 'initial', 'w1', '2026-11-01T00:00:01.000Z', NULL, NULL, 0, NULL, NULL);
INSERT INTO events (job_id, at, from_state, to_state, reason, actor, note) VALUES
  ('done', '2026-11-01T00:00:00.000Z', NULL, 'ready', 'enqueued', 'app', ''),
  ('running', '2026-11-01T00:00:00.000Z', NULL, 'ready', 'enqueued', 'app', ''),
  ('done', '2026-11-01T00:00:01.000Z', 'ready', 'active', 'claimed', 'w1', 'attempt 1 (initial)'),
  ('running', '2026-11-01T00:00:01.000Z', 'ready', 'active', 'claimed', 'w1', 'attempt 1 (initial)'),
  ('done', '2026-11-01T00:00:02.000Z', 'active', 'completed', 'succeeded', 'w1', '');
)";
  testing::ProcessResult made = testing::RunProcess({"sqlite3", path_}, sql);
  ASSERT_EQ(made.exit_code, 0) << made.err;

  Result<std::unique_ptr<sqlite::SqliteStore>> s = sqlite::SqliteStore::Open(path_, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*(*s)->SchemaVersion(), 3);
  auto states = [&]() {
    Result<std::vector<QueueStats>> stats = (*s)->Stats("q");
    EXPECT_TRUE(stats.ok() && stats->size() == 1);
    return stats.ok() && stats->size() == 1 ? stats->at(0).states : std::map<JobState, int64_t>{};
  };
  EXPECT_EQ(states(),
            (std::map<JobState, int64_t>{{JobState::kActive, 1}, {JobState::kCompleted, 1}}));
  auto reasons = [&](const std::string& id) {
    std::vector<std::string> out;
    Result<Job> j = (*s)->GetJob(id);
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    if (j.ok()) {
      for (const Event& e : j->events) out.push_back(e.reason + "@" + FormatTime(e.at));
    }
    return out;
  };
  EXPECT_EQ(reasons("done"), (std::vector<std::string>{"enqueued@2026-11-01T00:00:00.000Z",
                                                       "claimed@2026-11-01T00:00:01.000Z",
                                                       "succeeded@2026-11-01T00:00:02.000Z"}));
  // The attempt that began before the migration ends after it, in order,
  // and a stale ack afterwards is recorded after that.
  Completion done{Lease{"running", 1}, "w1"};
  ASSERT_TRUE((*s)->Complete({&done, 1}).ok());
  EXPECT_EQ(states(), (std::map<JobState, int64_t>{{JobState::kCompleted, 2}}));
  std::vector<std::string> running = reasons("running");
  ASSERT_EQ(running.size(), 3u);
  EXPECT_EQ(running[2].substr(0, running[2].find('@')), "succeeded");
  std::vector<Status> again = *(*s)->Complete({&done, 1});
  EXPECT_EQ(again[0].code(), StatusCode::kConflict);
  running = reasons("running");
  ASSERT_EQ(running.size(), 4u);
  EXPECT_EQ(running[3].substr(0, running[3].find('@')), "stale_lease_refused");
  // The shell reads the same timeline from the view `history`.
  testing::ProcessResult shell = testing::RunProcess(
      {"sqlite3", path_,
       "SELECT group_concat(reason, ',') FROM (SELECT reason FROM history WHERE job_id = "
       "'running' ORDER BY pos);"});
  ASSERT_EQ(shell.exit_code, 0) << shell.err;
  EXPECT_EQ(shell.out, "enqueued,claimed,succeeded,stale_lease_refused\n");
}

TEST_F(SqliteFileTest, AFileThatIsNotADatabaseIsRefusedAndLeftAlone) {
  { std::ofstream(path_) << "these are my notes, not a database\n"; }
  Result<std::unique_ptr<Store>> s = OpenStore("sqlite:" + path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(s.status().message().starts_with("cannot open sqlite:" + path_))
      << s.status().message();
  std::ifstream in(path_);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "these are my notes, not a database\n");
}

TEST_F(SqliteFileTest, StoreUrlsNameTheFile) {
  EXPECT_TRUE(OpenStore("sqlite://" + path_).ok());
  EXPECT_TRUE(std::filesystem::exists(path_));
  EXPECT_EQ(OpenStore("sqlite:").status().message(),
            "store URL 'sqlite:' names no file; expected sqlite:PATH");
  EXPECT_EQ(OpenStore("mysql://db").status().message(),
            "unknown store URL scheme 'mysql' in 'mysql://db'; expected sqlite:PATH, "
            "redis://HOST:PORT/DB or redis+unix:///PATH");
}

TEST_F(SqliteFileTest, HistoryIsQueryableWithTheSqliteShell) {
  std::unique_ptr<Store> store = std::move(*OpenStore("sqlite:" + path_));
  NewJob n;
  n.queue = "emails";
  n.type = "send";
  n.policy = *ParsePolicy("fixed(1s, retries=1)");
  std::string id = (*store->Enqueue({&n, 1}, "test"))[0].id;
  std::vector<ClaimedJob> c = *store->Claim(ClaimRequest{"emails", "w1", 1, Millis(10'000)});
  FailRequest f;
  f.lease = c[0].lease;
  f.worker = "w1";
  f.error =
      Classify({ErrorClass::kTemporary, "TIMEOUT", "took too long", ""}, {}, n.policy.value());
  ASSERT_TRUE(store->Fail(f).ok());
  testing::ProcessResult r = testing::RunProcess(
      {"sqlite3", path_,
       "SELECT job_id, n, trigger, outcome, error_code, action, delay_ms FROM attempts "
       "WHERE error_code = 'TIMEOUT' AND started_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 "
       "hour');"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, id + "|1|initial|failed|TIMEOUT|retry|1000\n");
}

TEST_F(SqliteFileTest, SeveralProcessesShareOneFileAndNoJobRunsTwice) {
  const std::string url = "sqlite:" + path_;
  constexpr int kJobs = 2000;
  {
    std::unique_ptr<Store> store = std::move(*OpenStore(url));
    std::vector<NewJob> batch(kJobs);
    for (NewJob& j : batch) {
      j.queue = "shared";
      j.type = "noop";
    }
    ASSERT_TRUE(store->Enqueue(batch, "test").ok());
  }
  constexpr int kProcesses = 4;
  const std::string go = (dir_ / "go").string();
  std::vector<std::unique_ptr<testing::ChildProcess>> children;
  for (int p = 0; p < kProcesses; ++p) {
    children.push_back(testing::ChildProcess::Start(
        {STORE_CLAIMER_BIN, url, "shared", "proc-" + std::to_string(p), "10", go}));
  }
  for (auto& c : children) ASSERT_TRUE(c->WaitForOutput("READY", 60)) << "a claimer did not start";
  { std::ofstream(go) << "go"; }
  std::multiset<std::string> claimed;
  int busy_processes = 0;
  for (auto& c : children) {
    testing::ProcessResult r = c->Wait();
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::istringstream lines(r.out);
    int mine = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("CLAIMED ", 0) != 0) continue;
      claimed.insert(line.substr(8));
      ++mine;
    }
    busy_processes += mine > 0;
  }
  EXPECT_EQ(claimed.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()).size(),
            static_cast<size_t>(kJobs))
      << "a job was claimed by two processes";
  // How the work was shared depends on scheduling; record it, do not assert it.
  RecordProperty("processes_that_claimed", busy_processes);
  std::unique_ptr<Store> store = std::move(*OpenStore(url));
  EXPECT_EQ((*store->Stats("shared"))[0].states[JobState::kCompleted], kJobs);
}

}  // namespace
}  // namespace retraced
