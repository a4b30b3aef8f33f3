// The Redis backend's Lua scripts, each on its edge cases, against a real
// redis-server: what they return and what they leave in the keys.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "retraced/json.h"
#include "retraced/store.h"
#include "store/embedded.h"
#include "store/redis/redis_connection.h"
#include "store/redis/redis_fields.h"
#include "store/redis/redis_keys.h"
#include "support/redis_server.h"

namespace retraced::redis {
namespace {

using testing::RedisServer;

Script Load(std::string_view name) {
  for (const EmbeddedFile& f : RedisScriptFiles()) {
    if (f.name == name) return Script{std::string(name), std::string(f.text), ""};
  }
  ADD_FAILURE() << "no script " << name;
  return {};
}

class RedisScriptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::Available()) GTEST_SKIP() << "redis-server is not installed";
    std::string error;
    server_ = RedisServer::Start({}, &error);
    ASSERT_TRUE(server_) << error;
    conn_ = std::move(*Connection::Open(*ParseRedisUrl(server_->Url())));
  }

  struct NewJobArgs {
    std::string id = "", type = "send", payload = "{}", policy = "none";
    int prio = 0;
    std::string run_at = "", unique = "", timeout = "", deadline_at = "", deadline_after = "",
                note = "";
    std::string check = "1";  // "1": a producer's id, looked up; "": a generated one
  };
  // enqueue.lua as the store calls it. `written`: as it does for a batch of
  // generated ids, with numbers and the time from reserve.lua, the specs
  // written by the producer and the script in one transaction.
  Reply Enqueue(const std::vector<NewJobArgs>& jobs, const std::string& queue = "q",
                const std::string& seq_hint = "0", bool written = false) {
    QueueKeys k(queue);
    std::string now = now_;
    int64_t first = 0;
    if (written) {
      Result<Reply> reserved =
          conn_->Eval(reserve_, {k.Seq()}, {now_, std::to_string(jobs.size()), seq_hint});
      EXPECT_TRUE(reserved.ok() && reserved->elements.size() == 2);
      if (!reserved.ok() || reserved->elements.size() != 2) return Reply();
      now = std::to_string(reserved->elements[0].integer);
      first = reserved->elements[1].integer;
    }
    std::vector<std::string> args = {now, "test", std::to_string(jobs.size()),
                                     written ? std::to_string(first) : seq_hint,
                                     written ? "1" : ""};
    std::vector<std::string> hset = {"HSET", k.Specs()};
    for (size_t i = 0; i < jobs.size(); ++i) {
      const NewJobArgs& j = jobs[i];
      args.push_back(j.id);
      std::string spec =
          PackSpec(j.type, j.policy, j.payload,
                   j.timeout.empty() ? std::nullopt : std::optional(std::stoll(j.timeout)));
      if (written) {
        const bool later = !j.run_at.empty() && std::stoll(j.run_at) > std::stoll(now);
        AppendSpecEnd(&spec, std::stoll(now), later ? std::nullopt : std::optional("test"),
                      first + static_cast<int64_t>(i / 100 * 100));
        hset.push_back(j.id);
        hset.push_back(spec);
      } else {
        args.push_back(spec);
      }
      // Three arguments for a job with no options, as the store sends it.
      if (j.prio == 0 && j.run_at.empty() && j.unique.empty() && j.deadline_at.empty() &&
          j.deadline_after.empty() && j.check.empty()) {
        args.push_back("");
        continue;
      }
      args.insert(args.end(), {"1", std::to_string(j.prio), j.run_at, j.unique, j.deadline_at,
                               j.deadline_after, j.note, j.check});
    }
    const std::vector<std::string> keys = {k.prefix(), k.Ready(),    k.Scheduled(), k.Unique(),
                                           k.All(),    k.Counters(), k.Signal(),    k.Seq()};
    Result<Reply> r = written ? conn_->EvalInTransaction({hset}, enqueue_, keys, args)
                              : conn_->Eval(enqueue_, keys, args);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->IsError()) << r->str;
    return *r;
  }
  Reply Claim(int max, const std::string& worker = "w1", int lease_ms = 30000) {
    QueueKeys k("q");
    Result<Reply> r = conn_->Eval(
        claim_, {k.prefix(), k.Ready(), k.Scheduled(), k.RetryWait(), k.Active(), k.Counters()},
        {now_, worker, std::to_string(max), std::to_string(lease_ms)});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->IsError()) << r->str;
    return *r;
  }
  // A field of the job's record or of its unchanging part (spec).
  std::string Field(const std::string& id, const std::string& field,
                    const std::string& queue = "q") {
    for (const std::string& hash : {QueueKeys(queue).Jobs(), QueueKeys(queue).Specs()}) {
      Reply r = *conn_->Command({"HGET", hash, id});
      if (r.IsNil()) continue;
      std::optional<std::map<std::string, std::string>> f = DecodeRecord(r.str);
      EXPECT_TRUE(f) << "the record of " << id << " decodes";
      if (f && f->count(field)) return f->at(field);
    }
    return "(nil)";
  }
  // A claim's jobs: {now, id, spec, record, ...} decoded.
  struct ClaimedView {
    std::string id;
    std::map<std::string, std::string> spec, record;
  };
  static std::vector<ClaimedView> Claimed(const Reply& r) {
    std::vector<ClaimedView> out;
    EXPECT_EQ((r.elements.size() + 2) % 3, 0u) << "the time, then three strings per job";
    for (size_t i = 1; i + 2 < r.elements.size(); i += 3) {
      std::optional<std::map<std::string, std::string>> spec = DecodeRecord(r.elements[i + 1].str);
      std::optional<std::map<std::string, std::string>> record =
          DecodeRecord(r.elements[i + 2].str);
      EXPECT_TRUE(spec && record);
      out.push_back({r.elements[i].str, spec.value_or(std::map<std::string, std::string>{}),
                     record.value_or(std::map<std::string, std::string>{})});
    }
    return out;
  }
  // The history records: every field of the job's history (ID, then ID#1,
  // ID#2, ...), in order, after the 'enqueued' event that a job ready at once
  // has in its spec instead (as the store reads them).
  std::vector<Json> History(const std::string& id) {
    Reply all = *conn_->Command({"HGETALL", QueueKeys("q").History()});
    std::map<int, std::string> fields;
    for (size_t i = 0; i + 1 < all.elements.size(); i += 2) {
      const std::string& name = all.elements[i].str;
      if (name == id) {
        fields[0] = all.elements[i + 1].str;
      } else if (name.rfind(id + "#", 0) == 0) {
        fields[std::stoi(name.substr(id.size() + 1))] = all.elements[i + 1].str;
      }
    }
    std::vector<Json> out;
    if (std::string by = Field(id, "enq_actor"); by != "(nil)") {
      out.push_back(
          Json::array({"e", std::stoll(Field(id, "created")), "", "ready", "enqueued", by, ""}));
    }
    for (const auto& [n, value] : fields) {
      std::string_view rest = value;
      while (!rest.empty()) {
        size_t end = rest.find('\n');
        out.push_back(*ParseJson(rest.substr(0, end)));
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      }
    }
    return out;
  }
  // The history fields of a job (the hash's field names).
  std::vector<std::string> HistoryFields(const std::string& id) {
    Reply all = *conn_->Command({"HKEYS", QueueKeys("q").History()});
    std::vector<std::string> out;
    for (const Reply& name : all.elements) {
      if (name.str == id || name.str.rfind(id + "#", 0) == 0) out.push_back(name.str);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  // The entries of the queue's `all` set, oldest first: (score, ids).
  std::vector<std::pair<std::string, std::string>> Entries(const std::string& queue = "q") {
    Reply r = *conn_->Command({"ZRANGE", QueueKeys(queue).All(), "0", "-1", "WITHSCORES"});
    std::vector<std::pair<std::string, std::string>> out;
    for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
      out.emplace_back(r.elements[i + 1].str, r.elements[i].str);
    }
    return out;
  }
  // A job's insertion number: its entry's score plus its place in the entry.
  std::string Number(const std::string& id, const std::string& queue = "q") {
    for (const auto& [score, ids] : Entries(queue)) {
      std::string_view rest = ids;
      for (int64_t place = 0;; ++place) {
        const size_t space = rest.find(' ');
        if (rest.substr(0, space) == id) return std::to_string(std::stoll(score) + place);
        if (space == std::string_view::npos) break;
        rest.remove_prefix(space + 1);
      }
    }
    return "(nil)";
  }
  int64_t Now() {
    Reply t = *conn_->Command({"TIME"});
    return std::stoll(t.elements[0].str) * 1000 + std::stoll(t.elements[1].str) / 1000;
  }

  std::string now_;                 // "" : the server's clock
  std::string start_;               // the start record End() gives ("": the script makes it)
  std::string started_;             // the attempt start End() expects ("": not checked)
  std::string last_delay_ = "100";  // the delay End() records
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<Connection> conn_;
  Reply End(const std::string& id, int64_t token, const std::string& to, const std::string& event,
            const std::string& counters, const std::string& run_at = "",
            const std::string& record_refusal = "1", const std::string& dead_reason = "") {
    QueueKeys k("q");
    std::string now = now_.empty() ? std::to_string(Now()) : now_;
    Result<Reply> r =
        conn_->Eval(end_,
                    {k.prefix(), k.Counters(), k.Unique(), k.Active(), k.Ready(), k.RetryWait(),
                     k.State(JobState::kCompleted), k.State(JobState::kDead), k.Signal()},
                    {now, id, std::to_string(token), "w1", "completion", record_refusal, event, to,
                     run_at, to == "ready" || to == "retry_wait" ? "auto" : "", last_delay_, "0",
                     R"(["x",1,0,"failed",null,null])", counters,
                     to == "completed" ? "" : R"(["temporary","X","boom","boom"])", dead_reason,
                     dead_reason.empty() ? "" : R"(["evidence line"])", start_, started_});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->IsError()) << r->str;
    EXPECT_EQ(r->elements.size(), 1u) << "one reply per job";
    return r->elements.empty() ? Reply() : r->elements[0];
  }

  Script enqueue_ = Load("enqueue.lua"), claim_ = Load("claim.lua");
  Script reserve_ = Load("reserve.lua");
  Script end_ = Load("end_attempt.lua"), heartbeat_ = Load("heartbeat.lua");
  Script replay_ = Load("replay.lua"), cancel_ = Load("cancel.lua"), remove_ = Load("remove.lua");
  Script complete_ = Load("complete.lua");

  // complete.lua for one job; its one status.
  Reply Complete(const std::string& id, int64_t token, const std::string& actor = "w1") {
    QueueKeys k("q");
    Result<Reply> r = conn_->Eval(
        complete_,
        {k.prefix(), k.Counters(), k.Unique(), k.Active(), k.State(JobState::kCompleted)},
        {now_, actor, id, std::to_string(token)});
    EXPECT_TRUE(r.ok() && !r->IsError());
    EXPECT_EQ(r->elements.size(), 2u) << "the time and one status";
    return r->elements.size() == 2 ? r->elements[1] : Reply();
  }

  Reply Replay(const std::string& id) {
    QueueKeys k("q");
    Result<Reply> r =
        conn_->Eval(replay_,
                    {k.prefix(), k.Ready(), k.State(JobState::kDead), k.State(JobState::kCancelled),
                     k.Unique(), k.Counters(), k.Signal()},
                    {std::to_string(Now()), id, "ops", "why", "fresh", "", "", "mode fresh: why"});
    EXPECT_TRUE(r.ok() && !r->IsError());
    return *r;
  }
  // remove.lua on queue q: the ids it removed.
  std::vector<std::string> Remove(const std::string& counter, const std::vector<std::string>& ids) {
    QueueKeys k("q");
    std::vector<std::string> args = {counter};
    args.insert(args.end(), ids.begin(), ids.end());
    Result<Reply> r =
        conn_->Eval(remove_,
                    {k.prefix(), k.All(), k.State(JobState::kCompleted), k.State(JobState::kDead),
                     k.State(JobState::kCancelled), k.Counters()},
                    args);
    EXPECT_TRUE(r.ok() && !r->IsError());
    std::vector<std::string> removed;
    if (r.ok()) {
      for (const Reply& id : r->elements) removed.push_back(id.str);
    }
    return removed;
  }
  Reply Cancel(const std::string& id) {
    QueueKeys k("q");
    Result<Reply> r = conn_->Eval(cancel_,
                                  {k.prefix(), k.Scheduled(), k.Ready(), k.RetryWait(), k.Active(),
                                   k.State(JobState::kCancelled), k.Unique(), k.Counters()},
                                  {std::to_string(Now()), id, "ops", "no longer needed",
                                   R"(["cancelled by ops"])", R"(["x",0,0,null,null,null])"});
    EXPECT_TRUE(r.ok() && !r->IsError());
    return *r;
  }
};

