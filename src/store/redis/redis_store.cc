// The Redis store: opening, time, reading jobs, and the job lifecycle.
#include "store/redis/redis_store.h"

#include <charconv>
#include <random>

#include "retraced/decide.h"
#include "retraced/json.h"
#include "store/embedded.h"
#include "store/store_checks.h"

namespace retraced::redis {
namespace {

using internal::StoredPolicy;

int64_t Ms(TimePoint t) { return ToUnixMillis(t); }
std::string MsText(TimePoint t) { return std::to_string(ToUnixMillis(t)); }

// Numbers read back from Redis; a malformed one reads as `fallback` rather than throwing.
int64_t ToInt(std::string_view text, int64_t fallback = 0) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && p == text.data() + text.size() ? v : fallback;
}

int64_t IntField(const std::map<std::string, std::string>& f, const std::string& key,
                 int64_t fallback = 0) {
  auto it = f.find(key);
  if (it == f.end() || it->second.empty()) return fallback;
  return ToInt(it->second, fallback);
}

// A field's text, empty when absent.
std::string Get(const std::map<std::string, std::string>& f, const std::string& key) {
  auto it = f.find(key);
  return it == f.end() ? std::string() : it->second;
}

std::optional<std::string> OptField(const std::map<std::string, std::string>& f,
                                    const std::string& key) {
  auto it = f.find(key);
  if (it == f.end()) return std::nullopt;
  return it->second;
}

std::string Str(const Reply& r) {
  return r.type == Reply::Type::kInteger ? std::to_string(r.integer) : r.str;
}

}  // namespace

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
    p->scripts.emplace(std::string(f.name), Script{std::string(f.name), std::string(f.text), ""});
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
    for (const std::string& id : ids) cmds.push_back({"EXISTS", k.Job(id)});
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

Result<std::map<std::string, std::string>> RedisStore::ClaimedQueuesOf(
    const std::vector<std::string>& ids) {
  std::map<std::string, std::string> out;
  std::vector<std::string> unknown;
  {
    std::lock_guard lock(cache_mu_);
    for (const std::string& id : ids) {
      auto it = claimed_queues_.find(id);
      if (it != claimed_queues_.end()) {
        out[id] = it->second;
      } else {
        unknown.push_back(id);
      }
    }
  }
  RETRACED_ASSIGN_OR_RETURN(auto looked_up, QueuesOf(unknown));
  out.merge(looked_up);
  return out;
}

void RedisStore::RememberClaimed(const std::string& id, const std::string& queue) {
  // Bounded: a worker holds at most a few thousand jobs; anything past that is
  // a leak (jobs claimed and never ended here), and a lookup is only slower.
  std::lock_guard lock(cache_mu_);
  if (claimed_queues_.size() >= 100'000) claimed_queues_.clear();
  claimed_queues_[id] = queue;
}

void RedisStore::ForgetClaimed(const std::string& id) {
  std::lock_guard lock(cache_mu_);
  claimed_queues_.erase(id);
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
  // The hash and the payload (the history's first element), in one round trip.
  RETRACED_ASSIGN_OR_RETURN(
      std::vector<Reply> r,
      Conn().Pipeline({{"HGETALL", k.Job(id)}, {"LINDEX", k.History(id), "0"}}));
  if (r[0].elements.empty()) return std::optional<Fields>();
  Fields f;
  for (size_t i = 0; i + 1 < r[0].elements.size(); i += 2)
    f[r[0].elements[i].str] = r[0].elements[i + 1].str;
  f["id"] = std::string(id);  // the key holds it
  if (!r[1].IsNil()) f["payload"] = r[1].str;
  return std::optional<Fields>(std::move(f));
}

Result<JobSummary> RedisStore::ToSummary(const std::string& queue, const Fields& f) {
  for (const char* required : {"id", "type", "state", "payload", "policy"}) {
    if (!f.count(required)) {
      return Status::Internal("a job hash of queue " + queue + " has no field '" + required + "'");
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
  RETRACED_ASSIGN_OR_RETURN(Reply hist, Conn().Command({"LRANGE", k.History(id), "1", "-1"}));
  RETRACED_RETURN_IF_ERROR(ParseHistory(hist.elements, s.job));
  return std::move(s.job);
}

// The history records after the payload (docs/redis-schema.md): events
// ("e"), attempt starts ("a", which carry the 'claimed' event) and attempt
// ends ("x", which carry the event of the move they made, unless written by a
// cancel, which records its own).
Status RedisStore::ParseHistory(const std::vector<Reply>& records, Job& job) {
  std::map<int, Attempt> attempts;
  const std::string bad = "bad history record of " + job.id;
  for (const Reply& item : records) {
    Result<Json> rec = ParseJson(item.str);
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
        job.events.push_back(
            Event{a.started_at, JobState::kReady, JobState::kActive, "claimed", a.worker,
                  "attempt " + std::to_string(a.n) + " (" + std::string(Name(a.trigger)) + ")"});
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
          // A null actor is the attempt's own worker.
          job.events.push_back(Event{*a.ended_at, JobState::kActive,
                                     *ParseJobState(r[6].get<std::string>()), r[7],
                                     r[8].is_null() ? a.worker : r[8].get<std::string>(), r[9]});
        }
      }
    } catch (const Json::exception&) {
      return Status::Internal(bad);
    }
  }
  for (auto& [n, a] : attempts) job.attempts.push_back(std::move(a));
  return Status::Ok();
}

