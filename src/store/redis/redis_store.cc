// The Redis store: opening, its connection pool, time, lookups and reading jobs.
#include "store/redis/redis_store.h"

#include <charconv>
#include <random>

#include "retraced/decide.h"
#include "retraced/json.h"
#include "store/embedded.h"
#include "store/redis/redis_fields.h"
#include "store/store_checks.h"

namespace retraced::redis {

namespace {
// The connection the calling thread's current store operation holds (see Borrow).
thread_local RedisStore::PooledConnection* current_connection = nullptr;
}  // namespace

RedisStore::RedisStore(std::unique_ptr<Connection> conn, const StoreOptions& options)
    : address_(conn->address()),
      options_(options),
      ids_(options.clock ? *options.clock : system_clock_, std::random_device{}()) {
  idle_.push_back(NewPooled(std::move(conn)));
}

std::unique_ptr<RedisStore::PooledConnection> RedisStore::NewPooled(
    std::unique_ptr<Connection> conn) {
  auto p = std::make_unique<PooledConnection>();
  p->conn = std::move(conn);
  for (const EmbeddedFile& f : RedisScriptFiles()) {
    p->scripts.emplace(std::string(f.name),
                       Script{std::string(f.name), std::string(f.text), std::string(f.sha1)});
  }
  return p;
}

RedisStore::Borrow::Borrow(RedisStore& store) : store_(store), previous_(current_connection) {
  {
    std::lock_guard lock(store_.pool_mu_);
    if (!store_.idle_.empty()) {
      mine_ = std::move(store_.idle_.back());
      store_.idle_.pop_back();
    }
  }
  if (!mine_) {
    Result<std::unique_ptr<Connection>> conn = Connection::Open(store_.address_);
    if (!conn.ok()) {
      status_ = conn.status();
      return;
    }
    mine_ = store_.NewPooled(std::move(*conn));
  }
  current_connection = mine_.get();
}

RedisStore::Borrow::~Borrow() {
  current_connection = previous_;
  if (!mine_) return;
  std::lock_guard lock(store_.pool_mu_);
  // Connections beyond what the busiest moment needed are few: keep up to 16.
  if (store_.idle_.size() < 16) store_.idle_.push_back(std::move(mine_));
}

Connection& RedisStore::Conn() { return *current_connection->conn; }

Script& RedisStore::ScriptNamed(std::string_view name) {
  return current_connection->scripts.find(name)->second;
}

Result<std::unique_ptr<RedisStore>> RedisStore::Open(std::string_view url,
                                                     const StoreOptions& options) {
  RETRACED_ASSIGN_OR_RETURN(RedisAddress address, ParseRedisUrl(url));
  RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(address));
  return std::unique_ptr<RedisStore>(new RedisStore(std::move(conn), options));
}

Result<TimePoint> RedisStore::NowLocked() {
  if (options_.clock) return options_.clock->Now();
  RETRACED_ASSIGN_OR_RETURN(Reply t, Conn().Command({"TIME"}));
  if (t.elements.size() != 2) return Status::Internal("TIME: unexpected reply");
  return FromUnixMillis(ToInt(t.elements[0].str) * 1000 + ToInt(t.elements[1].str) / 1000);
}

TimePoint RedisStore::Now() {
  Borrow borrowed(*this);
  if (!borrowed.status().ok()) return system_clock_.Now();
  Result<TimePoint> t = NowLocked();
  return t.ok() ? *t : system_clock_.Now();
}

std::string RedisStore::NowArg() { return options_.clock ? MsText(options_.clock->Now()) : ""; }

Result<Reply> RedisStore::Run(std::string_view script, const std::vector<std::string>& keys,
                              const std::vector<std::string>& args) {
  auto it = current_connection->scripts.find(script);
  if (it == current_connection->scripts.end()) {
    return Status::Internal("no script " + std::string(script));
  }
  RETRACED_ASSIGN_OR_RETURN(Reply r, Conn().Eval(it->second, keys, args));
  if (r.IsError()) return Status::Internal("script " + std::string(script) + ": " + r.str);
  return r;
}

Result<std::optional<std::string>> RedisStore::QueueOf(std::string_view id) {
  RETRACED_ASSIGN_OR_RETURN(auto found, QueuesOf({std::string(id)}));
  if (found.empty()) return std::optional<std::string>();
  return std::optional<std::string>(found.begin()->second);
}

