#include <gtest/gtest.h>

#include "retraced/decide.h"
#include "retraced/json.h"

namespace retraced {
namespace {

const TimePoint kT = *ParseTime("2026-11-28T12:00:00.000Z");

// A job with every field set and a history holding every kind of record.
Job FullJob() {
  Job job;
  job.id = "01JD5XQ3ZK8M4N2P6R7S9T0V1W";
  job.queue = "emails";
  job.type = "send_welcome";
  job.state = JobState::kDead;
  job.payload = R"({"to":"a@example.com","n":1})";
  job.policy = *ParsePolicy(
      "phases(immediate(1), exponential(1s, max=1m, retries=3, jitter=full), "
      "deadline=1h, dead_on=[INVALID_EMAIL])");
  job.attempt_count = 2;
  job.created_at = kT;
  job.run_at = kT + Millis(5);
  job.unique_key = "welcome:42";
  job.timeout = Millis(30'000);
  job.deadline_at = kT + Millis(3'600'000);
  job.priority = 5;

  Attempt a1;
  a1.n = 1;
  a1.trigger = Trigger::kInitial;
  a1.worker = "host-a/4242/20261128T120000Z";
  a1.started_at = kT + Millis(7);
  a1.ended_at = kT + Millis(20);
  a1.outcome = Outcome::kTimedOut;
  a1.error =
      MakeError(ErrorClass::kTemporary, "TIMED_OUT", std::string(2000, 'm'), "stack\nframes");
  RetryContext ctx;
  ctx.job_id = job.id;
  ctx.now = kT + Millis(20);
  a1.decision =
      Decide(job.policy, ctx, Failure{Outcome::kTimedOut, ErrorClass::kTemporary, "TIMED_OUT", ""});
  a1.lateness = Millis(2);

  Attempt a2 = a1;
  a2.n = 2;
  a2.trigger = Trigger::kManual;
  a2.outcome = Outcome::kFailed;
  a2.error = MakeError(ErrorClass::kPermanent, "INVALID_EMAIL", "no such mailbox");
  a2.decision = Decide(
      job.policy, ctx,
      Failure{Outcome::kFailed, ErrorClass::kPermanent, "INVALID_EMAIL", "dead_on in policy"});
  job.attempts = {a1, a2};

  job.events = {
      Event{kT, std::nullopt, JobState::kReady, "enqueued", "api", ""},
      Event{kT + Millis(7), JobState::kReady, JobState::kActive, "claimed", a1.worker, ""},
      Event{kT + Millis(30), std::nullopt, std::nullopt, "stale_ack_refused", "w2",
            "fencing token 3, current 4"}};
  job.dead = DeadInfo{DeadReason::kPermanentError,
                      kT + Millis(40),
                      {"attempt 2: permanent error INVALID_EMAIL: no such mailbox"}};
  job.replay = Replay{"alice", "mailbox fixed", kT + Millis(25), Replay::Mode::kMore, 2};
  return job;
}

TEST(AppendJson, WritesWhatDumpingTheTreeWrites) {
  // Text that needs escaping, text that is not ASCII, bytes that are not UTF-8.
  for (std::string text :
       {std::string(""), std::string("plain"), std::string("q\"b\\s/"),
        std::string("\b\f\n\r\t\x01\x1f\x7f"), std::string("caf\xc3\xa9 \xe2\x82\xac"),
        std::string("bad \xff\xc3 end"), std::string(1, '\0')}) {
    std::string out = "x";
    AppendJson(out, text);
    EXPECT_EQ(out, "x" + DumpJson(Json(text))) << text;
    Error e{ErrorClass::kTemporary, text, text, text};
    e.message_cut_bytes = text.size();
    out.clear();
    AppendJson(out, e);
    EXPECT_EQ(out, DumpJson(ToJson(e))) << text;
  }
  for (const Attempt& a : FullJob().attempts) {
    std::string out;
    AppendJson(out, *a.error);
    EXPECT_EQ(out, DumpJson(ToJson(*a.error)));
    out.clear();
    AppendJson(out, *a.decision);
    EXPECT_EQ(out, DumpJson(ToJson(*a.decision)));
  }
  Decision d = SuccessDecision();
  std::string out;
  AppendJson(out, d);
  EXPECT_EQ(out, DumpJson(ToJson(d))) << "no phase, no next run";
}

TEST(JobJson, UsesTheContractFieldNames) {
  Json j = ToJson(FullJob());
  for (const char* field :
       {"id", "queue", "type", "state", "payload", "policy", "attempt_count", "created_at",
        "run_at", "unique_key", "timeout_ms", "deadline_at", "attempts", "events", "dead"}) {
    EXPECT_TRUE(j.contains(field)) << field;
  }
  EXPECT_EQ(j["state"], "dead");
  EXPECT_EQ(j["payload"]["to"], "a@example.com") << "a JSON payload is embedded as JSON";
  EXPECT_FALSE(j.contains("payload_base64"));
  EXPECT_EQ(j["policy"],
            "phases(immediate(1), exponential(1s, factor=2, max=1m, retries=3, jitter=full), "
            "deadline=1h, dead_on=[INVALID_EMAIL])");
  EXPECT_EQ(j["created_at"], "2026-11-28T12:00:00.000Z");
  EXPECT_EQ(j["timeout_ms"], 30000);

  const Json& a = j["attempts"][0];
  for (const char* field : {"n", "trigger", "worker", "started_at", "ended_at", "outcome", "error",
                            "decision", "lateness_ms"}) {
    EXPECT_TRUE(a.contains(field)) << field;
  }
  EXPECT_EQ(a["trigger"], "initial");
  EXPECT_EQ(a["outcome"], "timed_out");
  EXPECT_EQ(a["error"]["class"], "temporary");
  EXPECT_EQ(a["error"]["code"], "TIMED_OUT");
  EXPECT_EQ(a["error"]["message_cut_bytes"], 2000 - 1024);
  EXPECT_FALSE(a["error"].contains("detail_cut_bytes")) << "only what was cut is recorded";
  for (const char* field :
       {"action", "reason", "phase", "base_delay_ms", "jitter_ms", "delay_ms", "next_run_at"}) {
    EXPECT_TRUE(a["decision"].contains(field)) << field;
  }
  EXPECT_EQ(a["decision"]["action"], "retry");
  EXPECT_EQ(a["decision"]["phase"], 1);
  EXPECT_EQ(j["attempts"][1]["decision"]["dead_reason"], "permanent_error");
  EXPECT_TRUE(j["attempts"][1]["decision"]["next_run_at"].is_null());

  const Json& e = j["events"][0];
  for (const char* field : {"at", "from", "to", "reason", "actor", "note"}) {
    EXPECT_TRUE(e.contains(field)) << field;
  }
  EXPECT_TRUE(e["from"].is_null());
  EXPECT_EQ(e["to"], "ready");
  EXPECT_EQ(j["dead"]["reason"], "permanent_error");
  EXPECT_EQ(j["dead"]["evidence"].size(), 1u);
  EXPECT_EQ(j["replay"]["mode"], "more=2");
}

TEST(JobJson, RoundTripsEveryRecordType) {
  Job job = FullJob();
  Result<Job> back = JobFromJson(ToJson(job));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, job);
  // And through text, as the CLI and HTTP API carry it.
  Result<Json> parsed = ParseJson(DumpJson(ToJson(job)));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*JobFromJson(*parsed), job);

