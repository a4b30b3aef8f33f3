// The retraced binary against a real SQLite file: enqueue, jobs, dlq, stats.
// Failures are driven through the store library on the same file, as a
// worker process would, since running handlers is the worker's job.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "retraced/json.h"
#include "retraced/store.h"
#include "support/subprocess.h"

namespace retraced {
namespace {

using testing::ProcessResult;
using testing::RunProcess;

class CliStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("retraced-cli-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    url_ = "sqlite:" + (dir_ / "jobs.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  ProcessResult Run(std::vector<std::string> args, const std::string& stdin_data = "") {
    args.insert(args.begin(), RETRACED_BIN);
    return RunProcess(args, stdin_data, {{"RETRACED_STORE", url_}});
  }
  std::string Enqueue(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"enqueue", "--queue", "emails", "--type", "send"};
    args.insert(args.end(), extra.begin(), extra.end());
    ProcessResult r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.size(), 27u) << "a ULID and a newline: " << r.out;
    return r.out.substr(0, r.out.size() - 1);
  }
  // Claims the queue's next job and fails it, through the library.
  void FailNext(const std::string& queue, ErrorClass cls, const std::string& code,
                const std::string& message) {
    std::unique_ptr<Store> store = std::move(*OpenStore(url_));
    Result<std::vector<ClaimedJob>> c =
        store->Claim(ClaimRequest{queue, "test-worker", 1, Millis(30'000)});
    ASSERT_TRUE(c.ok() && c->size() == 1);
    FailRequest f;
    f.lease = (*c)[0].lease;
    f.worker = "test-worker";
    f.error = Classify({cls, code, message, "stack"}, {}, (*c)[0].job.policy);
    ASSERT_TRUE(store->Fail(f).ok());
  }
  Json JsonOf(const ProcessResult& r) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    Result<Json> j = ParseJson(r.out);
    EXPECT_TRUE(j.ok()) << r.out;
    return j.ok() ? *j : Json();
  }
  size_t JobCount() { return JsonOf(Run({"jobs", "list", "--json"}))["jobs"].size(); }

  std::filesystem::path dir_;
  std::string url_;
};

TEST_F(CliStoreTest, EnqueuePrintsTheIdAloneAndJsonPrintsTheStoredJob) {
  std::string id = Enqueue({"--payload", R"({ "to": "a@example.com" })", "--policy",
                            "exponential(1s, max=1m, retries=5)", "--unique", "welcome:1",
                            "--timeout", "30s", "--priority", "2"});
  Json j = JsonOf(Run({"jobs", "show", id, "--json"}));
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["queue"], "emails");
  EXPECT_EQ(j["type"], "send");
  EXPECT_EQ(j["state"], "ready");
  EXPECT_EQ(j["payload"], Json({{"to", "a@example.com"}}));
  EXPECT_EQ(j["policy"], "exponential(1s, factor=2, max=1m, retries=5)");
  EXPECT_EQ(j["unique_key"], "welcome:1");
  EXPECT_EQ(j["timeout_ms"], 30000);
  EXPECT_EQ(j["priority"], 2);
  EXPECT_EQ(j["attempt_count"], 0);
  EXPECT_EQ(j["events"][0]["reason"], "enqueued");
  EXPECT_EQ(j["events"][0]["actor"], "cli");

  Json direct =
      JsonOf(Run({"enqueue", "--queue", "q", "--type", "t", "--id", "given-1", "--json"}));
  EXPECT_EQ(direct["id"], "given-1");
  EXPECT_EQ(direct["payload"], Json::object()) << "the default payload is {}";
}

TEST_F(CliStoreTest, PayloadComesFromAFileOrStdinAndRawBytesSurvive) {
  std::ofstream(dir_ / "p.json") << "{\"from\": \"file\"}";
  std::string from_file = Enqueue({"--payload", "@" + (dir_ / "p.json").string()});
  EXPECT_EQ(JsonOf(Run({"jobs", "show", from_file, "--json"}))["payload"]["from"], "file");
  ProcessResult piped =
      Run({"enqueue", "--queue", "emails", "--type", "send", "--payload", "-"}, "[1, 2, 3]");
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  std::string id = piped.out.substr(0, 26);
  EXPECT_EQ(JsonOf(Run({"jobs", "show", id, "--json"}))["payload"], Json({1, 2, 3}));

  std::string bytes;
  for (int b = 0; b < 256; ++b) bytes += static_cast<char>(b);
  ProcessResult raw =
      Run({"enqueue", "--queue", "bin", "--type", "t", "--raw", "--payload", "-"}, bytes);
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  std::unique_ptr<Store> store = std::move(*OpenStore(url_));
  EXPECT_EQ(store->GetJob(raw.out.substr(0, 26))->payload, bytes);
}

TEST_F(CliStoreTest, ScheduledJobsAndUniqueKeys) {
  std::string later = Enqueue({"--delay", "1h"});
  EXPECT_EQ(JsonOf(Run({"jobs", "show", later, "--json"}))["state"], "scheduled");
  std::string at = Enqueue({"--at", "2099-01-01T00:00:00Z"});
  EXPECT_EQ(JsonOf(Run({"jobs", "show", at, "--json"}))["run_at"], "2099-01-01T00:00:00.000Z");

  std::string first = Enqueue({"--unique", "sync:7"});
  ProcessResult dup = Run({"enqueue", "--queue", "emails", "--type", "send", "--unique", "sync:7"});
  EXPECT_EQ(dup.exit_code, 0);
  EXPECT_EQ(dup.out, first + "\n") << "the holder's id, so scripts keep working";
  EXPECT_EQ(dup.err,
            "retraced: not enqueued: unique key 'sync:7' is held by live job " + first + "\n");
}

TEST_F(CliStoreTest, BadInputExitsWithTwoAndOneLineAndStoresNothing) {
  Enqueue();
  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  std::vector<Case> cases = {
      {{"enqueue", "--queue", "emails", "--type", "send", "--payload", "{oops"},
       "retraced: --payload: invalid JSON: parse error at line 1, column 2"},
      {{"enqueue", "--queue", "emails", "--type", "send", "--delay", "soon"},
       "retraced: --delay: invalid duration 'soon'"},
      {{"enqueue", "--queue", "emails", "--type", "send", "--policy", "fixed(1s, retries=-1)"},
       "retraced: --policy: invalid retry policy: column 19"},
      {{"enqueue", "--queue", "bad queue", "--type", "send"},
       "retraced: queue 'bad queue' contains a character outside"},
      {{"enqueue", "--queue", "emails", "--type", "send", "--payload", "@/no/such/file"},
       "retraced: --payload: cannot read file '/no/such/file'"},
      {{"jobs", "show", "no-such-job"}, "retraced: no job no-such-job"},
      {{"jobs", "list", "--state", "waiting"}, "retraced: --state: unknown job state 'waiting'"},
      {{"--store", "postgres://x", "stats"},
       "retraced: unknown store URL scheme 'postgres' in 'postgres://x'; expected sqlite:PATH"},
      {{"stats", "--store", "sqlite:/no/such/dir/jobs.db"},
       "retraced: cannot open sqlite:/no/such/dir/jobs.db"},
      {{"dlq", "replay", "--by", "ops"}, "retraced: name job ids, or --all with filters"},
      {{"dlq", "replay", "x", "--by", "ops", "--mode", "twice"},
       "retraced: --mode: invalid replay mode 'twice'"},
  };
  for (const Case& c : cases) {
    ProcessResult r = Run(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args[0] << " " << c.args.back() << ": " << r.err;
    EXPECT_TRUE(r.err.starts_with(c.err)) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_EQ(JobCount(), 1u) << "nothing was stored by the bad commands";
}

TEST_F(CliStoreTest, ListFiltersAndPages) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Enqueue());
  ASSERT_EQ(Run({"enqueue", "--queue", "other", "--type", "send"}).exit_code, 0);
  Json page = JsonOf(Run({"jobs", "list", "--queue", "emails", "--limit", "2", "--json"}));
  ASSERT_EQ(page["jobs"].size(), 2u);
  EXPECT_EQ(page["jobs"][0]["id"], ids[4]);
  EXPECT_TRUE(page["jobs"][0]["last_error"].is_null());
  EXPECT_FALSE(page["jobs"][0].contains("attempts"));
  std::string cursor = page["next_cursor"];
  Json next = JsonOf(
      Run({"jobs", "list", "--queue", "emails", "--limit", "2", "--cursor", cursor, "--json"}));
  EXPECT_EQ(next["jobs"][0]["id"], ids[2]);
  EXPECT_EQ(JsonOf(Run({"jobs", "list", "--since", "1h", "--json"}))["jobs"].size(), 6u);
  EXPECT_EQ(JsonOf(Run({"jobs", "list", "--until", "1h", "--json"}))["jobs"].size(), 0u);
  EXPECT_EQ(JsonOf(Run({"jobs", "list", "--since", "2000-01-01T00:00:00Z", "--until",
                        "2099-01-01T00:00:00Z", "--json"}))["jobs"]
                .size(),
            6u);
  ProcessResult bad_since = Run({"jobs", "list", "--since", "yesterday"});
  EXPECT_EQ(bad_since.exit_code, 2);
  EXPECT_EQ(
      bad_since.err,
      "retraced: --since: 'yesterday' is neither a time (RFC 3339) nor a duration such as 1h\n");
  ProcessResult table = Run({"jobs", "list", "--queue", "emails", "--limit", "2"});
  EXPECT_NE(table.out.find("more: --cursor " + cursor), std::string::npos) << table.out;
}

TEST_F(CliStoreTest, ShowTellsTheWholeStoryOfADeadJob) {
  std::string id = Enqueue({"--policy", "fixed(2s, retries=0)"});
  FailNext("emails", ErrorClass::kTemporary, "SMTP_TIMEOUT", "smtp timed out after 30s");
  Json j = JsonOf(Run({"dlq", "show", id, "--json"}));
  EXPECT_EQ(j["state"], "dead");
  const Json& a = j["attempts"][0];
  EXPECT_EQ(a["n"], 1);
  EXPECT_EQ(a["trigger"], "initial");
  EXPECT_EQ(a["worker"], "test-worker");
  EXPECT_EQ(a["outcome"], "failed");
  EXPECT_EQ(a["error"]["class"], "temporary");
  EXPECT_EQ(a["error"]["code"], "SMTP_TIMEOUT");
  EXPECT_EQ(a["error"]["message"], "smtp timed out after 30s");
  EXPECT_EQ(a["error"]["detail"], "stack");
  EXPECT_EQ(a["decision"]["action"], "dead");
  EXPECT_EQ(a["decision"]["dead_reason"], "attempts_exhausted");
  EXPECT_EQ(j["dead"]["reason"], "attempts_exhausted");
  EXPECT_EQ(j["events"].size(), 3u);

  ProcessResult text = Run({"dlq", "show", id});
  ASSERT_EQ(text.exit_code, 0);
  for (const char* part : {"#1 initial on test-worker",
                           "failed: temporary error SMTP_TIMEOUT: smtp timed out after 30s",
                           "-> dead: temporary error SMTP_TIMEOUT; all 0 retries used",
                           "why retries stopped: attempts_exhausted", "enqueued", "claimed"}) {
    EXPECT_NE(text.out.find(part), std::string::npos) << part << "\n" << text.out;
  }
}

TEST_F(CliStoreTest, DeadLetterQueueGroupsReplaysAndPurges) {
  std::vector<std::string> smtp;
  for (int i = 0; i < 3; ++i) {
    smtp.push_back(Enqueue({"--policy", "none"}));
    FailNext("emails", ErrorClass::kPermanent, "SMTP_AUTH",
             "535 auth failed for user " + std::to_string(100 + i));
  }
  std::string other = Enqueue({"--policy", "none"});
  FailNext("emails", ErrorClass::kPermanent, "INVALID_EMAIL", "no at sign");

  Json groups = JsonOf(Run({"dlq", "groups", "--json"}));
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0]["code"], "SMTP_AUTH");
  EXPECT_EQ(groups[0]["count"], 3);
  EXPECT_EQ(groups[0]["signature"], "# auth failed for user #");
  EXPECT_EQ(groups[0]["reasons"]["permanent_error"], 3);
  EXPECT_EQ(JsonOf(Run({"dlq", "list", "--code", "SMTP_AUTH", "--json"}))["jobs"].size(), 3u);

  ProcessResult dry = Run({"dlq", "replay", "--all", "--code", "SMTP_AUTH", "--by", "alice",
                           "--note", "fixed creds", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_TRUE(dry.out.starts_with(
      "would replay 3 jobs (mode fresh, by alice) - dry run, nothing changed\n"))
      << dry.out;
  EXPECT_EQ(JsonOf(Run({"jobs", "show", smtp[0], "--json"}))["state"], "dead");

  Json replayed = JsonOf(Run({"dlq", "replay", "--all", "--code", "SMTP_AUTH", "--by", "alice",
                              "--note", "fixed creds", "--mode", "more=2", "--json"}));
  EXPECT_EQ(replayed["replayed"].size(), 3u);
  Json j = JsonOf(Run({"jobs", "show", smtp[1], "--json"}));
  EXPECT_EQ(j["state"], "ready");
  EXPECT_EQ(j["replay"]["by"], "alice");
  EXPECT_EQ(j["replay"]["note"], "fixed creds");
  EXPECT_EQ(j["replay"]["mode"], "more=2");
  EXPECT_EQ(j["events"].back()["reason"], "replayed");
  EXPECT_EQ(j["events"].back()["actor"], "alice");
  EXPECT_EQ(j["attempts"].size(), 1u) << "history kept";

  ProcessResult live = Run({"dlq", "replay", smtp[0], "--by", "alice"});
  EXPECT_EQ(live.exit_code, 2);
  EXPECT_EQ(live.err, "retraced: job " + smtp[0] +
                          " is ready; only dead or cancelled jobs can be replayed\n");

  ProcessResult purge = Run({"dlq", "purge", other, "--by", "bob", "--note", "bad data"});
  ASSERT_EQ(purge.exit_code, 0) << purge.err;
  EXPECT_EQ(purge.out, "purged 1 dead job with their history\n");
  EXPECT_EQ(Run({"jobs", "show", other}).exit_code, 2);

  Json stats = JsonOf(Run({"stats", "--queue", "emails", "--json"}));
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0]["states"]["ready"], 3);
  EXPECT_EQ(stats[0]["states"]["dead"], 0);
  EXPECT_EQ(stats[0]["counters"]["enqueued"], 4);
  EXPECT_EQ(stats[0]["counters"]["dead_permanent_error"], 4);
  EXPECT_EQ(stats[0]["counters"]["replayed"], 3);
  EXPECT_EQ(stats[0]["counters"]["purged"], 1);
}