TEST_F(RedisScriptTest, EachScriptIsNamedByTheSha1RedisGivesIt) {
  // Calls go by EVALSHA under the SHA1 computed at build time, with no
  // SCRIPT LOAD until the server answers NOSCRIPT: it must be Redis's name.
  ASSERT_FALSE(RedisScriptFiles().empty());
  for (const EmbeddedFile& f : RedisScriptFiles()) {
    Result<Reply> loaded = conn_->Command({"SCRIPT", "LOAD", std::string(f.text)});
    ASSERT_TRUE(loaded.ok() && !loaded->IsError()) << f.name;
    EXPECT_EQ(loaded->str, f.sha1) << f.name;
  }
  // A server that has not loaded a script runs it all the same: the first
  // call is answered NOSCRIPT, the script is loaded and the call sent again.
  ASSERT_TRUE(conn_->Command({"SCRIPT", "FLUSH"}).ok());
  Script claim = Load("claim.lua");
  for (const EmbeddedFile& f : RedisScriptFiles()) {
    if (f.name == "claim.lua") claim.sha = std::string(f.sha1);  // as the store starts
  }
  QueueKeys k("q");
  Result<Reply> r = conn_->Eval(
      claim, {k.prefix(), k.Ready(), k.Scheduled(), k.RetryWait(), k.Active(), k.Counters()},
      {"", "w1", "1", "1000"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->IsError()) << r->str;
  EXPECT_EQ(conn_->Command({"SCRIPT", "EXISTS", claim.sha})->elements.at(0).integer, 1);
}

TEST_F(RedisScriptTest, EnqueueAddsJobsAndRecordsTheEvent) {
  Reply r = Enqueue({{.id = "a",
                      .payload = R"({"to":"x"})",
                      .policy = "fixed(1s, retries=2)",
                      .timeout = "30000"}});
  ASSERT_EQ(r.elements.size(), 2u) << "the time and the last insertion number: nothing refused";
  int64_t now = r.elements[0].integer;
  EXPECT_EQ(std::to_string(r.elements[1].integer),
            conn_->Command({"ZSCORE", QueueKeys("q").All(), "a"})->str);
  EXPECT_EQ(Field("a", "state"), "ready");
  EXPECT_EQ(Field("a", "payload"), R"({"to":"x"})");
  EXPECT_EQ(Field("a", "policy"), "fixed(1s, retries=2)");
  EXPECT_EQ(Field("a", "timeout"), "30000");
  EXPECT_EQ(Field("a", "n"), "(nil)") << "fields at their defaults are left out";
  EXPECT_EQ(Field("a", "trigger"), "(nil)");
  EXPECT_EQ(Field("a", "created"), std::to_string(now));
  EXPECT_EQ(Field("a", "unique"), "(nil)");
  // Ready at once: the event is in the spec (who enqueued it; the rest is
  // known), and the job has no history entry until it is claimed.
  EXPECT_EQ(Field("a", "enq_actor"), "test");
  EXPECT_EQ(HistoryFields("a"), std::vector<std::string>{});
  std::vector<Json> h = History("a");
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0], Json::parse(R"(["e", )" + std::to_string(now) +
                              R"(, "", "ready", "enqueued", "test", ""])"));
  EXPECT_EQ(conn_->Command({"ZSCORE", QueueKeys("q").Ready(), "a"})->str, std::to_string(now));
  EXPECT_EQ(conn_->Command({"HGET", QueueKeys("q").Counters(), "enqueued"})->str, "1");
}

TEST_F(RedisScriptTest, EnqueueRefusesExistingIdsAndLiveUniqueKeys) {
  Reply r = Enqueue({{.id = "a", .unique = "k"},
                     {.id = "a"},
                     {.id = "b", .unique = "k"},
                     {.id = "c", .unique = "other"}});
  // The time, the last insertion number, then (position, status, id, note)
  // for each job not created.
  ASSERT_EQ(r.elements.size(), 10u);
  EXPECT_EQ(r.elements[2].integer, 2);
  EXPECT_EQ(r.elements[3].integer, 0);
  EXPECT_EQ(r.elements[4].str, "a");
  EXPECT_EQ(r.elements[5].str, "a job with id a exists");
  EXPECT_EQ(r.elements[6].integer, 3);
  EXPECT_EQ(r.elements[7].integer, 2);
  EXPECT_EQ(r.elements[8].str, "a");
  EXPECT_EQ(r.elements[9].str, "unique key 'k' is held by live job a");
  EXPECT_EQ(Field("c", "state"), "ready");
  EXPECT_EQ(Field("b", "state"), "(nil)") << "nothing written for a refused job";
  EXPECT_EQ(conn_->Command({"HGET", QueueKeys("q").Counters(), "enqueued"})->str, "2");
  // Another queue has its own keys and its own unique keys.
  EXPECT_EQ(Enqueue({{.id = "b", .unique = "k"}}, "other-queue").elements.size(), 2u) << "created";
}

TEST_F(RedisScriptTest, InsertionNumbersFollowTimeTheQueueAndTheProducersHint) {
  now_ = "1000000";
  Reply r = Enqueue({{.id = "a"}, {.id = "b"}});
  auto score = [&](const std::string& queue, const std::string& id) { return Number(id, queue); };
  EXPECT_EQ(score("q", "a"), "1024000000") << "now_ms * 1024";
  EXPECT_EQ(score("q", "b"), "1024000001");
  EXPECT_EQ(r.elements[1].integer, 1024000001) << "the last one given";
  Enqueue({{.id = "c"}});  // the same millisecond, the same queue: the next number
  EXPECT_EQ(score("q", "c"), "1024000002");
  // Another queue in the same millisecond: after the producer's latest, as hinted.
  Enqueue({{.id = "x"}}, "other", "1024000003");
  EXPECT_EQ(score("other", "x"), "1024000003");
  Enqueue({{.id = "y"}}, "other");  // no hint: the queue's own latest + 1
  EXPECT_EQ(score("other", "y"), "1024000004");
  now_ = "1000001";
  Enqueue({{.id = "d"}});  // a later millisecond: from its own base
  EXPECT_EQ(score("q", "d"), "1024001024");
}