  for (const Attempt& a : job.attempts) EXPECT_EQ(*AttemptFromJson(ToJson(a)), a);
  for (const Event& e : job.events) EXPECT_EQ(*EventFromJson(ToJson(e)), e);
  EXPECT_EQ(*ErrorFromJson(ToJson(*job.attempts[0].error)), *job.attempts[0].error);
  EXPECT_EQ(*DecisionFromJson(ToJson(*job.attempts[1].decision)), *job.attempts[1].decision);
  EXPECT_EQ(*DeadInfoFromJson(ToJson(*job.dead)), *job.dead);
  EXPECT_EQ(*ReplayFromJson(ToJson(*job.replay)), *job.replay);
}

TEST(JobJson, AMinimalJobRoundTripsWithNulls) {
  Job job;
  job.id = "j1";
  job.queue = "q";
  job.type = "t";
  job.policy = *ParsePolicy("none");
  job.created_at = job.run_at = kT;
  job.payload = "null";
  Json j = ToJson(job);
  EXPECT_TRUE(j["unique_key"].is_null());
  EXPECT_TRUE(j["timeout_ms"].is_null());
  EXPECT_TRUE(j["deadline_at"].is_null());
  EXPECT_TRUE(j["dead"].is_null());
  EXPECT_EQ(j["attempts"], Json::array());
  EXPECT_EQ(*JobFromJson(j), job);
}

TEST(PayloadJson, BytesThatAreNotCompactJsonTravelAsBase64Exactly) {
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte += static_cast<char>(b);
  for (const std::string& payload :
       {every_byte, std::string(""), std::string("hello"), std::string("{ \"a\" : 1 }"),
        std::string("{\"a\":1}\n"), std::string("\xff\xfe")}) {
    Json j = Json::object();
    PutPayload(j, payload);
    EXPECT_TRUE(j["payload"].is_null()) << payload;
    EXPECT_TRUE(j["payload_base64"].is_string());
    EXPECT_EQ(*GetPayload(j), payload);
    // Survives serialization to text and back.
    EXPECT_EQ(*GetPayload(*ParseJson(DumpJson(j))), payload);
  }
  Json j = Json::object();
  PutPayload(j, "\"just a string\"");
  EXPECT_EQ(j["payload"], "just a string");
  EXPECT_EQ(*GetPayload(j), "\"just a string\"");
  EXPECT_EQ(*GetPayload(Json::object()), "") << "no payload at all is an empty payload";
  Json bad = {{"payload_base64", "not base64!"}};
  EXPECT_FALSE(GetPayload(bad).ok());
}

TEST(JobJson, BadFieldsAreNamedByTheirPath) {
  Json j = ToJson(FullJob());
  struct Case {
    std::function<void(Json&)> breakit;
    std::string message;
  };
  std::vector<Case> cases = {
      {[](Json& x) { x.erase("id"); }, "id: missing"},
      {[](Json& x) { x["queue"] = 7; }, "queue: expected a string, got number"},
      {[](Json& x) { x["state"] = "waiting"; },
       "state: unknown job state 'waiting'; expected scheduled, ready, active, retry_wait, "
       "completed, dead or cancelled"},
      {[](Json& x) { x["created_at"] = "yesterday"; },
       "created_at: invalid time 'yesterday': date must be YYYY-MM-DD (expected RFC 3339, e.g. "
       "2026-11-28T12:00:00.000Z)"},
      {[](Json& x) { x["attempts"][1]["error"]["class"] = "fatal"; },
       "attempts[1].error.class: unknown error class 'fatal'; expected temporary or permanent"},
      {[](Json& x) { x["attempts"][0]["decision"]["delay_ms"] = "5s"; },
       "attempts[0].decision.delay_ms: expected an integer, got string"},
      {[](Json& x) { x["attempts"][0]["n"] = 0; },
       "attempts[0].n: must be from 1 to 2147483647, got 0"},
      {[](Json& x) { x["events"][2]["to"] = "gone"; },
       "events[2].to: unknown job state 'gone'; expected scheduled, ready, active, retry_wait, "
       "completed, dead or cancelled"},
      {[](Json& x) { x["dead"]["evidence"] = {1}; },
       "dead.evidence[0]: expected a string, got number"},
      {[](Json& x) { x["replay"]["mode"] = "again"; },
       "replay.mode: invalid replay mode 'again': expected 'fresh' or 'more=N' with N from 1 to "
       "10000"},
      {[](Json& x) { x["policy"] = "fixed(1s, retries=-1)"; },
       "policy: invalid retry policy: column 19: retries must be a whole number from 0 to 10000, "
       "got '-1'"},
      {[](Json& x) { x["attempts"] = "none"; }, "attempts: expected an array, got string"},
      {[](Json& x) { x["attempt_count"] = 4294967297LL; },
       "attempt_count: must be from 0 to 2147483647, got 4294967297"},
      {[](Json& x) { x["timeout_ms"] = 0; }, "timeout_ms: must be from 1 to 604800000, got 0"},
      {[](Json& x) { x["attempts"][0]["error"]["detail_cut_bytes"] = -5; },
       "attempts[0].error.detail_cut_bytes: must be from 0 to 16777216, got -5"},
      {[](Json& x) { x["attempts"][0]["lateness_ms"] = 18446744073709551615ULL; },
       "attempts[0].lateness_ms: integer too large"},
  };
  for (Case& c : cases) {
    Json broken = j;
    c.breakit(broken);
    Result<Job> r = JobFromJson(broken);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), c.message);
  }
  EXPECT_EQ(JobFromJson(Json::array()).status().message(), "(top): expected an object, got array");
}