Result<std::vector<EnqueueResult>> RedisStore::Enqueue(std::span<const NewJob> jobs,
                                                       std::string_view actor) {
  RETRACED_RETURN_IF_ERROR(internal::CheckActor("enqueue actor", actor));
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  // This machine's clock only dates generated ids and says which jobs are
  // for later; the script stamps every job with the server's time.
  const TimePoint now = options_.clock ? options_.clock->Now() : system_clock_.Now();
  RETRACED_ASSIGN_OR_RETURN(std::vector<Job> built, internal::BuildNewJobs(jobs, now, ids_));
  for (size_t i = 0; i < built.size(); ++i) {
    if (built[i].priority < -127 || built[i].priority > 127) {
      Status s = Status::InvalidArgument("priority must be from -127 to 127 in a Redis store");
      return built.size() == 1 ? s : s.WithContext("job " + std::to_string(i));
    }
  }
  std::vector<EnqueueResult> results(built.size());
  // Ids are unique across queues: look the producers' own ids up first
  // (generated ones are new by construction).
  std::vector<std::string> given;
  for (size_t i = 0; i < built.size(); ++i) {
    if (jobs[i].id) given.push_back(built[i].id);
  }
  RETRACED_ASSIGN_OR_RETURN(auto existing, QueuesOf(given));
  std::map<std::string, std::vector<size_t>> by_queue;
  for (size_t i = 0; i < built.size(); ++i) {
    if (existing.count(built[i].id)) {
      results[i] = EnqueueResult{built[i].id, false, "a job with id " + built[i].id + " exists"};
    } else {
      by_queue[built[i].queue].push_back(i);
    }
  }
  for (const auto& [queue, indexes] : by_queue) {
    // The queue is registered before its first job exists: lookups by id
    // ask every registered queue.
    RETRACED_ASSIGN_OR_RETURN(
        std::vector<Reply> seq,
        Conn().Pipeline({{"SADD", std::string(kQueuesKey), queue},
                         {"INCRBY", std::string(kSeqKey), std::to_string(indexes.size())}}));
    int64_t first = seq[1].integer - static_cast<int64_t>(indexes.size()) + 1;
    QueueKeys k(queue);
    std::vector<std::string> args = {NowArg(), std::string(actor), std::to_string(indexes.size())};
    for (size_t n = 0; n < indexes.size(); ++n) {
      const Job& j = built[indexes[n]];
      args.insert(
          args.end(),
          {j.id, j.type, j.payload, FormatPolicy(j.policy), std::to_string(j.priority),
           j.run_at > now ? MsText(j.run_at) : "", j.unique_key.value_or(""),
           j.timeout ? std::to_string(j.timeout->count()) : "",
           j.deadline_at ? MsText(*j.deadline_at) : "",
           j.policy.deadline ? std::to_string(j.policy.deadline->count()) : "",
           "due at " + FormatTime(j.run_at), std::to_string(first + static_cast<int64_t>(n))});
    }
    RETRACED_ASSIGN_OR_RETURN(Reply r, Run("enqueue.lua",
                                           {k.prefix(), k.Ready(), k.Scheduled(), k.Unique(),
                                            k.All(), k.Counters(), k.Signal()},
                                           args));
    for (size_t n = 0; n < indexes.size(); ++n) {
      const Reply& one = r.elements[n + 1];
      EnqueueResult& out = results[indexes[n]];
      out.id = one.elements[1].str;
      out.created = one.elements[0].integer == 1;
      out.note = one.elements[2].str;
    }
  }
  return results;
}