// There is no id -> queue index (it cost about 100 bytes a job): every queue
// is asked, all in one pipelined round trip after the list of queues.
Result<std::map<std::string, std::string>> RedisStore::QueuesOf(
    const std::vector<std::string>& ids) {
  std::map<std::string, std::string> out;
  if (ids.empty()) return out;
  RETRACED_ASSIGN_OR_RETURN(std::vector<std::string> queues, Queues());
  std::vector<std::vector<std::string>> cmds;
  for (const std::string& q : queues) {
    QueueKeys k(q);
    for (const std::string& id : ids) cmds.push_back({"HEXISTS", k.Jobs(), id});
  }
  if (cmds.empty()) return out;
  RETRACED_ASSIGN_OR_RETURN(std::vector<Reply> r, Conn().Pipeline(cmds));
  size_t i = 0;
  for (const std::string& q : queues) {
    for (const std::string& id : ids) {
      if (r[i++].integer == 1) out.emplace(id, q);
    }
  }
  return out;
}

Result<std::vector<std::string>> RedisStore::ClaimedQueuesOf(
    std::span<const std::string_view> ids) {
  std::vector<std::string> out(ids.size());
  std::vector<std::string> unknown;
  std::vector<size_t> unknown_at;
  {
    std::lock_guard lock(cache_mu_);
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = claimed_.find(ids[i]);
      if (it != claimed_.end()) {
        out[i] = it->second.queue;
      } else {
        unknown.emplace_back(ids[i]);
        unknown_at.push_back(i);
      }
    }
  }
  if (unknown.empty()) return out;
  RETRACED_ASSIGN_OR_RETURN(auto looked_up, QueuesOf(unknown));
  for (size_t n = 0; n < unknown.size(); ++n) {
    auto it = looked_up.find(unknown[n]);
    if (it != looked_up.end()) out[unknown_at[n]] = it->second;
  }
  return out;
}