TEST_F(RedisScriptTest, EnqueueLooksUpOnlyProducersIds) {
  // A generated id is new by construction: the script spends no lookup on it.
  // (The store never sends one twice; this shows the lookup is what refuses.)
  Enqueue({{.id = "g", .type = "first"}});
  Reply r = Enqueue({{.id = "g", .type = "second", .check = ""}});
  EXPECT_EQ(r.elements.size(), 2u) << "created";
  EXPECT_EQ(Field("g", "type"), "second");
  r = Enqueue({{.id = "g", .type = "third"}});
  ASSERT_EQ(r.elements.size(), 6u);
  EXPECT_EQ(r.elements[3].integer, 0) << "refused: a job with this id exists";
  EXPECT_EQ(Field("g", "type"), "second");
}

TEST_F(RedisScriptTest, JobsWithAndWithoutOptionsMixInOneCall) {
  // Jobs with no options take 3 arguments, the others 10: positions and
  // records come out the same as if each had its 10.
  Reply r = Enqueue({{.id = "x", .check = ""},
                     {.id = "a", .unique = "k"},
                     {.id = "y", .check = ""},
                     {.id = "b", .unique = "k"},
                     {.id = "c"},
                     {.id = "z", .check = ""}});
  ASSERT_EQ(r.elements.size(), 6u);
  EXPECT_EQ(r.elements[2].integer, 4) << "the fourth job, b, is refused";
  EXPECT_EQ(r.elements[4].str, "a");
  for (const char* id : {"x", "a", "y", "c", "z"}) EXPECT_EQ(Field(id, "state"), "ready") << id;
  EXPECT_EQ(Field("b", "state"), "(nil)");
  auto record = [&](const std::string& id) {
    return conn_->Command({"HGET", QueueKeys("q").Jobs(), id})->str;
  };
  EXPECT_EQ(record("z"), record("c")) << "the same record, from 3 arguments or 10";
  EXPECT_EQ(Field("z", "type"), "send");
  EXPECT_EQ(conn_->Command({"HGET", QueueKeys("q").Counters(), "enqueued"})->str, "5");
}

TEST_F(RedisScriptTest, AFutureRunAtSchedulesAndTheDeadlineComesFromEitherForm) {
  int64_t later = Now() + 60'000;
  Reply r = Enqueue({{.id = "s", .run_at = std::to_string(later), .note = "due at LATER"},
                     {.id = "d1", .deadline_at = "123"},
                     {.id = "d2", .deadline_after = "5000"}});
  int64_t now = r.elements[0].integer;
  EXPECT_EQ(Field("s", "state"), "scheduled");
  EXPECT_EQ(conn_->Command({"ZSCORE", QueueKeys("q").Scheduled(), "s"})->str,
            std::to_string(later));
  EXPECT_TRUE(conn_->Command({"ZSCORE", QueueKeys("q").Ready(), "s"})->IsNil());
  EXPECT_EQ(History("s")[0][6], "due at LATER");
  EXPECT_EQ(HistoryFields("s"), std::vector<std::string>{"s"})
      << "a scheduled job's event, with its note, is in its history";
  EXPECT_EQ(Field("s", "enq_actor"), "(nil)");
  EXPECT_EQ(Field("d1", "deadline"), "123");
  EXPECT_EQ(Field("d2", "deadline"), std::to_string(now + 5000));
}

TEST_F(RedisScriptTest, ClaimTakesByPriorityThenAgeUnderALease) {
  Enqueue({{.id = "01A"}, {.id = "01B"}, {.id = "01C", .prio = 5}});
  Reply r = Claim(2, "host:1:x", 1000);
  std::vector<ClaimedView> jobs = Claimed(r);
  ASSERT_EQ(jobs.size(), 2u);
  int64_t now = r.elements[0].integer;
  const ClaimedView& first = jobs[0];
  EXPECT_EQ(first.id, "01C") << "higher priority first";
  EXPECT_EQ(first.record.at("n"), "1") << "the token is the attempt number";
  EXPECT_EQ(first.record.at("prio"), "5");
  EXPECT_EQ(first.record.count("trigger"), 0u) << "initial: the default is left out";
  EXPECT_EQ(first.record.at("state"), "active") << "the record as the claim wrote it";
  EXPECT_EQ(first.record.at("worker"), "host:1:x");
  EXPECT_EQ(jobs[1].id, "01A") << "then the oldest";
  EXPECT_EQ(Field("01C", "state"), "active");
  EXPECT_EQ(Field("01C", "worker"), "host:1:x");
  EXPECT_EQ(Field("01C", "lease"), std::to_string(now + 1000));
  EXPECT_EQ(conn_->Command({"ZSCORE", QueueKeys("q").Active(), "01C"})->str,
            std::to_string(now + 1000));
  EXPECT_EQ(first.spec.at("payload"), "{}") << "the payload, in the job's unchanging part";
  EXPECT_EQ(Field("01C", "payload"), "{}");
  EXPECT_EQ(Field("01C", "updated"), std::to_string(now)) << "when the attempt started";
  EXPECT_EQ(History("01C").size(), 1u)
      << "the claim writes no record: the attempt's start is written with its end";
  EXPECT_EQ(Claimed(Claim(10)).size(), 1u) << "only 01B is left";
  EXPECT_EQ(Claim(10).elements.size(), 1u) << "nothing left: just the time";
  EXPECT_EQ(conn_->Command({"HGET", QueueKeys("q").Counters(), "attempts"})->str, "3");
  EXPECT_EQ(conn_->Command({"HGET", QueueKeys("q").Counters(), "attempts_initial"})->str, "3");
}

TEST_F(RedisScriptTest, ClaimMakesScheduledJobsReadyOnlyWhenDue) {
  int64_t soon = Now() + 300;
  Enqueue({{.id = "s", .run_at = std::to_string(soon), .note = "due at SOON"}});
  EXPECT_EQ(Claim(1).elements.size(), 1u) << "not due yet";
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  Reply r = Claim(1);
  std::vector<ClaimedView> jobs = Claimed(r);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].id, "s");
  EXPECT_EQ(jobs[0].record.at("run_at"), std::to_string(soon));
  EXPECT_GE(r.elements[0].integer, soon) << "claimed when due";
  std::vector<Json> h = History("s");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[1][2], "scheduled");
  EXPECT_EQ(h[1][3], "ready");
  EXPECT_EQ(h[1][4], "due");
  EXPECT_EQ(h[1][5], "system");
}

TEST_F(RedisScriptTest, EndAttemptTakesABatchAndCountsOnce) {
  Enqueue({{.id = "one"}, {.id = "two"}, {.id = "three"}});
  Claim(3);
  QueueKeys k("q");
  std::vector<std::string> args;
  for (const auto& [id, token] : std::vector<std::pair<std::string, std::string>>{
           {"one", "1"}, {"two", "2"}, {"three", "1"}}) {
    std::vector<std::string> one = {std::to_string(Now()),
                                    id,
                                    token,
                                    "w1",
                                    "failure",
                                    "1",
                                    "dead",
                                    "dead",
                                    "",
                                    "",
                                    "",
                                    "0",
                                    R"(["x",1,0,"failed",null,null])",
                                    "failed,dead_x",
                                    R"(["permanent","X","boom","boom"])",
                                    "permanent_error",
                                    R"(["evidence line"])",
                                    "",
                                    ""};
    args.insert(args.end(), one.begin(), one.end());
  }
  Result<Reply> r =
      conn_->Eval(end_,
                  {k.prefix(), k.Counters(), k.Unique(), k.Active(), k.Ready(), k.RetryWait(),
                   k.State(JobState::kCompleted), k.State(JobState::kDead), k.Signal()},
                  args);
  ASSERT_TRUE(r.ok() && !r->IsError()) << (r.ok() ? r->str : r.status().ToString());
  ASSERT_EQ(r->elements.size(), 3u) << "one reply per job, in order";
  EXPECT_EQ(r->elements[0].integer, 1);
  EXPECT_EQ(r->elements[1].elements[0].integer, 0) << "token 2 is not two's";
  EXPECT_EQ(r->elements[1].elements[2].integer, 1);
  EXPECT_EQ(r->elements[2].integer, 1);
  EXPECT_EQ(Field("one", "state"), "dead");
  EXPECT_EQ(Field("one", "dead_reason"), "permanent_error");
  EXPECT_EQ(Field("one", "err_code"), "X");
  EXPECT_EQ(Field("two", "state"), "active");
  EXPECT_EQ(conn_->Command({"HGET", k.Counters(), "dead_x"})->str, "2");
  EXPECT_EQ(conn_->Command({"HGET", k.Counters(), "failed"})->str, "2");
  EXPECT_EQ(conn_->Command({"HGET", k.Counters(), "stale_refused"})->str, "1");
}

TEST_F(RedisScriptTest, EndAttemptWritesTheStartRecordTheStoreMadeOnce) {
  Enqueue({{.id = "a"}, {.id = "b"}});
  Claim(2);
  start_ = R"(["a",1,"initial","w1",1796529820374,3])";
  EXPECT_EQ(End("a", 1, "completed", "succeeded", "completed").integer, 1);
  std::vector<Json> h = History("a");
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[1], Json::parse(start_)) << "as given, before the end";
  EXPECT_EQ(h[2][0], "x");
  EXPECT_EQ(HistoryFields("a"), (std::vector<std::string>{"a#1"}))
      << "attempt 1's records in a field of their own (the enqueue event is in the spec)";
  // A refusal while b runs writes b's start (made by the script); its end
  // then does not write another, whatever the store gives.
  EXPECT_EQ(End("b", 9, "completed", "succeeded", "completed").elements[0].integer, 0);
  EXPECT_EQ(End("b", 1, "completed", "succeeded", "completed").integer, 1);
  h = History("b");
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[1][0], "a");
  EXPECT_EQ(h[1][3], "w1");
  EXPECT_EQ(h[2][4], "stale_lease_refused");
  EXPECT_EQ(h[3][0], "x");
}