Result<std::vector<ClaimedJob>> RedisStore::Claim(const ClaimRequest& req) {
  RETRACED_RETURN_IF_ERROR(internal::CheckClaim(req));
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  QueueKeys k(req.queue);
  RETRACED_ASSIGN_OR_RETURN(
      Reply r,
      Run("claim.lua",
          {k.prefix(), k.Ready(), k.Scheduled(), k.RetryWait(), k.Active(), k.Counters()},
          {NowArg(), req.worker, std::to_string(req.max), std::to_string(req.lease.count())}));
  TimePoint now = FromUnixMillis(r.elements[0].integer);
  std::vector<ClaimedJob> out;
  for (size_t i = 1; i < r.elements.size(); ++i) {
    const std::vector<Reply>& e = r.elements[i].elements;
    ClaimedJob c;
    Job& j = c.job;
    j.id = e[0].str;
    j.queue = req.queue;
    j.type = e[1].str;
    j.payload = e[2].str;
    RETRACED_ASSIGN_OR_RETURN(j.policy, StoredPolicy(e[3].str));
    j.priority = static_cast<int>(ToInt(Str(e[4])));
    j.attempt_count = static_cast<int>(ToInt(Str(e[5])));
    j.state = JobState::kActive;
    j.created_at = FromUnixMillis(ToInt(Str(e[6])));
    j.run_at = FromUnixMillis(ToInt(Str(e[7])));
    if (!e[8].IsNil()) j.unique_key = e[8].str;
    if (!e[9].IsNil()) j.timeout = Millis(ToInt(Str(e[9])));
    if (!e[10].IsNil()) j.deadline_at = FromUnixMillis(ToInt(Str(e[10])));
    c.attempt.n = j.attempt_count;
    RETRACED_ASSIGN_OR_RETURN(c.attempt.trigger, ParseTrigger(e[11].str));
    c.attempt.worker = req.worker;
    c.attempt.started_at = now;
    c.attempt.lateness = Millis(e[12].integer);
    c.lease = Lease{j.id, j.attempt_count};
    c.lease_expires_at = now + req.lease;
    RememberClaimed(j.id, req.queue);
    out.push_back(std::move(c));
  }
  return out;
}