TEST(PolicyJson, StructuredFormIsEquivalentToTheText) {
  for (const char* text :
       {"none", "fixed(2s, retries=5)", "linear(1s, step=500ms, max=3s, retries=4, jitter=equal)",
        "exponential(200ms, factor=2, max=30s, retries=8, jitter=full)",
        "phases(immediate(2), exponential(1s, factor=1.5, max=1m, retries=5), deadline=1h, "
        "retry_on=[A], dead_on=[B,C])"}) {
    RetryPolicy p = *ParsePolicy(text);
    Json j = PolicyToJson(p);
    EXPECT_EQ(j["text"], FormatPolicy(p));
    Result<RetryPolicy> back = PolicyFromJson(j);
    ASSERT_TRUE(back.ok()) << text << ": " << back.status().message();
    EXPECT_EQ(*back, p) << text;
    j.erase("text");
    EXPECT_EQ(*PolicyFromJson(j), p) << "structured fields alone suffice";
    EXPECT_EQ(*PolicyFromJson(Json(text)), p) << "a string is the text form";
  }
  Json exp = PolicyToJson(*ParsePolicy("exponential(200ms, max=30s, retries=8, jitter=full)"));
  EXPECT_EQ(exp["strategy"], "exponential");
  EXPECT_EQ(exp["base_ms"], 200);
  EXPECT_EQ(exp["factor"], 2.0);
  EXPECT_EQ(exp["max_ms"], 30000);
  EXPECT_EQ(exp["retries"], 8);
  EXPECT_EQ(exp["jitter"], "full");
}