TEST_F(RedisScriptTest, EndAttemptRefusesAnotherClaimWithTheSameToken) {
  // A job cancelled, removed and enqueued again under its id, then claimed:
  // token 1 again, but not the attempt the caller ran.
  Enqueue({{.id = "a"}});
  Reply claimed = Claim(1);
  const std::string started = Claimed(claimed).at(0).record.at("updated");
  started_ = std::to_string(std::stoll(started) - 1);
  Reply r = End("a", 1, "completed", "succeeded", "completed");
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].integer, 0);
  EXPECT_EQ(Field("a", "state"), "active");
  EXPECT_EQ(History("a").back()[6],
            "completion with lease token 1 refused: the job is active under token 1 of "
            "another claim");
  started_ = started;
  EXPECT_EQ(End("a", 1, "completed", "succeeded", "completed").integer, 1);
  EXPECT_EQ(Field("a", "state"), "completed");
}

TEST_F(RedisScriptTest, EndAttemptWithoutATargetStateOnlyRecordsARefusal) {
  Enqueue({{.id = "a"}});
  Claim(1);
  // The caller read the job before this claim and found its lease stale:
  // even though token 1 is now current, nothing is applied.
  Reply r = End("a", 1, "", "refused", "");
  EXPECT_EQ(r.elements[0].integer, 0);
  EXPECT_EQ(r.elements[1].str, "active");
  EXPECT_EQ(Field("a", "state"), "active");
  EXPECT_EQ(History("a").back()[4], "stale_lease_refused");
}

TEST_F(RedisScriptTest, EndAttemptAppliesTheDecisionUnderTheLease) {
  Enqueue({{.id = "ok", .unique = "u1"}, {.id = "retry"}, {.id = "gone", .unique = "u2"}});
  Claim(3);
  EXPECT_EQ(End("ok", 1, "completed", "succeeded", "completed").integer, 1);
  EXPECT_EQ(Field("ok", "state"), "completed");
  EXPECT_EQ(Field("ok", "worker"), "(nil)");
  EXPECT_TRUE(conn_->Command({"HGET", QueueKeys("q").Unique(), "u1"})->IsNil())
      << "a finished job frees its unique key";
  EXPECT_TRUE(conn_->Command({"ZSCORE", QueueKeys("q").Active(), "ok"})->IsNil());
  std::vector<Json> h = History("ok");
  EXPECT_EQ(h.back()[0], "x") << "the end record carries the event";
  EXPECT_EQ(h.back()[1], 1);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[1][0], "a") << "the attempt's start, written with its end";
  EXPECT_EQ(h[1][1], 1);
  EXPECT_EQ(h[1][2], "initial");
  EXPECT_EQ(h[1][3], "w1");

  int64_t later = Now() + 60'000;
  EXPECT_EQ(End("retry", 1, "retry_wait", "retry_scheduled", "failed,retries_scheduled",
                std::to_string(later))
                .integer,
            1);
  EXPECT_EQ(Field("retry", "state"), "retry_wait");
  EXPECT_EQ(Field("retry", "run_at"), std::to_string(later));
  EXPECT_EQ(Field("retry", "trigger"), "auto");
  EXPECT_EQ(Field("retry", "err_code"), "X");
  EXPECT_EQ(conn_->Command({"ZSCORE", QueueKeys("q").RetryWait(), "retry"})->str,
            std::to_string(later));

  EXPECT_EQ(
      End("gone", 1, "dead", "dead", "failed,dead_permanent_error", "", "1", "permanent_error")
          .integer,
      1);
  EXPECT_EQ(Field("gone", "dead_reason"), "permanent_error");
  EXPECT_EQ(Field("gone", "dead_evidence"), R"(["evidence line"])");
  EXPECT_TRUE(conn_->Command({"HGET", QueueKeys("q").Unique(), "u2"})->IsNil());
  Reply c = *conn_->Command({"HGETALL", QueueKeys("q").Counters()});
  std::map<std::string, std::string> counters;
  for (size_t i = 0; i + 1 < c.elements.size(); i += 2)
    counters[c.elements[i].str] = c.elements[i + 1].str;
  EXPECT_EQ(counters["completed"], "1");
  EXPECT_EQ(counters["failed"], "2");
  EXPECT_EQ(counters["retries_scheduled"], "1");
  EXPECT_EQ(counters["dead_permanent_error"], "1");
}

TEST_F(RedisScriptTest, EndAttemptRefusesAStaleLeaseAndRecordsItOnlyWhenAsked) {
  Enqueue({{.id = "a"}});
  Claim(1);
  EXPECT_EQ(End("a", 1, "completed", "succeeded", "completed").integer, 1);
  Reply stale = End("a", 1, "completed", "succeeded", "completed");
  ASSERT_EQ(stale.elements.size(), 3u);
  EXPECT_EQ(stale.elements[0].integer, 0);
  EXPECT_EQ(stale.elements[1].str, "completed");
  EXPECT_EQ(stale.elements[2].integer, 1);
  std::vector<Json> h = History("a");
  EXPECT_EQ(h.back()[4], "stale_lease_refused");
  EXPECT_EQ(h.back()[3], "") << "a refusal moves nothing";
  EXPECT_EQ(h.back()[6], "completion with lease token 1 refused: the job is completed");
  size_t before = History("a").size();
  EXPECT_EQ(End("a", 7, "completed", "succeeded", "completed", "", "0").elements[0].integer, 0);
  EXPECT_EQ(History("a").size(), before) << "a racing recoverer's refusal is not recorded";
  EXPECT_EQ(conn_->Command({"HGET", QueueKeys("q").Counters(), "stale_refused"})->str, "1");
  EXPECT_EQ(End("nope", 1, "completed", "succeeded", "completed").integer, -1);
}

TEST_F(RedisScriptTest, AnAttemptsStartIsWrittenOnceBeforeWhatIsRecordedWhileItRuns) {
  Enqueue({{.id = "a"}});
  Reply claimed = Claim(1, "w1");
  const int64_t started = claimed.elements[0].integer;
  const int64_t lateness = started - ToInt(Claimed(claimed).at(0).record.at("run_at"));
  EXPECT_EQ(History("a").size(), 1u) << "the claim writes no record";
  // A stale report while attempt 1 runs: attempt 1's start goes first.
  EXPECT_EQ(End("a", 7, "completed", "succeeded", "completed").elements[0].integer, 0);
  std::vector<Json> h = History("a");
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[1], Json::parse(R"(["a",1,"initial","w1",)" + std::to_string(started) + "," +
                              std::to_string(lateness) + "]"));
  EXPECT_EQ(h[2][4], "stale_lease_refused");
  EXPECT_EQ(Field("a", "start_written"), "1") << "marks the start as written";
  EXPECT_EQ(End("a", 1, "completed", "succeeded", "completed").integer, 1);
  h = History("a");
  ASSERT_EQ(h.size(), 4u) << "the end adds only its own record";
  EXPECT_EQ(h[3][0], "x");
  EXPECT_EQ(Field("a", "start_written"), "(nil)");
}

TEST_F(RedisScriptTest, AnEndOnTheTextKeepsWhatWasRecordedWhileItsAttemptRan) {
  // As above, with an end that changes nothing in the record's rest (no
  // delay to set): the text path, which reads the attempt's history field
  // only when something was written there already (its start).
  last_delay_ = "";
  Enqueue({{.id = "a"}, {.id = "b"}});
  Claim(2, "w1");
  EXPECT_EQ(End("a", 7, "completed", "succeeded", "completed").elements[0].integer, 0);
  EXPECT_EQ(End("a", 1, "ready", "retry_scheduled", "failed", std::to_string(Now())).integer, 1);
  std::vector<Json> h = History("a");
  ASSERT_EQ(h.size(), 4u) << "enqueue, the start, the refusal, then the end";
  EXPECT_EQ(h[1][0], "a");
  EXPECT_EQ(h[2][4], "stale_lease_refused");
  EXPECT_EQ(h[3][0], "x");
  EXPECT_EQ(End("b", 1, "ready", "retry_scheduled", "failed", std::to_string(Now())).integer, 1);
  h = History("b");
  ASSERT_EQ(h.size(), 3u) << "enqueue, then the start and the end, in a field of their own";
  EXPECT_EQ(h[1][0], "a");
  EXPECT_EQ(h[2][0], "x");
  EXPECT_EQ(HistoryFields("b"), std::vector<std::string>{"b#1"});
}