Result<RedisStore::EndPlan> RedisStore::PlanEnd(const std::string& queue, const std::string& id,
                                                int64_t token, Outcome outcome,
                                                const Classified& error, std::string_view actor,
                                                std::string_view event, std::string_view what,
                                                bool record_refusal, TimePoint now,
                                                const std::optional<Fields>& f) {
  QueueKeys k(queue);
  EndPlan plan;
  plan.id = id;
  plan.token = token;
  plan.what = std::string(what);
  std::vector<std::string>& keys = plan.keys;
  keys = {k.prefix(),
          k.Counters(),
          k.Unique(),
          k.Active(),
          k.Ready(),
          k.RetryWait(),
          k.State(JobState::kCompleted),
          k.State(JobState::kDead)};
  const bool current = f && Get(*f, "state") == "active" && IntField(*f, "n") == token;
  std::vector<std::string>& args = plan.args;
  args.resize(18);
  args[0] = MsText(now);
  args[1] = id;
  args[2] = std::to_string(token);
  args[3] = std::string(actor);
  args[4] = std::string(what);
  args[5] = record_refusal ? "1" : "0";
  if (current) {
    RETRACED_ASSIGN_OR_RETURN(RetryPolicy policy, StoredPolicy(Get(*f, "policy")));
    RetryContext ctx;
    ctx.job_id = id;
    ctx.attempt = static_cast<int>(token);
    ctx.run_in_sequence = static_cast<int>(token - IntField(*f, "seq_start", 1) + 1);
    if (f->count("budget")) ctx.budget = static_cast<int>(IntField(*f, "budget"));
    ctx.previous_delay = Millis(IntField(*f, "last_delay"));
    if (f->count("deadline")) ctx.deadline_at = FromUnixMillis(IntField(*f, "deadline"));
    const bool released =
        outcome == Outcome::kLeaseExpired && error.error.code == kCodeWorkerStopped;
    const bool lost = outcome == Outcome::kLeaseExpired && !released;
    ctx.lease_expired_in_row = lost ? static_cast<int>(IntField(*f, "streak")) + 1 : 0;
    ctx.poison_after = options_.poison_after;
    ctx.now = now;
    Decision d = Decide(policy, ctx, ToFailure(outcome, error));
    JobState to = d.action == Action::kRetry
                      ? (d.delay.count() == 0 ? JobState::kReady : JobState::kRetryWait)
                      : JobState::kDead;
    const std::string event_name = !event.empty()               ? std::string(event)
                                   : d.action == Action::kRetry ? "retry_scheduled"
                                                                : "dead";
    // The actor is left out (null) when it is the attempt's own worker.
    Json end = Json::array(
        {"x", token, Ms(now), Name(outcome), ToJson(error.error), ToJson(d), Name(to), event_name,
         actor == Get(*f, "worker") ? Json() : Json(std::string(actor)), d.reason});
    std::string counters = outcome == Outcome::kLeaseExpired ? "lease_expired" : "failed";
    counters += d.action == Action::kRetry ? ",retries_scheduled"
                                           : ",dead_" + std::string(Name(*d.dead_reason));
    args[6] = event_name;
    args[7] = std::string(Name(to));
    args[8] = d.next_run_at ? MsText(*d.next_run_at) : "";
    args[9] = d.action == Action::kRetry
                  ? std::string(Name(lost || released ? Trigger::kRecovery : Trigger::kAuto))
                  : "";
    args[10] = d.action == Action::kRetry ? std::to_string(d.delay.count()) : "";
    args[11] = std::to_string(released ? IntField(*f, "streak") : ctx.lease_expired_in_row);
    args[12] = DumpJson(end);
    args[13] = d.reason;
    args[14] = counters;
    args[15] = DumpJson(Json::array({Name(error.error.error_class), error.error.code,
                                     error.error.message, ErrorSignature(error.error.message)}));
    if (d.action == Action::kDead) {
      RETRACED_ASSIGN_OR_RETURN(Job job, LoadJob(queue, id));
      Attempt& last = job.attempts.back();
      last.ended_at = now;
      last.outcome = outcome;
      last.error = error.error;
      last.decision = d;
      args[16] = std::string(Name(*d.dead_reason));
      args[17] = DumpJson(Json(DeadEvidence(job.attempts, d)));
    }
    plan.ended = Ended{d, to};
  } else {
    args[6] = "refused";
    args[7] = "completed";
    args[12] = "[]";
    args[14] = "";
  }
  return plan;
}

Result<std::optional<RedisStore::Ended>> RedisStore::Applied(const EndPlan& plan, const Reply& r,
                                                             std::string* refusal) {
  if (r.IsError()) return Status::Internal("script end_attempt.lua: " + r.str);
  int64_t status = r.elements[0].integer;
  if (status == -1) return Status::NotFound("no job " + plan.id);
  if (status == 0) {
    if (refusal) {
      std::string state = r.elements[1].str;
      *refusal = "job " + plan.id + ": " + plan.what + " with lease token " +
                 std::to_string(plan.token) + " refused: the job is " + state +
                 (state == "active" ? " under token " + std::to_string(r.elements[2].integer) : "");
    }
    return std::optional<Ended>();
  }
  return plan.ended;
}

Result<std::optional<RedisStore::Ended>> RedisStore::EndWithDecision(
    const std::string& queue, const std::string& id, int64_t token, Outcome outcome,
    const Classified& error, std::string_view actor, std::string_view event, std::string_view what,
    bool record_refusal, std::string* refusal, const Fields* loaded) {
  RETRACED_ASSIGN_OR_RETURN(TimePoint now, NowLocked());
  std::optional<Fields> f;
  if (loaded) {
    f = *loaded;
  } else {
    RETRACED_ASSIGN_OR_RETURN(f, LoadFields(QueueKeys(queue), id));
  }
  RETRACED_ASSIGN_OR_RETURN(EndPlan plan, PlanEnd(queue, id, token, outcome, error, actor, event,
                                                  what, record_refusal, now, f));
  RETRACED_ASSIGN_OR_RETURN(Reply r, Run("end_attempt.lua", plan.keys, plan.args));
  if (r.elements.size() != 1) return Status::Internal("end_attempt.lua: unexpected reply");
  return Applied(plan, r.elements[0], refusal);
}

