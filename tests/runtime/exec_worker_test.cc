// Exec handlers through the real `retraced worker`: exit codes, the JSON line,
// stderr as detail, payload bytes on stdin, the environment, no shell, and
// the end-to-end path enqueue -> worker --drain -> jobs show --json.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "retraced/json.h"
#include "retraced/store.h"
#include "support/subprocess.h"

namespace retraced {
namespace {

using testing::ProcessResult;
using testing::RunProcess;

class ExecWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("retraced-exec-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    url_ = "sqlite:" + (dir_ / "jobs.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  ProcessResult Cli(std::vector<std::string> args, const std::string& stdin_data = "") {
    args.insert(args.begin(), RETRACED_BIN);
    return RunProcess(args, stdin_data, {{"RETRACED_STORE", url_}, {"OUT_DIR", dir_.string()}});
  }
  // Enqueues a job of `type` (policy none unless `extra` gives one).
  std::string Enqueue(const std::string& type, std::vector<std::string> extra = {},
                      const std::string& stdin_data = "") {
    std::vector<std::string> args = {"enqueue", "--queue", "exec", "--type", type};
    if (std::find(extra.begin(), extra.end(), "--policy") == extra.end()) {
      extra.insert(extra.end(), {"--policy", "none"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    ProcessResult r = Cli(args, stdin_data);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, 26);
  }
  ProcessResult Work(std::string exec = EXEC_HANDLER_SCRIPT) {
    ProcessResult r = Cli({"worker", "--queue", "exec", "--exec", exec, "--drain"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r;
  }
  Job Get(const std::string& id) { return *(*OpenStore(url_))->GetJob(id); }
  std::string Read(const std::string& name) {
    std::ifstream in(dir_ / name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::filesystem::path dir_;
  std::string url_;
};

TEST_F(ExecWorkerTest, ExitStatusesAreClassified) {
  std::string ok = Enqueue("ok");
  std::string temp = Enqueue("tempfail");
  std::string data = Enqueue("dataerr");
  std::string one = Enqueue("exit1");
  std::string segv = Enqueue("segv");
  Work();
  EXPECT_EQ(Get(ok).state, JobState::kCompleted);

  Error t = *Get(temp).attempts[0].error;
  EXPECT_EQ(t.error_class, ErrorClass::kTemporary);
  EXPECT_EQ(t.code, "EX_TEMPFAIL");
  EXPECT_EQ(t.message, "exited with status 75 (EX_TEMPFAIL)");
  EXPECT_EQ(t.detail, "smtp server busy\n");

  Job d = Get(data);
  EXPECT_EQ(d.attempts[0].error->error_class, ErrorClass::kPermanent);
  EXPECT_EQ(d.attempts[0].error->code, "EX_DATAERR");
  EXPECT_EQ(d.dead->reason, DeadReason::kPermanentError);

  Error e1 = *Get(one).attempts[0].error;
  EXPECT_EQ(e1.error_class, ErrorClass::kTemporary) << "unclassified: the default";
  EXPECT_EQ(e1.code, "EXIT_1");

  Error s = *Get(segv).attempts[0].error;
  EXPECT_EQ(s.code, "SIGSEGV");
  EXPECT_EQ(s.message, "killed by signal 11 (SIGSEGV)");
}

TEST_F(ExecWorkerTest, AJsonLastLineGivesClassCodeAndMessage) {
  std::string id = Enqueue("json", {"--policy", "fixed(1s, retries=5)"});
  Work();
  Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kDead) << "permanent despite retries left";
  Error e = *j.attempts[0].error;
  EXPECT_EQ(e.error_class, ErrorClass::kPermanent);
  EXPECT_EQ(e.code, "INVALID_EMAIL");
  EXPECT_EQ(e.message, "no such mailbox");
}

TEST_F(ExecWorkerTest, TheTailOfStderrIsKeptAsDetail) {
  std::string id = Enqueue("noisy");
  Work();
  Error e = *Get(id).attempts[0].error;
  EXPECT_EQ(e.detail.size(), Error::kMaxDetailBytes);
  EXPECT_TRUE(e.detail.ends_with("THE LAST LINE\n")) << e.detail.substr(e.detail.size() - 50);
  EXPECT_GT(e.detail_cut_bytes, 0u);
}

TEST_F(ExecWorkerTest, APayloadWithEveryByteValueReachesStdinUnchanged) {
  std::string bytes;
  for (int round = 0; round < 300; ++round) {  // larger than a pipe buffer
    for (int b = 0; b < 256; ++b) bytes += static_cast<char>(b);
  }
  ProcessResult r =
      Cli({"enqueue", "--queue", "exec", "--type", "copy", "--raw", "--payload", "-"}, bytes);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = r.out.substr(0, 26);
  Work();
  EXPECT_EQ(Get(id).state, JobState::kCompleted);
  std::string copied = Read(id + ".payload");
  EXPECT_EQ(copied.size(), bytes.size());
  EXPECT_TRUE(copied == bytes);
}

TEST_F(ExecWorkerTest, TheProgramGetsTheJobInItsEnvironmentAndArgumentsWithoutAShell) {
  std::string id = Enqueue("env");
  Work(std::string(EXEC_HANDLER_SCRIPT) + " 'a b' \"$HOME\" ';' '*'");
  EXPECT_EQ(Get(id).state, JobState::kCompleted);
  EXPECT_EQ(Read(id + ".env"), "RETRACED_ATTEMPT=1\nRETRACED_JOB_ID=" + id +
                                   "\nRETRACED_JOB_TYPE=env\nRETRACED_QUEUE=exec\n"
                                   "RETRACED_TRIGGER=initial\n");
  EXPECT_EQ(Read(id + ".args"), "a b\n$HOME\n;\n*\n") << "no expansion, no globbing";
}

TEST_F(ExecWorkerTest, ATimeoutKillsTheProgram) {
  std::string id = Enqueue("hang", {"--timeout", "300ms"});
  auto started = std::chrono::steady_clock::now();
  Work();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(15))
      << "the 30 s sleep was killed";
  Job j = Get(id);
  EXPECT_EQ(j.attempts[0].outcome, Outcome::kTimedOut);
  EXPECT_EQ(j.attempts[0].error->code, "TIMED_OUT");
}

// Regression: writing a payload larger than a pipe to a program that never
// reads it blocked the executor, so the timeout could not kill the program.
TEST_F(ExecWorkerTest, ATimeoutKillsAProgramThatNeverReadsALargePayload) {
  std::string id =
      Enqueue("hang", {"--timeout", "300ms", "--raw", "--payload", "-"}, std::string(4 << 20, 'x'));
  auto started = std::chrono::steady_clock::now();
  Work();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(15));
  EXPECT_EQ(Get(id).attempts[0].outcome, Outcome::kTimedOut);
}

// Regression: a program that exited while a process it started kept the
// pipes open was waited for forever.
TEST_F(ExecWorkerTest, AProgramThatLeavesABackgroundProcessIsDoneWhenItExits) {
  std::string id = Enqueue("daemon");
  auto started = std::chrono::steady_clock::now();
  Work();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(15));
  EXPECT_EQ(Get(id).state, JobState::kCompleted);
}

TEST_F(ExecWorkerTest, AProgramThatIgnoresItsStdinOrCannotRunIsReported) {
  std::string ignore = Enqueue("ignore", {"--raw", "--payload", "-"}, std::string(1 << 20, '1'));
  Work();
  EXPECT_EQ(Get(ignore).state, JobState::kCompleted) << "a closed stdin is not a failure";
  std::string missing = Enqueue("ok");
  Work("/no/such/program");
  Error e = *Get(missing).attempts[0].error;
  EXPECT_EQ(e.error_class, ErrorClass::kPermanent);
  EXPECT_EQ(e.code, "EXEC_FAILED");
  EXPECT_EQ(e.message, "cannot run '/no/such/program': No such file or directory");
  std::string unnamed = Enqueue("ok");
  Work("no-such-program-in-path");
  EXPECT_EQ(Get(unnamed).attempts[0].error->message,
            "cannot run 'no-such-program-in-path': not found in PATH");
}

TEST_F(ExecWorkerTest, SigtermStopsTheWorkerAndReleasesWhatStillRuns) {
  std::string id = Enqueue("hang", {"--policy", "fixed(1s, retries=3)"});
  std::unique_ptr<testing::ChildProcess> w =
      testing::ChildProcess::Start({RETRACED_BIN, "worker", "--queue", "exec", "--exec",
                                    EXEC_HANDLER_SCRIPT, "--grace", "300ms"},
                                   {{"RETRACED_STORE", url_}, {"OUT_DIR", dir_.string()}});
  for (int i = 0; i < 500 && Get(id).state != JobState::kActive; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(Get(id).state, JobState::kActive);
  auto sent = std::chrono::steady_clock::now();
  w->Signal(SIGTERM);
  ProcessResult r = w->Wait();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - sent, std::chrono::seconds(10))
      << "the 30 s program was stopped";
  EXPECT_NE(
      r.err.find(
          "SIGTERM: stopping; running jobs have 300ms to finish (signal again to exit at once)"),
      std::string::npos)
      << r.err;
  Job j = Get(id);
  EXPECT_EQ(j.state, JobState::kRetryWait);
  EXPECT_EQ(j.attempts[0].error->code, "WORKER_STOPPED");
  EXPECT_EQ(j.events.back().reason, "released");
}

TEST_F(ExecWorkerTest, EnqueueThenDrainThenShowTellsTheWholeStory) {
  ProcessResult enq = Cli({"enqueue", "--queue", "exec", "--type", "tempfail", "--policy",
                           "phases(immediate(1), fixed(100ms, retries=1))", "--payload",
                           R"({"to":"a@example.com"})"});
  ASSERT_EQ(enq.exit_code, 0) << enq.err;
  std::string id = enq.out.substr(0, 26);
  ProcessResult w = Work();
  EXPECT_NE(w.err.find("job " + id + " (tempfail) attempt 3 auto: failed EX_TEMPFAIL -> dead"),
            std::string::npos)
      << w.err;
  ProcessResult show = Cli({"jobs", "show", id, "--json"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  Json j = *ParseJson(show.out);
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["state"], "dead");
  EXPECT_EQ(j["payload"]["to"], "a@example.com");
  EXPECT_EQ(j["attempt_count"], 3);
  EXPECT_EQ(j["dead"]["reason"], "attempts_exhausted");
  ASSERT_EQ(j["attempts"].size(), 3u);
  const char* triggers[] = {"initial", "auto", "auto"};
  const int phases[] = {1, 2, 0};
  const int delays[] = {0, 100, 0};
  for (int i = 0; i < 3; ++i) {
    const Json& a = j["attempts"][i];
    EXPECT_EQ(a["n"], i + 1);
    EXPECT_EQ(a["trigger"], triggers[i]);
    EXPECT_TRUE(a["worker"].get<std::string>().find(':') != std::string::npos) << a["worker"];
    EXPECT_EQ(a["outcome"], "failed");
    EXPECT_EQ(a["error"]["class"], "temporary");
    EXPECT_EQ(a["error"]["code"], "EX_TEMPFAIL");
    EXPECT_EQ(a["error"]["message"], "exited with status 75 (EX_TEMPFAIL)");
    EXPECT_EQ(a["error"]["detail"], "smtp server busy\n");
    EXPECT_EQ(a["decision"]["action"], i < 2 ? "retry" : "dead");
    if (phases[i]) {
      EXPECT_EQ(a["decision"]["phase"], phases[i]);
    } else {
      EXPECT_TRUE(a["decision"]["phase"].is_null());
    }
    EXPECT_EQ(a["decision"]["delay_ms"], delays[i]);
    EXPECT_GE(a["lateness_ms"].get<int64_t>(), 0);
    Result<TimePoint> started = ParseTime(a["started_at"].get<std::string>());
    Result<TimePoint> ended = ParseTime(a["ended_at"].get<std::string>());
    ASSERT_TRUE(started.ok() && ended.ok());
    EXPECT_LE(*started, *ended);
  }
  EXPECT_EQ(j["attempts"][1]["decision"]["reason"],
            "temporary error EX_TEMPFAIL; phase 2/2 fixed, retry 1 of 1 (2 of 2 overall): 100ms; "
            "next run " +
                FormatTimeOfDay(*ParseTime(j["attempts"][1]["ended_at"].get<std::string>()) +
                                Millis(100)));
  std::vector<std::string> reasons;
  for (const Json& e : j["events"]) reasons.push_back(e["reason"]);
  EXPECT_EQ(reasons, (std::vector<std::string>{"enqueued", "claimed", "retry_scheduled", "claimed",
                                               "retry_scheduled", "due", "claimed", "dead"}));
}

}  // namespace
}  // namespace retraced