TEST_F(RedisScriptTest, ASuccessWritesNoRecordsUntilSomethingFollowsIt) {
  Enqueue({{.id = "a", .unique = "u"}, {.id = "b"}});
  Reply claimed = Claim(2, "w1");
  const int64_t started = claimed.elements[0].integer;
  EXPECT_EQ(Complete("a", 1).integer, 1);
  EXPECT_EQ(Field("a", "state"), "completed");
  EXPECT_EQ(History("a").size(), 1u) << "only the enqueue event: the record stands for the rest";
  EXPECT_EQ(Field("a", "success_unwritten"), "1");
  EXPECT_EQ(Field("a", "started"), std::to_string(started));
  EXPECT_EQ(Field("a", "worker"), "w1");
  EXPECT_EQ(Field("a", "end_actor"), "(nil)") << "the attempt's own worker ended it";
  EXPECT_EQ(Field("a", "lease"), "(nil)");
  EXPECT_TRUE(conn_->Command({"HGET", QueueKeys("q").Unique(), "u"})->IsNil());
  EXPECT_TRUE(conn_->Command({"ZSCORE", QueueKeys("q").Active(), "a"})->IsNil());
  EXPECT_FALSE(
      conn_->Command({"ZSCORE", QueueKeys("q").State(JobState::kCompleted), "a"})->IsNil());
  EXPECT_EQ(Complete("b", 1, "operator-7").integer, 1);
  EXPECT_EQ(Field("b", "end_actor"), "operator-7");

  // A late second report: the success's records are written first, so the
  // refusal reads after them.
  Reply stale = Complete("a", 1);
  ASSERT_EQ(stale.elements.size(), 3u);
  EXPECT_EQ(stale.elements[0].integer, 0);
  EXPECT_EQ(stale.elements[1].str, "completed");
  std::vector<Json> h = History("a");
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[1][0], "a");
  EXPECT_EQ(h[1][4], started);
  EXPECT_EQ(h[2][0], "x");
  EXPECT_EQ(h[2][3], "succeeded");
  EXPECT_EQ(h[3][4], "stale_lease_refused");
  EXPECT_EQ(Field("a", "success_unwritten"), "(nil)");
  EXPECT_EQ(Field("a", "worker"), "(nil)");
  EXPECT_EQ(Complete("a", 1).elements[0].integer, 0);
  EXPECT_EQ(History("a").size(), 5u) << "written once: the next refusal adds only itself";
  EXPECT_EQ(Complete("nope", 1).integer, -1);
}

TEST(RedisRecordTest, ARecordDecodesIntoFieldsAndSkipsWhatItDoesNotKnow) {
  nlohmann::json record = {{"s", "ready"}, {"n", 2}, {"d", "{}"}, {"later", "x"}, {"u", 1.5}};
  std::vector<uint8_t> packed = nlohmann::json::to_msgpack(record);
  std::optional<std::map<std::string, std::string>> f =
      DecodeRecord(std::string_view(reinterpret_cast<const char*>(packed.data()), packed.size()));
  ASSERT_TRUE(f) << "a name added by a later version does not make the job unreadable";
  EXPECT_EQ(
      *f, (std::map<std::string, std::string>{{"state", "ready"}, {"n", "2"}, {"payload", "{}"}}));
  EXPECT_FALSE(DecodeRecord("not msgpack \xc1"));
  std::vector<uint8_t> list = nlohmann::json::to_msgpack(nlohmann::json::array({1, 2}));
  EXPECT_FALSE(
      DecodeRecord(std::string_view(reinterpret_cast<const char*>(list.data()), list.size())))
      << "a record is a map";
}

TEST(RedisRecordTest, AStringCutShortIsMalformedNotReadAsWhatFollows) {
  // {"n": str8 of 5 bytes} with one byte left, a valid integer on its own.
  const std::string cut("\x81\xa1n\xd9\x05\x01", 6);
  EXPECT_FALSE(DecodeRecord(cut));
}