Result<std::vector<Status>> RedisStore::Complete(std::span<const Completion> items) {
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  std::vector<std::string> ids;
  for (const Completion& c : items) ids.push_back(c.lease.job_id);
  RETRACED_ASSIGN_OR_RETURN(auto queues, ClaimedQueuesOf(ids));
  // One complete.lua call per (queue, worker), all in one round trip.
  std::map<std::pair<std::string, std::string>, std::vector<size_t>> groups;
  for (size_t i = 0; i < items.size(); ++i) {
    auto q = queues.find(items[i].lease.job_id);
    if (q != queues.end()) groups[{q->second, items[i].worker}].push_back(i);
  }
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> calls;
  for (const auto& [group, indexes] : groups) {
    QueueKeys k(group.first);
    std::vector<std::string> args = {NowArg(), group.second, DumpJson(Json(group.second))};
    for (size_t i : indexes) {
      args.push_back(items[i].lease.job_id);
      args.push_back(std::to_string(items[i].lease.token));
    }
    calls.push_back(
        {{k.prefix(), k.Counters(), k.Unique(), k.Active(), k.State(JobState::kCompleted)},
         std::move(args)});
  }
  std::vector<Reply> replies;
  if (!calls.empty()) {
    RETRACED_ASSIGN_OR_RETURN(replies, Conn().EvalMany(ScriptNamed("complete.lua"), calls));
  }
  std::vector<Status> results(items.size(), Status::Ok());
  for (size_t i = 0; i < items.size(); ++i) {
    if (!queues.count(items[i].lease.job_id)) {
      results[i] = Status::NotFound("no job " + items[i].lease.job_id);
    }
  }
  size_t call = 0;
  for (const auto& [group, indexes] : groups) {
    const Reply& r = replies[call++];
    if (r.IsError()) return Status::Internal("script complete.lua: " + r.str);
    for (size_t n = 0; n < indexes.size(); ++n) {
      const Completion& c = items[indexes[n]];
      const Reply& one = r.elements[n + 1];
      ForgetClaimed(c.lease.job_id);
      if (one.type == Reply::Type::kInteger) {
        if (one.integer == -1) results[indexes[n]] = Status::NotFound("no job " + c.lease.job_id);
        continue;
      }
      const std::string& state = one.elements[1].str;
      results[indexes[n]] = Status::Conflict(
          "job " + c.lease.job_id + ": completion with lease token " +
          std::to_string(c.lease.token) + " refused: the job is " + state +
          (state == "active" ? " under token " + std::to_string(one.elements[2].integer) : ""));
    }
  }
  return results;
}

Result<FailResult> RedisStore::Fail(const FailRequest& req) {
  RETRACED_ASSIGN_OR_RETURN(std::vector<Result<FailResult>> one,
                            FailMany(std::span<const FailRequest>(&req, 1)));
  return std::move(one[0]);
}