TEST_F(CliStoreTest, CancelRecordsWhoAndWhy) {
  std::string id = Enqueue();
  ProcessResult r = Run({"jobs", "cancel", id, "--by", "carol", "--note", "duplicate order"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json j = JsonOf(Run({"jobs", "show", id, "--json"}));
  EXPECT_EQ(j["state"], "cancelled");
  EXPECT_EQ(j["dead"]["evidence"][0], "cancelled by carol: duplicate order");
  EXPECT_EQ(Run({"jobs", "cancel", id, "--by", "carol"}).exit_code, 2) << "already finished";
}

TEST_F(CliStoreTest, TheDemoTellsEveryKindOfStoryAndLeavesItStored) {
  auto started = std::chrono::steady_clock::now();
  ProcessResult r = Run({"demo", "--store", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  for (const char* part :
       {"full jitter drew", "phase 1/2 immediate, retry 1 of 2", "phase 2/2 exponential",
        "permanent error CARD_DECLINED: card ending 4242 was declined", "#2 manual",
        "now completed; replayed by demo-operator (more=1): customer updated their card",
        "now dead (attempts_exhausted)", "now dead (deadline_exceeded)",
        "would be past the deadline", "attempts_exhausted=3", "deadline_exceeded=1"}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
  }
  Json stats = JsonOf(Run({"stats", "--json"}));
  int64_t completed = 0, dead = 0, manual = 0;
  for (const Json& q : stats) {
    completed += q["states"]["completed"].get<int64_t>();
    dead += q["states"]["dead"].get<int64_t>();
    manual += q["counters"].value("attempts_manual", int64_t{0});
  }
  EXPECT_EQ(completed, 4);
  EXPECT_EQ(dead, 4);
  EXPECT_EQ(manual, 1);
}

TEST_F(CliStoreTest, TheDefaultStoreIsRetracedDbInTheWorkingDirectory) {
  ProcessResult r = RunProcess({"sh", "-c", "cd \"$0\" && \"$1\" enqueue --queue q --type t && ls",
                                dir_.string(), RETRACED_BIN},
                               "", {{"RETRACED_STORE", ""}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("retraced.db"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace retraced