TEST(PolicyJson, RefusesInvalidOrContradictoryForms) {
  EXPECT_EQ(PolicyFromJson(Json{{"strategy", "cubic"}, {"retries", 1}}).status().message(),
            "policy.strategy: unknown strategy 'cubic'; expected immediate, fixed, linear, "
            "exponential or a registered one");
  EXPECT_EQ(PolicyFromJson(Json{{"strategy", "fixed"}, {"base_ms", 1000}, {"retries", -2}})
                .status()
                .message(),
            "policy.retries: must be from 0 to 10000, got -2");
  EXPECT_EQ(
      PolicyFromJson(Json{{"strategy", "fixed"}, {"base_ms", 1000}, {"retries", 4294967297LL}})
          .status()
          .message(),
      "policy.retries: must be from 0 to 10000, got 4294967297");
  // Regression: a fixed strategy with max_ms was accepted but printed as text that does not parse.
  EXPECT_EQ(PolicyFromJson(
                Json{{"strategy", "fixed"}, {"base_ms", 1000}, {"retries", 1}, {"max_ms", 5000}})
                .status()
                .message(),
            "phase 1: max applies to linear and exponential only");
  Json contradictory = PolicyToJson(*ParsePolicy("fixed(1s, retries=2)"));
  contradictory["retries"] = 3;
  EXPECT_EQ(PolicyFromJson(contradictory).status().message(),
            "policy.text: does not match the structured fields");
}

TEST(DumpJson, ReplacesInvalidUtf8InsteadOfThrowing) {
  Json j = {{"message", std::string("bad \xff byte")}};
  EXPECT_EQ(DumpJson(j), "{\"message\":\"bad \xEF\xBF\xBD byte\"}");
}

TEST(ParseJson, NamesWhereTheTextBroke) {
  Result<Json> r = ParseJson("{\"a\": }");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().message().starts_with("invalid JSON: parse error at line 1, column 7"))
      << r.status().message();
}

}  // namespace
}  // namespace retraced