void RedisStore::RememberClaimed(std::vector<std::pair<std::string, Held>> jobs) {
  // Bounded: a worker holds at most a few thousand jobs; anything past that is
  // a leak (jobs claimed and never ended here), and a lookup is only slower.
  std::lock_guard lock(cache_mu_);
  if (claimed_.size() + jobs.size() > 100'000) claimed_.clear();
  for (auto& [id, held] : jobs) claimed_.insert_or_assign(std::move(id), std::move(held));
}

void RedisStore::ForgetClaimed(std::span<const std::string_view> ids) {
  std::lock_guard lock(cache_mu_);
  for (std::string_view id : ids) {
    auto it = claimed_.find(id);
    if (it != claimed_.end()) claimed_.erase(it);
  }
}

std::optional<RedisStore::Fields> RedisStore::TakeClaimedRecord(const std::string& id,
                                                                int64_t token) {
  Held held;
  {
    std::lock_guard lock(cache_mu_);
    auto it = claimed_.find(id);
    if (it == claimed_.end()) return std::nullopt;
    held = std::move(it->second);
    claimed_.erase(it);
  }
  // Decoded only now: most claimed jobs succeed, and a success needs none of it.
  std::optional<Fields> f = DecodeRecord(held.record, false);
  if (!f || IntField(*f, "n") != token) return std::nullopt;
  (*f)["policy"] = std::move(held.policy);
  return f;
}

Result<std::vector<std::string>> RedisStore::Queues() {
  RETRACED_ASSIGN_OR_RETURN(Reply r, Conn().Command({"SMEMBERS", std::string(kQueuesKey)}));
  std::vector<std::string> out;
  for (const Reply& e : r.elements) out.push_back(e.str);
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::optional<RedisStore::Fields>> RedisStore::LoadFields(const QueueKeys& k,
                                                                 std::string_view id) {
  RETRACED_ASSIGN_OR_RETURN(
      std::vector<Reply> r,
      Conn().Pipeline({{"HGET", k.Jobs(), std::string(id)}, {"HGET", k.Specs(), std::string(id)}}));
  // No record or no spec: the job is gone (or going: a purge removes both at
  // once, and this read can fall between the two).
  if (r[0].IsNil() || r[1].IsNil()) return std::optional<Fields>();
  std::optional<Fields> f = DecodeRecord(r[0].str);
  std::optional<Fields> spec = DecodeRecord(r[1].str);
  if (!f || !spec)
    return Status::Internal("the record of job " + std::string(id) + " is malformed");
  f->merge(*spec);
  (*f)["id"] = std::string(id);  // the hash field holds it
  return f;
}

Result<JobSummary> RedisStore::ToSummary(const std::string& queue, const Fields& f) {
  for (const char* required : {"id", "type", "state", "payload", "policy"}) {
    if (!f.count(required)) {
      return Status::Internal("a job record of queue " + queue + " has no field '" + required +
                              "'");
    }
  }
  JobSummary s;
  Job& j = s.job;
  j.id = Get(f, "id");
  j.queue = queue;
  j.type = Get(f, "type");
  RETRACED_ASSIGN_OR_RETURN(j.state, ParseJobState(Get(f, "state")));
  j.payload = Get(f, "payload");
  RETRACED_ASSIGN_OR_RETURN(j.policy, StoredPolicy(Get(f, "policy")));
  j.priority = static_cast<int>(IntField(f, "prio"));
  j.attempt_count = static_cast<int>(IntField(f, "n"));
  j.created_at = FromUnixMillis(IntField(f, "created"));
  s.updated_at = FromUnixMillis(IntField(f, "updated"));
  j.run_at = FromUnixMillis(IntField(f, "run_at"));
  j.unique_key = OptField(f, "unique");
  if (f.count("timeout")) j.timeout = Millis(IntField(f, "timeout"));
  if (f.count("deadline")) j.deadline_at = FromUnixMillis(IntField(f, "deadline"));
  if (f.count("err_class")) {
    Error e;
    RETRACED_ASSIGN_OR_RETURN(e.error_class, ParseErrorClass(Get(f, "err_class")));
    e.code = Get(f, "err_code");
    e.message = Get(f, "err_msg");
    s.last_error = std::move(e);
  }
  if (f.count("dead_reason")) {
    DeadInfo d;
    RETRACED_ASSIGN_OR_RETURN(d.reason, ParseDeadReason(Get(f, "dead_reason")));
    d.at = FromUnixMillis(IntField(f, "dead_at"));
    Result<Json> ev = ParseJson(f.count("dead_evidence") ? Get(f, "dead_evidence") : "[]");
    if (ev.ok() && ev->is_array()) {
      for (const Json& line : *ev) {
        if (line.is_string()) d.evidence.push_back(line.get<std::string>());
      }
    }
    j.dead = std::move(d);
  }
  if (f.count("rep_by")) {
    Replay r;
    r.by = Get(f, "rep_by");
    r.note = f.count("rep_note") ? Get(f, "rep_note") : "";
    r.at = FromUnixMillis(IntField(f, "rep_at"));
    RETRACED_RETURN_IF_ERROR(ParseReplayMode(Get(f, "rep_mode"), r));
    j.replay = std::move(r);
  }
  return s;
}

Result<Job> RedisStore::LoadJob(const std::string& queue, std::string_view id) {
  QueueKeys k(queue);
  RETRACED_ASSIGN_OR_RETURN(std::optional<Fields> f, LoadFields(k, id));
  if (!f) return Status::NotFound("no job " + std::string(id));
  RETRACED_ASSIGN_OR_RETURN(JobSummary s, ToSummary(queue, *f));
  // The history is in one field per attempt count, up to the record's
  // (docs/redis-schema.md); attempts claimed after the record was read are
  // left for the next read.
  std::vector<std::string> read = {"HMGET", k.History(), std::string(id)};
  for (int n = 1; n <= s.job.attempt_count; ++n) {
    read.push_back(std::string(id) + "#" + std::to_string(n));
  }
  RETRACED_ASSIGN_OR_RETURN(Reply hist, Conn().Command(read));
  if (hist.IsError())
    return Status::Internal("reading the history of job " + std::string(id) + ": " + hist.str);
  // A job ready at once has its 'enqueued' event in its spec (ea), not in
  // its history (enqueue.lua).
  if (auto by = f->find("enq_actor"); by != f->end()) {
    s.job.events.push_back(
        Event{s.job.created_at, std::nullopt, JobState::kReady, "enqueued", by->second, ""});
  }
  std::string records;
  for (const Reply& part : hist.elements) {
    if (part.IsNil()) continue;
    if (!records.empty()) records += '\n';
    records += part.str;
  }
  RETRACED_RETURN_IF_ERROR(ParseHistory(records, s.job));
  Job& j = s.job;
  // The running attempt has no start record until something is recorded
  // while it runs (usually its end): its record's fields stand for it.
  if (j.state == JobState::kActive &&
      (j.attempts.empty() || j.attempts.back().n != j.attempt_count)) {
    Attempt a;
    a.n = j.attempt_count;
    RETRACED_ASSIGN_OR_RETURN(a.trigger,
                              ParseTrigger(f->count("trigger") ? Get(*f, "trigger") : "initial"));
    a.worker = Get(*f, "worker");
    a.started_at = s.updated_at;
    a.lateness = Millis(IntField(*f, "updated") - IntField(*f, "run_at"));
    j.events.push_back(ClaimedEvent(a));
    j.attempts.push_back(std::move(a));
  }
  // A success's records are not written either (complete.lua), unless
  // something was recorded after it: the record keeps what they hold. The
  // history, read after the record, may hold them already (written in
  // between, before a refusal).
  const bool written = !j.attempts.empty() && j.attempts.back().n == j.attempt_count &&
                       j.attempts.back().ended_at.has_value();
  if (j.state == JobState::kCompleted && f->count("success_unwritten") && !written) {
    if (j.attempts.empty() || j.attempts.back().n != j.attempt_count) {
      Attempt a;
      a.n = j.attempt_count;
      RETRACED_ASSIGN_OR_RETURN(a.trigger,
                                ParseTrigger(f->count("trigger") ? Get(*f, "trigger") : "initial"));
      a.worker = Get(*f, "worker");
      a.started_at = FromUnixMillis(IntField(*f, "started"));
      a.lateness = Millis(IntField(*f, "started") - IntField(*f, "run_at"));
      j.events.push_back(ClaimedEvent(a));
      j.attempts.push_back(std::move(a));
    }
    Attempt& a = j.attempts.back();
    a.ended_at = s.updated_at;
    a.outcome = Outcome::kSucceeded;
    a.decision = SuccessDecision();
    j.events.push_back(Event{s.updated_at, JobState::kActive, JobState::kCompleted, "succeeded",
                             f->count("end_actor") ? Get(*f, "end_actor") : a.worker, ""});
  }
  return std::move(s.job);
}

Event RedisStore::ClaimedEvent(const Attempt& a) {
  return Event{a.started_at,
               JobState::kReady,
               JobState::kActive,
               "claimed",
               a.worker,
               "attempt " + std::to_string(a.n) + " (" + std::string(Name(a.trigger)) + ")"};
}

// The history records (docs/redis-schema.md): events ("e"), attempt
// starts ("a", which carry the 'claimed' event; written when the attempt
// ends, or before anything recorded while it runs) and attempt
// ends ("x", which carry the event of the move they made, unless written by a
// cancel, which records its own).
Status RedisStore::ParseHistory(std::string_view records, Job& job) {
  std::map<int, Attempt> attempts;
  const std::string bad = "bad history record of " + job.id;
  while (!records.empty()) {
    size_t end = records.find('\n');
    std::string_view item = records.substr(0, end);
    records = end == std::string_view::npos ? std::string_view() : records.substr(end + 1);
    Result<Json> rec = ParseJson(item);
    if (!rec.ok() || !rec->is_array() || rec->empty()) return Status::Internal(bad);
    const Json& r = *rec;
    const std::string kind = r[0];
    try {
      if (kind == "e") {
        Event e;
        e.at = FromUnixMillis(r[1].get<int64_t>());
        if (!r[2].get<std::string>().empty()) e.from = *ParseJobState(r[2].get<std::string>());
        if (!r[3].get<std::string>().empty()) e.to = *ParseJobState(r[3].get<std::string>());
        e.reason = r[4];
        e.actor = r[5];
        e.note = r[6];
        job.events.push_back(std::move(e));
      } else if (kind == "a") {
        Attempt& a = attempts[r[1].get<int>()];
        a.n = r[1];
        a.trigger = *ParseTrigger(r[2].get<std::string>());
        a.worker = r[3];
        a.started_at = FromUnixMillis(r[4].get<int64_t>());
        a.lateness = Millis(r[5].get<int64_t>());
        job.events.push_back(ClaimedEvent(a));
      } else if (kind == "x") {
        Attempt& a = attempts[r[1].get<int>()];
        a.ended_at = FromUnixMillis(r[2].get<int64_t>());
        if (!r[3].is_null()) a.outcome = *ParseOutcome(r[3].get<std::string>());
        if (!r[4].is_null()) a.error = *ErrorFromJson(r[4]);
        if (!r[5].is_null()) {
          a.decision = *DecisionFromJson(r[5]);
        } else if (a.outcome == Outcome::kSucceeded) {
          a.decision = SuccessDecision();
        }
        if (r.size() >= 10) {
          // A null actor is the attempt's own worker; a null note, the
          // decision's reason.
          std::string note = !r[9].is_null() ? r[9].get<std::string>()
                             : a.decision    ? a.decision->reason
                                             : "";
          job.events.push_back(
              Event{*a.ended_at, JobState::kActive, *ParseJobState(r[6].get<std::string>()), r[7],
                    r[8].is_null() ? a.worker : r[8].get<std::string>(), std::move(note)});
        }
      }
    } catch (const Json::exception&) {
      return Status::Internal(bad);
    }
  }
  for (auto& [n, a] : attempts) job.attempts.push_back(std::move(a));
  return Status::Ok();
}

}  // namespace retraced::redis