Result<std::vector<Result<FailResult>>> RedisStore::FailMany(std::span<const FailRequest> reqs) {
  RETRACED_RETURN_IF_ERROR(internal::CheckFailures(reqs));
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  std::vector<std::string> ids;
  for (const FailRequest& r : reqs) ids.push_back(r.lease.job_id);
  RETRACED_ASSIGN_OR_RETURN(auto queues, ClaimedQueuesOf(ids));
  for (const std::string& id : ids) ForgetClaimed(id);
  // One round trip for the time and every job's hash, one for the scripts.
  std::vector<std::vector<std::string>> reads;
  if (!options_.clock) reads.push_back({"TIME"});
  for (const FailRequest& r : reqs) {
    auto q = queues.find(r.lease.job_id);
    if (q != queues.end()) reads.push_back({"HGETALL", QueueKeys(q->second).Job(r.lease.job_id)});
  }
  RETRACED_ASSIGN_OR_RETURN(std::vector<Reply> read, Conn().Pipeline(reads));
  size_t next = 0;
  TimePoint now;
  if (options_.clock) {
    now = options_.clock->Now();
  } else {
    const Reply& t = read[next++];
    if (t.elements.size() != 2) return Status::Internal("TIME: unexpected reply");
    now = FromUnixMillis(ToInt(t.elements[0].str) * 1000 + ToInt(t.elements[1].str) / 1000);
  }
  std::vector<std::optional<EndPlan>> plans(reqs.size());
  // One end_attempt.lua call per queue, taking that queue's jobs in order.
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> calls;
  std::map<std::string, size_t> call_of_queue;
  std::vector<std::pair<size_t, size_t>> slot(reqs.size());  // (call, position in its reply)
  for (size_t i = 0; i < reqs.size(); ++i) {
    const FailRequest& r = reqs[i];
    auto q = queues.find(r.lease.job_id);
    if (q == queues.end()) continue;
    const Reply& h = read[next++];
    std::optional<Fields> f;
    if (!h.elements.empty()) {
      f.emplace();
      for (size_t e = 0; e + 1 < h.elements.size(); e += 2) {
        (*f)[h.elements[e].str] = h.elements[e + 1].str;
      }
    }
    RETRACED_ASSIGN_OR_RETURN(plans[i], PlanEnd(q->second, r.lease.job_id, r.lease.token, r.outcome,
                                                r.error, r.worker, "", "failure", true, now, f));
    auto [c, added] = call_of_queue.emplace(q->second, calls.size());
    if (added) calls.push_back({plans[i]->keys, {}});
    std::vector<std::string>& args = calls[c->second].second;
    slot[i] = {c->second, args.size() / plans[i]->args.size()};
    args.insert(args.end(), plans[i]->args.begin(), plans[i]->args.end());
  }
  std::vector<Reply> replies;
  if (!calls.empty()) {
    RETRACED_ASSIGN_OR_RETURN(replies, Conn().EvalMany(ScriptNamed("end_attempt.lua"), calls));
  }
  for (const Reply& r : replies) {
    if (r.IsError()) return Status::Internal("script end_attempt.lua: " + r.str);
  }
  std::vector<Result<FailResult>> out;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (!plans[i]) {
      out.push_back(Status::NotFound("no job " + reqs[i].lease.job_id));
      continue;
    }
    const std::vector<Reply>& per_job = replies[slot[i].first].elements;
    if (slot[i].second >= per_job.size()) return Status::Internal("end_attempt.lua: short reply");
    std::string refusal;
    Result<std::optional<Ended>> ended = Applied(*plans[i], per_job[slot[i].second], &refusal);
    if (!ended.ok()) {
      if (ended.status().code() != StatusCode::kNotFound) return ended.status();
      out.push_back(ended.status());
    } else if (!*ended) {
      out.push_back(Status::Conflict(refusal));
    } else {
      out.push_back(FailResult{(*ended)->decision, (*ended)->state});
    }
  }
  return out;
}

Result<std::vector<Status>> RedisStore::Heartbeat(std::span<const Lease> leases, Millis lease) {
  RETRACED_RETURN_IF_ERROR(internal::CheckLeaseLength(lease));
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  std::vector<std::string> ids;
  for (const Lease& l : leases) ids.push_back(l.job_id);
  RETRACED_ASSIGN_OR_RETURN(auto queues, ClaimedQueuesOf(ids));
  // One heartbeat.lua call per queue, all in one round trip.
  std::map<std::string, std::vector<size_t>> by_queue;
  for (size_t i = 0; i < leases.size(); ++i) {
    auto q = queues.find(leases[i].job_id);
    if (q != queues.end()) by_queue[q->second].push_back(i);
  }
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> calls;
  for (const auto& [queue, indexes] : by_queue) {
    QueueKeys k(queue);
    std::vector<std::string> args = {NowArg(), std::to_string(lease.count())};
    for (size_t i : indexes) {
      args.push_back(leases[i].job_id);
      args.push_back(std::to_string(leases[i].token));
    }
    calls.push_back({{k.prefix(), k.Active()}, std::move(args)});
  }
  std::vector<bool> extended(leases.size(), false);
  if (!calls.empty()) {
    RETRACED_ASSIGN_OR_RETURN(std::vector<Reply> replies,
                              Conn().EvalMany(ScriptNamed("heartbeat.lua"), calls));
    size_t c = 0;
    for (const auto& [queue, indexes] : by_queue) {
      const Reply& r = replies[c++];
      if (r.IsError()) return Status::Internal("script heartbeat.lua: " + r.str);
      for (size_t n = 0; n < indexes.size(); ++n) extended[indexes[n]] = r.elements[n].integer == 1;
    }
  }
  std::vector<Status> results;
  for (size_t i = 0; i < leases.size(); ++i) {
    results.push_back(extended[i] ? Status::Ok()
                                  : Status::Conflict("job " + leases[i].job_id + ": lease token " +
                                                     std::to_string(leases[i].token) +
                                                     " is no longer the job's"));
  }
  return results;
}