TEST(RedisRecordTest, EveryIntegerWidthAndNestedValuesDecode) {
  nlohmann::json record = {{"n", -1},
                           {"r", 1796529820374},
                           {"pr", -200},
                           {"l", 65'536},
                           {"b", -40'000},
                           {"st", 200},
                           {"ld", 4'000'000'000},
                           {"da", -5'000'000'000},
                           {"later", {{"nested", {1, 2, {{"deep", "x"}}}}}},
                           {"k", std::string(300, 'k')},
                           {"d", std::string(70'000, 'd')},
                           {"e", R"(["temporary","X","boom","sig"])"}};
  std::vector<uint8_t> packed = nlohmann::json::to_msgpack(record);
  std::string_view text(reinterpret_cast<const char*>(packed.data()), packed.size());
  std::optional<std::map<std::string, std::string>> f = DecodeRecord(text);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->at("n"), "-1");
  EXPECT_EQ(f->at("run_at"), "1796529820374");
  EXPECT_EQ(f->at("prio"), "-200");
  EXPECT_EQ(f->at("lease"), "65536");
  EXPECT_EQ(f->at("budget"), "-40000");
  EXPECT_EQ(f->at("streak"), "200");
  EXPECT_EQ(f->at("last_delay"), "4000000000");
  EXPECT_EQ(f->at("dead_at"), "-5000000000");
  EXPECT_EQ(f->at("unique").size(), 300u);
  EXPECT_EQ(f->at("payload").size(), 70'000u);
  EXPECT_EQ(f->at("err_code"), "X");
  EXPECT_EQ(f->at("err_sig"), "sig");
  for (size_t cut = 0; cut < packed.size(); cut += 97) {
    EXPECT_FALSE(DecodeRecord(text.substr(0, cut))) << "cut at " << cut;
  }
}

std::string Packed(const nlohmann::json& map) {
  std::vector<uint8_t> packed = nlohmann::json::to_msgpack(map);
  return std::string(packed.begin(), packed.end());
}

TEST(RedisRecordTest, ARecordsTextDecodesWithItsMessagePackRest) {
  // s,n,u,l,sa,w,tr,r,pr,a,EL,E then the rest (lua/include/record.lua).
  const std::string error = R"(["temporary","X","boom","sig"])";
  std::string text = "active,2,100,200,,w%2C1%25,auto,50,-3,2," + std::to_string(error.size()) +
                     "," + error + Packed({{"k", "u1"}});
  std::optional<std::map<std::string, std::string>> f = DecodeRecord(text);
  ASSERT_TRUE(f);
  EXPECT_EQ(*f, (std::map<std::string, std::string>{{"state", "active"},
                                                    {"n", "2"},
                                                    {"updated", "100"},
                                                    {"lease", "200"},
                                                    {"worker", "w,1%"},
                                                    {"trigger", "auto"},
                                                    {"run_at", "50"},
                                                    {"prio", "-3"},
                                                    {"start_written", "2"},
                                                    {"unique", "u1"},
                                                    {"error", R"(["temporary","X","boom","sig"])"},
                                                    {"err_class", "temporary"},
                                                    {"err_code", "X"},
                                                    {"err_msg", "boom"},
                                                    {"err_sig", "sig"}}));
  f = DecodeRecord("completed,1,300,,100,w1,,50,,,,");
  ASSERT_TRUE(f) << "no rest";
  EXPECT_EQ(f->at("started"), "100");
  EXPECT_EQ(f->at("success_unwritten"), "1") << "sa set: the success is not written yet";
  EXPECT_EQ(f->count("lease"), 0u) << "empty fields are absent";
  for (const char* bad :
       {"active,1,100", "active,x,100,,,w1,,50,,,,", "active,1,1e3,,,w1,,50,,,,",
        "active,1,100,,,w%2,,50,,,,", "active,1,100,,,w%zz,,50,,,,", "active,1,100,,,w1,,50,,,",
        "active,1,100,,,w1,,50,,,5,abc", "active,1,100,,,w1,,50,,,-1,abc",
        "active,1,100,,,w1,,50,,,,not a map", ""}) {
    EXPECT_FALSE(DecodeRecord(bad)) << bad;
  }
}

TEST_F(RedisScriptTest, WorkerIdsWithCommasAndPercentSignsSurviveTheRecord) {
  const std::string worker = "host,1%2C";
  Enqueue({{.id = "a"}, {.id = "b"}});
  Reply claimed = Claim(2, worker);
  ASSERT_EQ(Claimed(claimed).size(), 2u);
  EXPECT_EQ(Claimed(claimed)[0].record.at("worker"), worker);
  EXPECT_EQ(Field("a", "worker"), worker);
  EXPECT_EQ(Complete("a", 1, worker).integer, 1);
  EXPECT_EQ(Field("a", "state"), "completed");
  EXPECT_EQ(Field("a", "worker"), worker);
  EXPECT_EQ(Field("a", "end_actor"), "(nil)") << "its own worker ended it";
  EXPECT_EQ(Field("a", "started"), std::to_string(claimed.elements[0].integer));
  EXPECT_EQ(Complete("b", 1, "host,1").integer, 1);
  EXPECT_EQ(Field("b", "end_actor"), "host,1") << "another actor, though a prefix of the worker";
  EXPECT_EQ(Field("b", "worker"), worker);
}

TEST_F(RedisScriptTest, AJobNamedTwiceInOneCompletionIsCompletedOnce) {
  Enqueue({{.id = "a"}});
  Claim(1);
  QueueKeys k("q");
  Result<Reply> r = conn_->Eval(
      complete_, {k.prefix(), k.Counters(), k.Unique(), k.Active(), k.State(JobState::kCompleted)},
      {now_, "w1", "a", "1", "a", "1"});
  ASSERT_TRUE(r.ok() && !r->IsError());
  ASSERT_EQ(r->elements.size(), 3u);
  EXPECT_EQ(r->elements[1].integer, 1);
  EXPECT_EQ(r->elements[2].elements.at(0).integer, 0) << "the second sees the first's success";
  EXPECT_EQ(r->elements[2].elements.at(1).str, "completed");
  EXPECT_EQ(conn_->Command({"HGET", k.Counters(), "completed"})->str, "1");
}

TEST_F(RedisScriptTest, RecordsWrittenByAnEarlierVersionAreReadAndRewrittenAsText) {
  Enqueue({{.id = "a", .unique = "u"}, {.id = "b"}, {.id = "c"}});
  QueueKeys k("q");
  const int64_t t = Now() - 1000;
  // The earlier form: one MessagePack map per record.
  ASSERT_TRUE(conn_
                  ->Command({"HSET", k.Jobs(), "a",
                             Packed({{"s", "ready"}, {"u", t}, {"r", t}, {"k", "u"}}), "b",
                             Packed({{"s", "active"},
                                     {"n", 1},
                                     {"u", t + 5},
                                     {"l", t + 30'000},
                                     {"w", "w1"},
                                     {"r", t}}),
                             "c",
                             Packed({{"s", "completed"},
                                     {"n", 1},
                                     {"u", t + 9},
                                     {"sa", t + 5},
                                     {"m", 1},
                                     {"w", "w1"},
                                     {"r", t}})})
                  .ok());
  ASSERT_TRUE(conn_->Command({"ZREM", k.Ready(), "b", "c"}).ok());
  EXPECT_EQ(Field("c", "success_unwritten"), "1");

  std::vector<ClaimedView> jobs = Claimed(Claim(5));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].id, "a");
  EXPECT_EQ(jobs[0].record.at("n"), "1");
  EXPECT_EQ(jobs[0].record.at("unique"), "u") << "what the claim does not change is kept";
  EXPECT_EQ(jobs[0].record.at("run_at"), std::to_string(t));
  EXPECT_LT(static_cast<uint8_t>(conn_->Command({"HGET", k.Jobs(), "a"})->str.at(0)), 0x80)
      << "rewritten as text";
  EXPECT_EQ(Complete("a", 1).integer, 1);
  EXPECT_TRUE(conn_->Command({"HGET", k.Unique(), "u"})->IsNil());

  // b's lease is extended, its token checked, as before.
  Result<Reply> beat = conn_->Eval(heartbeat_, {k.prefix(), k.Active()},
                                   {std::to_string(t + 100), "5000", "b", "2", "b", "1"});
  ASSERT_TRUE(beat.ok() && !beat->IsError());
  ASSERT_EQ(beat->elements.size(), 2u);
  EXPECT_EQ(beat->elements[0].integer, 0) << "not its token";
  EXPECT_EQ(beat->elements[1].integer, 1);
  EXPECT_EQ(Field("b", "lease"), std::to_string(t + 5100));
  EXPECT_EQ(Complete("b", 1).integer, 1);
  EXPECT_EQ(Field("b", "state"), "completed");
  EXPECT_EQ(Field("b", "started"), std::to_string(t + 5));

  Reply stale = Complete("c", 1);
  ASSERT_EQ(stale.elements.size(), 3u);
  EXPECT_EQ(stale.elements[1].str, "completed");
  std::vector<Json> h = History("c");
  ASSERT_EQ(h.size(), 4u) << "enqueue, then the success's start and end, then the refusal";
  EXPECT_EQ(h[1][0], "a");
  EXPECT_EQ(h[1][4], t + 5);
  EXPECT_EQ(h[2][0], "x");
  EXPECT_EQ(h[2][2], t + 9);
  EXPECT_EQ(Field("c", "success_unwritten"), "(nil)");
}

TEST_F(RedisScriptTest, AFailureRewritesTheSameFieldsWithOrWithoutDecodingTheRecord) {
  // a's record is rewritten as text (lua/include/record.lua); b's is
  // decoded, because the script makes its start record (none given), then
  // because its success releases its unique key. Both must come out the same.
  now_ = std::to_string(Now());  // one time for both
  Enqueue({{.id = "a", .prio = 3}, {.id = "b", .prio = 3, .unique = "u"}});
  Reply claimed = Claim(2);
  ASSERT_EQ(Claimed(claimed).size(), 2u);
  const std::string started = std::to_string(claimed.elements[0].integer);
  last_delay_ = "0";
  started_ = started;
  const std::string given_start = R"(["a",1,"initial","w1",)" + started + ",0]";
  const std::string run_at = std::to_string(Now() + 5000);
  for (const char* id : {"a", "b"}) {
    start_ = id == std::string("a") ? given_start : "";
    EXPECT_EQ(End(id, 1, "ready", "retry_scheduled", "failed", run_at).integer, 1) << id;
  }
  std::map<std::string, std::string> a =
      *DecodeRecord(conn_->Command({"HGET", QueueKeys("q").Jobs(), "a"})->str);
  std::map<std::string, std::string> b =
      *DecodeRecord(conn_->Command({"HGET", QueueKeys("q").Jobs(), "b"})->str);
  EXPECT_EQ(b.at("unique"), "u") << "the rest is kept";
  b.erase("unique");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.at("state"), "ready");
  EXPECT_EQ(a.at("run_at"), run_at);
  EXPECT_EQ(a.at("trigger"), "auto");
  EXPECT_EQ(a.at("err_code"), "X");
  EXPECT_EQ(a.count("worker") + a.count("lease") + a.count("start_written"), 0u);
  EXPECT_EQ(History("a"), History("b"))
      << "the start, made by the store or the script, then the end";
  EXPECT_EQ(History("a").size(), 3u);
  for (const char* id : {"a", "b"}) {
    EXPECT_EQ(conn_->Command({"ZSCORE", QueueKeys("q").Ready(), id})->str,
              std::to_string(std::stoll(run_at) - 3 * (int64_t{1} << 44)))
        << "priority first, then the time";
  }
  // Attempt 2 ends in a success, through the same step: the error is kept.
  conn_->Command({"ZREM", QueueKeys("q").Ready(), "a", "b"}).value();
  conn_->Command({"ZADD", QueueKeys("q").Ready(), "0", "a", "1", "b"}).value();
  claimed = Claim(2);
  ASSERT_EQ(Claimed(claimed).size(), 2u);
  started_ = std::to_string(claimed.elements[0].integer);
  start_ = R"(["a",2,"auto","w1",)" + started_ + ",0]";
  for (const char* id : {"a", "b"}) {
    EXPECT_EQ(End(id, 2, "completed", "succeeded", "completed").integer, 1) << id;
    EXPECT_EQ(Field(id, "state"), "completed");
    EXPECT_EQ(Field(id, "err_code"), "X") << "the latest error stays";
  }
  EXPECT_TRUE(conn_->Command({"HGET", QueueKeys("q").Unique(), "u"})->IsNil());
}

TEST_F(RedisScriptTest, ALastDelayRecordedBeforeIsClearedByAFailureWithNone) {
  Enqueue({{.id = "a"}});
  Reply claimed = Claim(1);
  last_delay_ = "100";
  EXPECT_EQ(End("a", 1, "ready", "retry_scheduled", "failed", "1").integer, 1);
  EXPECT_EQ(Field("a", "last_delay"), "100");
  claimed = Claim(1);
  ASSERT_EQ(Claimed(claimed).size(), 1u);
  // Attempt 2 fails with no delay: the record's rest, which holds the old
  // one, must change, though the store gave the start record.
  last_delay_ = "0";
  started_ = std::to_string(claimed.elements[0].integer);
  start_ = R"(["a",2,"auto","w1",)" + started_ + ",0]";
  EXPECT_EQ(End("a", 2, "ready", "retry_scheduled", "failed", "1").integer, 1);
  EXPECT_EQ(Field("a", "last_delay"), "(nil)");
  EXPECT_EQ(Field("a", "n"), "2");
}

TEST_F(RedisScriptTest, HeartbeatExtendsOnlyCurrentLeases) {
  Enqueue({{.id = "a"}, {.id = "b"}});
  Claim(2, "w1", 1000);
  End("b", 1, "completed", "succeeded", "completed");
  QueueKeys k("q");
  now_ = std::to_string(Now());
  Result<Reply> r = conn_->Eval(heartbeat_, {k.prefix(), k.Active()},
                                {now_, "5000", "a", "1", "b", "1", "a", "9"});
  ASSERT_TRUE(r.ok() && !r->IsError());
  ASSERT_EQ(r->elements.size(), 3u);
  EXPECT_EQ(r->elements[0].integer, 1);
  EXPECT_EQ(r->elements[1].integer, 0);
  EXPECT_EQ(r->elements[2].integer, 0);
  EXPECT_EQ(Field("a", "lease"), std::to_string(std::stoll(now_) + 5000));
  EXPECT_EQ(conn_->Command({"ZSCORE", k.Active(), "a"})->str,
            std::to_string(std::stoll(now_) + 5000));
}

TEST_F(RedisScriptTest, ReplayTakesOnlyDeadOrCancelledJobsAndGuardsTheUniqueKey) {
  Enqueue({{.id = "d", .unique = "k"}, {.id = "live"}});
  Claim(1);
  End("d", 1, "dead", "dead", "failed,dead_permanent_error", "", "1", "permanent_error");
  EXPECT_EQ(Replay("live").elements[0].integer, 0);
  EXPECT_EQ(Replay("live").elements[1].str, "ready");
  EXPECT_EQ(Replay("nope").elements[0].integer, -1);
  Enqueue({{.id = "holder", .unique = "k"}});  // the dead job freed the key
  Reply held = Replay("d");
  EXPECT_EQ(held.elements[0].integer, 2);
  EXPECT_EQ(held.elements[1].str, "holder");
  EXPECT_EQ(Field("d", "state"), "dead") << "refused: nothing changed";
  Cancel("holder");
  EXPECT_EQ(Replay("d").elements[0].integer, 1);
  EXPECT_EQ(Field("d", "state"), "ready");
  EXPECT_EQ(Field("d", "trigger"), "manual");
  EXPECT_EQ(Field("d", "seq_start"), "2");
  EXPECT_EQ(Field("d", "dead_reason"), "(nil)");
  EXPECT_EQ(conn_->Command({"HGET", QueueKeys("q").Unique(), "k"})->str, "d");
  EXPECT_EQ(History("d").back()[4], "replayed");
}

TEST_F(RedisScriptTest, CancelStopsLiveJobsOnlyAndClosesARunningAttempt) {
  Enqueue({{.id = "a-running"}, {.id = "b-waiting", .unique = "u"}});
  Claim(1);  // equal scores: the lower id first
  ASSERT_EQ(Field("a-running", "state"), "active");
  EXPECT_EQ(Cancel("b-waiting").elements[0].integer, 1);
  EXPECT_EQ(Field("b-waiting", "state"), "cancelled");
  EXPECT_TRUE(conn_->Command({"HGET", QueueKeys("q").Unique(), "u"})->IsNil());
  EXPECT_EQ(Cancel("a-running").elements[0].integer, 1);
  std::vector<Json> h = History("a-running");
  EXPECT_EQ(h[h.size() - 2][0], "x") << "the running attempt is closed";
  EXPECT_EQ(h[h.size() - 2][1], 1) << "with its number filled in";
  EXPECT_EQ(Cancel("a-running").elements[0].integer, 0);
  EXPECT_EQ(Cancel("a-running").elements[1].str, "cancelled");
  EXPECT_EQ(Cancel("nope").elements[0].integer, -1);
  EXPECT_EQ(conn_->Command({"HGET", QueueKeys("q").Counters(), "cancelled"})->str, "2");
}

TEST_F(RedisScriptTest, RemoveDeletesFinishedJobsOnly) {
  Enqueue({{.id = "done"}, {.id = "gone"}, {.id = "live"}});
  Claim(1);
  End("done", 1, "completed", "succeeded", "completed");
  EXPECT_EQ(HistoryFields("done"), (std::vector<std::string>{"done#1"}));
  Cancel("gone");  // recorded before any claim: in the field named by the id alone
  EXPECT_EQ(HistoryFields("gone"), (std::vector<std::string>{"gone"}));
  QueueKeys k("q");
  EXPECT_EQ(Remove("purged", {"done", "gone", "live", "missing"}),
            (std::vector<std::string>{"done", "gone"}));
  EXPECT_EQ(Field("done", "state"), "(nil)");
  EXPECT_EQ(Field("done", "type"), "(nil)") << "the spec goes too";
  EXPECT_TRUE(HistoryFields("done").empty()) << "every history field goes";
  EXPECT_TRUE(HistoryFields("gone").empty());
  EXPECT_EQ(Field("live", "state"), "ready");
  EXPECT_EQ(History("live").size(), 1u) << "the enqueue event, from the spec that stays";
  EXPECT_EQ(conn_->Command({"HGET", k.Counters(), "purged"})->str, "2");
}

TEST_F(RedisScriptTest, AllHasOneEntryPerHundredJobsOfACall) {
  now_ = "1000000";
  std::vector<NewJobArgs> jobs(250);
  for (size_t i = 0; i < jobs.size(); ++i) jobs[i] = {.id = "j" + std::to_string(i), .check = ""};
  Reply r = Enqueue(jobs);
  ASSERT_EQ(r.elements.size(), 2u);
  EXPECT_EQ(r.elements[1].integer, 1024000000 + 249);
  std::vector<std::pair<std::string, std::string>> e = Entries();
  ASSERT_EQ(e.size(), 3u) << "100 jobs per entry";
  EXPECT_EQ(e[0].first, "1024000000");
  EXPECT_EQ(e[1].first, "1024000100");
  EXPECT_EQ(e[2].first, "1024000200");
  std::string last;
  for (int i = 200; i < 250; ++i) last += (i > 200 ? " j" : "j") + std::to_string(i);
  EXPECT_EQ(e[2].second, last);
  EXPECT_EQ(Number("j0"), "1024000000");
  EXPECT_EQ(Number("j199"), "1024000199");
  EXPECT_EQ(Field("j199", "all_first"), "1024000100") << "the spec names its entry";
  EXPECT_EQ(Field("j200", "all_first"), "1024000200");
  // A refused job takes no place: the next call's jobs are numbered on.
  r = Enqueue({{.id = "x"}, {.id = "j5"}, {.id = "y"}});
  ASSERT_EQ(r.elements.size(), 6u);
  EXPECT_EQ(r.elements[2].integer, 2) << "j5 exists";
  e = Entries();
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[3], std::make_pair(std::string("1024000250"), std::string("x y")));
  EXPECT_EQ(Number("y"), "1024000251");
}

TEST_F(RedisScriptTest, SpecsWrittenByTheProducerAreTheBytesTheScriptWouldWrite) {
  now_ = "1796548625000";  // numbers of 8 bytes in af
  std::vector<NewJobArgs> jobs(230);
  for (size_t i = 0; i < jobs.size(); ++i) {
    // Payloads of every MessagePack string form: fixstr, str 8 and str 16.
    jobs[i] = {
        .id = "j" + std::to_string(i), .payload = std::string(i * i % 400, 'p'), .check = ""};
    if (i % 7 == 3) jobs[i].run_at = "1796548999000", jobs[i].note = "due later";
    if (i % 11 == 5) jobs[i].prio = -4;
    if (i % 13 == 6) jobs[i].timeout = "70000";
  }
  Reply by_script = Enqueue(jobs, "q");
  Reply by_producer = Enqueue(jobs, "w", "0", /*written=*/true);
  ASSERT_EQ(by_script.elements.size(), 2u);
  ASSERT_EQ(by_producer.elements.size(), 2u);
  EXPECT_EQ(by_producer.elements[1].integer, by_script.elements[1].integer) << "the same numbers";
  for (const NewJobArgs& j : jobs) {
    for (const auto& hash : {&QueueKeys::Specs, &QueueKeys::Jobs, &QueueKeys::History}) {
      Reply a = *conn_->Command({"HGET", (QueueKeys("q").*hash)(), j.id});
      Reply b = *conn_->Command({"HGET", (QueueKeys("w").*hash)(), j.id});
      EXPECT_EQ(a.type, b.type) << j.id;
      EXPECT_EQ(a.str, b.str) << j.id;
    }
  }
  EXPECT_EQ(Field("j1", "all_first", "w"), "1839665792000000");
  EXPECT_EQ(Field("j101", "all_first", "w"), "1839665792000100");
  EXPECT_EQ(Entries("w"), Entries("q"));
  for (const std::string& key : {std::string("ready"), std::string("scheduled")}) {
    EXPECT_EQ(
        conn_->Command({"ZRANGE", "rt:{w}:" + key, "0", "-1", "WITHSCORES"})->elements.size(),
        conn_->Command({"ZRANGE", "rt:{q}:" + key, "0", "-1", "WITHSCORES"})->elements.size());
    Reply a = *conn_->Command({"ZRANGE", "rt:{q}:" + key, "0", "-1", "WITHSCORES"});
    Reply b = *conn_->Command({"ZRANGE", "rt:{w}:" + key, "0", "-1", "WITHSCORES"});
    for (size_t i = 0; i < a.elements.size() && i < b.elements.size(); ++i) {
      EXPECT_EQ(a.elements[i].str, b.elements[i].str) << key << " " << i;
    }
  }
  EXPECT_EQ(conn_->Command({"HGET", "rt:{w}:counters", "enqueued"})->str, "230");
}

TEST_F(RedisScriptTest, AWrittenCallLeavesARefusedJobsPlaceEmptyAndDeletesItsSpec) {
  now_ = "1000000";
  Enqueue({{.id = "holder", .unique = "u1"}});  // number 1024000000
  Reply r = Enqueue({{.id = "a", .check = ""},
                     {.id = "b", .unique = "u1", .check = ""},
                     {.id = "c", .unique = "u2", .check = ""},
                     {.id = "d", .unique = "u2", .check = ""},
                     {.id = "e", .check = ""}},
                    "q", "0", /*written=*/true);
  ASSERT_EQ(r.elements.size(), 10u) << "b and d refused";
  EXPECT_EQ(r.elements[1].integer, 1024000005) << "the last number reserved";
  EXPECT_EQ(r.elements[2].integer, 2);
  EXPECT_EQ(r.elements[3].integer, 2);
  EXPECT_EQ(r.elements[4].str, "holder");
  EXPECT_EQ(r.elements[6].integer, 4);
  EXPECT_EQ(r.elements[8].str, "c") << "held by a job of the same call";
  std::vector<std::pair<std::string, std::string>> e = Entries();
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[1], std::make_pair(std::string("1024000001"), std::string("a  c  e")))
      << "refused jobs keep their places empty";
  EXPECT_EQ(Number("e"), "1024000005");
  EXPECT_EQ(Field("e", "all_first"), "1024000001");
  QueueKeys k("q");
  for (const char* gone : {"b", "d"}) {
    EXPECT_EQ(conn_->Command({"HEXISTS", k.Specs(), gone})->integer, 0) << gone;
    EXPECT_EQ(conn_->Command({"HEXISTS", k.Jobs(), gone})->integer, 0) << gone;
  }
  EXPECT_EQ(conn_->Command({"HLEN", k.Specs()})->integer, 4);
  EXPECT_EQ(conn_->Command({"HGET", k.Counters(), "enqueued"})->str, "4");
  // A call with no job created adds no entry; its numbers are not given again.
  r = Enqueue({{.id = "f", .unique = "u1", .check = ""}}, "q", "0", /*written=*/true);
  ASSERT_EQ(r.elements.size(), 6u);
  EXPECT_EQ(Entries().size(), 2u);
  EXPECT_EQ(conn_->Command({"HEXISTS", k.Specs(), "f"})->integer, 0);
  Enqueue({{.id = "g"}});
  EXPECT_EQ(Number("g"), "1024000007");
}

TEST_F(RedisScriptTest, RemovingAJobEmptiesItsPlaceAndAnEntryWithNoneLeftGoes) {
  // Numbers of 4 bytes and of 8 (any date after 1970-02-19), each in the
  // spec's af as MessagePack packs it.
  for (const char* now : {"1000000", "1796548625000"}) {
    SCOPED_TRACE(now);
    ASSERT_TRUE(conn_->Command({"FLUSHALL"}).ok());
    now_ = now;
    Enqueue({{.id = "a", .check = ""}, {.id = "b", .check = ""}, {.id = "c", .check = ""}});
    Enqueue({{.id = "d"}});
    Enqueue({{.id = "old"}});
    Enqueue({{.id = "e", .check = ""}, {.id = "f", .check = ""}});
    Enqueue({{.id = "gg", .check = ""}, {.id = "g", .check = ""}});  // g first found inside gg
    QueueKeys k("q");
    // The earlier form: a job with an entry of its own and no af in its spec.
    ASSERT_TRUE(conn_
                    ->Command({"HSET", k.Specs(), "old",
                               Packed({{"t", "send"}, {"p", "none"}, {"d", "{}"}, {"c", 1000000}})})
                    .ok());
    for (const char* id : {"a", "b", "c", "d", "old", "e", "f", "gg", "g"}) Cancel(id);
    const std::string first = Number("a"), c = Number("c");
    auto remove = [&](const std::vector<std::string>& ids) {
      EXPECT_EQ(Remove("purged", ids), ids) << "all removed";
    };
    remove({"b", "g"});
    std::vector<std::pair<std::string, std::string>> e = Entries();
    ASSERT_EQ(e.size(), 5u);
    EXPECT_EQ(e[4].second, "gg ") << "the id g, not the g inside gg";
    EXPECT_EQ(e[0], std::make_pair(first, std::string("a  c"))) << "b's place is left empty";
    EXPECT_EQ(Number("c"), c) << "the others keep their numbers";
    remove({"a", "c", "old", "f"});
    e = Entries();
    ASSERT_EQ(e.size(), 3u) << "entries with no job left are gone, the earlier form's too";
    EXPECT_EQ(e[0].second, "d");
    EXPECT_EQ(e[1].second, "e ");
    remove({"d", "e", "gg"});
    EXPECT_TRUE(Entries().empty());
    EXPECT_EQ(conn_->Command({"HGET", k.Counters(), "purged"})->str, "9");
  }
}

TEST_F(RedisScriptTest, ManyJobsOfOneEntryAreRemovedInOneCall) {
  std::vector<NewJobArgs> jobs(100);
  for (size_t i = 0; i < jobs.size(); ++i) jobs[i] = {.id = "j" + std::to_string(i), .check = ""};
  Enqueue(jobs);
  std::vector<std::string> odd;
  for (size_t i = 0; i < jobs.size(); ++i) {
    Cancel(jobs[i].id);
    if (i % 2 == 1) odd.push_back(jobs[i].id);
  }
  const std::string j98 = Number("j98");
  EXPECT_EQ(Remove("trimmed", odd), odd);
  std::vector<std::pair<std::string, std::string>> e = Entries();
  ASSERT_EQ(e.size(), 1u);
  std::string left;
  for (int i = 0; i < 100; i += 2) left += (i > 0 ? "  j" : "j") + std::to_string(i);
  EXPECT_EQ(e[0].second, left + " ");
  EXPECT_EQ(Number("j98"), j98);
}

TEST_F(RedisScriptTest, ADueJobIsMadeReadyOnItsTextOrDecodedInTheEarlierForm) {
  now_ = "1000000";
  Enqueue({{.id = "s1", .run_at = "1000500", .unique = "u1", .note = "due at T"},
           {.id = "s2", .prio = 3, .run_at = "1000500", .note = "due at T"}});
  QueueKeys k("q");
  // s2's record in the MessagePack form of an earlier version.
  ASSERT_TRUE(
      conn_
          ->Command({"HSET", k.Jobs(), "s2",
                     Packed({{"s", "scheduled"}, {"u", 1000000}, {"r", 1000500}, {"pr", 3}})})
          .ok());
  now_ = "1000400";
  EXPECT_EQ(Claimed(Claim(10)).size(), 0u) << "not due yet";
  now_ = "1000600";
  std::vector<ClaimedView> jobs = Claimed(Claim(10));
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].id, "s2") << "by priority: its score came from the decoded record";
  EXPECT_EQ(jobs[0].record.at("run_at"), "1000500");
  EXPECT_EQ(jobs[1].id, "s1");
  EXPECT_EQ(jobs[1].record.at("run_at"), "1000500");
  EXPECT_EQ(jobs[1].record.at("unique"), "u1") << "the rest kept as it was";
  for (const char* id : {"s1", "s2"}) {
    std::vector<Json> h = History(id);
    ASSERT_EQ(h.size(), 2u) << id;
    EXPECT_EQ(h[1], Json::parse(R"(["e", 1000600, "scheduled", "ready", "due", "system", ""])"));
  }
}