Result<std::vector<Status>> RedisStore::Release(std::span<const Lease> leases,
                                                std::string_view worker) {
  RETRACED_RETURN_IF_ERROR(internal::CheckActor("worker id", worker));
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  std::vector<Status> results;
  for (const Lease& l : leases) {
    RETRACED_ASSIGN_OR_RETURN(std::optional<std::string> queue, QueueOf(l.job_id));
    ForgetClaimed(l.job_id);
    if (!queue) {
      results.push_back(Status::NotFound("no job " + l.job_id));
      continue;
    }
    QueueKeys k(*queue);
    RETRACED_ASSIGN_OR_RETURN(std::optional<Fields> f, LoadFields(k, l.job_id));
    RETRACED_ASSIGN_OR_RETURN(RetryPolicy policy, StoredPolicy(f ? Get(*f, "policy") : "none"));
    HandlerFailure stopped{
        ErrorClass::kTemporary, std::string(kCodeWorkerStopped),
        "worker " + std::string(worker) + " stopped before the attempt finished and released it",
        ""};
    std::string refusal;
    RETRACED_ASSIGN_OR_RETURN(
        std::optional<Ended> ended,
        EndWithDecision(*queue, l.job_id, l.token, Outcome::kLeaseExpired,
                        Classify(stopped, ClassifierConfig{}, policy), worker, "released",
                        "release", true, &refusal, f ? &*f : nullptr));
    results.push_back(ended ? Status::Ok() : Status::Conflict(refusal));
  }
  return results;
}

Result<std::vector<RecoveredJob>> RedisStore::RecoverExpired(int max) {
  RETRACED_RETURN_IF_ERROR(internal::CheckRecoverySize(max));
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  RETRACED_ASSIGN_OR_RETURN(TimePoint now, NowLocked());
  RETRACED_ASSIGN_OR_RETURN(std::vector<std::string> queues, Queues());
  std::vector<RecoveredJob> out;
  for (const std::string& queue : queues) {
    if (static_cast<int>(out.size()) >= max) break;
    QueueKeys k(queue);
    RETRACED_ASSIGN_OR_RETURN(
        Reply expired,
        Conn().Command({"ZRANGEBYSCORE", k.Active(), "-inf", std::to_string(Ms(now) - 1), "LIMIT",
                        "0", std::to_string(max - out.size())}));
    for (const Reply& e : expired.elements) {
      RETRACED_ASSIGN_OR_RETURN(std::optional<Fields> f, LoadFields(k, e.str));
      if (!f || Get(*f, "state") != "active") continue;
      RETRACED_ASSIGN_OR_RETURN(RetryPolicy policy, StoredPolicy(Get(*f, "policy")));
      std::string worker = f->count("worker") ? Get(*f, "worker") : "";
      HandlerFailure lost{ErrorClass::kTemporary, std::string(kCodeLeaseExpired),
                          "the lease of worker " + worker + " expired at " +
                              FormatTime(FromUnixMillis(IntField(*f, "lease"))),
                          ""};
      RETRACED_ASSIGN_OR_RETURN(
          std::optional<Ended> ended,
          EndWithDecision(queue, e.str, IntField(*f, "n"), Outcome::kLeaseExpired,
                          Classify(lost, options_.lease_expiry_classes, policy), "system",
                          "lease_expired", "recovery", false, nullptr, &*f));
      if (ended) out.push_back(RecoveredJob{e.str, worker, ended->decision, ended->state});
    }
  }
  return out;
}

}  // namespace retraced::redis