TEST_F(RedisScriptTest, AClockGivenByTheStoreReplacesTheServers) {
  now_ = "1000000";
  Reply r = Enqueue({{.id = "s", .run_at = "1005000", .note = "due at +5s"}});
  EXPECT_EQ(r.elements[0].integer, 1000000);
  EXPECT_EQ(Field("s", "created"), "1000000");
  now_ = "1004999";
  EXPECT_EQ(Claim(1).elements.size(), 1u) << "due a millisecond later";
  now_ = "1005007";
  Reply c = Claim(1);
  ASSERT_EQ(Claimed(c).size(), 1u);
  EXPECT_EQ(c.elements[0].integer, 1005007) << "the claim's time is the given clock's";
  EXPECT_EQ(Claimed(c)[0].record.at("run_at"), "1005000");
  EXPECT_EQ(Claimed(c)[0].record.at("updated"), "1005007") << "the attempt's start";
}

// The store itself, on the server's clock (the conformance suite gives its
// stores a clock of their own).
TEST_F(RedisScriptTest, ABigBatchOnTheServersClockIsReadyAtOnceWithItsEvent) {
  Result<std::unique_ptr<Store>> store = OpenStore(server_->Url());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<NewJob> batch(40);
  for (NewJob& n : batch) {
    n.queue = "q";
    n.type = "send";
    n.payload = "{}";
  }
  const int64_t before = Now();
  Result<std::vector<EnqueueResult>> r = (*store)->Enqueue(batch, "producer-1");
  const int64_t after = Now();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const EnqueueResult& e : *r) {
    ASSERT_TRUE(e.created);
    Result<Job> j = (*store)->GetJob(e.id);
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    EXPECT_EQ(j->state, JobState::kReady);
    EXPECT_GE(ToUnixMillis(j->created_at), before);
    EXPECT_LE(ToUnixMillis(j->created_at), after);
    ASSERT_EQ(j->events.size(), 1u) << "its enqueue event, from its spec";
    EXPECT_EQ(j->events[0].actor, "producer-1");
  }
  Reply ready = *conn_->Command({"ZCARD", QueueKeys("q").Ready()});
  EXPECT_EQ(ready.integer, 40);
}

TEST_F(RedisScriptTest, AWrittenBatchWhoseScriptFailsLeavesNoSpecBehind) {
  Result<std::unique_ptr<Store>> store = OpenStore(server_->Url());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  // The unique keys' hash is not a hash: the script fails at its first job.
  ASSERT_TRUE(conn_->Command({"SET", QueueKeys("q").Unique(), "not a hash"}).ok());
  std::vector<NewJob> batch(40);
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].queue = "q";
    batch[i].type = "send";
    batch[i].payload = "{}";
    batch[i].unique_key = "u" + std::to_string(i);
  }
  Result<std::vector<EnqueueResult>> r = (*store)->Enqueue(batch, "producer-1");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("enqueue.lua"), std::string::npos) << r.status().message();
  EXPECT_EQ(conn_->Command({"HLEN", QueueKeys("q").Jobs()})->integer, 0);
  EXPECT_EQ(conn_->Command({"EXISTS", QueueKeys("q").Specs()})->integer, 0)
      << "the specs written in its transaction are deleted";
}

TEST_F(RedisScriptTest, RecoveryPassesOverAQueueWhoseLeasesCannotBeRead) {
  ManualClock clock(*ParseTime("2026-11-28T12:00:00.000Z"));
  StoreOptions options;
  options.clock = &clock;
  Result<std::unique_ptr<Store>> store = OpenStore(server_->Url(), options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  // "broken" is listed first and its active key is not a sorted set.
  ASSERT_TRUE(conn_->Command({"SADD", "rt:queues", "broken"}).ok());
  ASSERT_TRUE(conn_->Command({"SET", QueueKeys("broken").Active(), "not a sorted set"}).ok());
  NewJob job;
  job.queue = "q";
  job.type = "send";
  job.payload = "{}";
  std::string id = (*store)->Enqueue({&job, 1}, "producer-1")->at(0).id;
  ASSERT_EQ((*store)->Claim(ClaimRequest{"q", "w1", 1, Millis(1000)})->size(), 1u);
  clock.Advance(Millis(1001));
  Result<std::vector<RecoveredJob>> r = (*store)->RecoverExpired(10);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 1u) << "the other queues are recovered all the same";
  EXPECT_EQ(r->front().job_id, id);
}

}  // namespace
}  // namespace retraced::redis
