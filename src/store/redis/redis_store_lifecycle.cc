// The Redis store's job lifecycle: enqueue, claim, complete, fail,
// heartbeat, release and recovery, each a script call fenced by the lease token.
#include <algorithm>
#include <mutex>
#include <optional>
#include <random>
#include <set>

#include "retraced/decide.h"
#include "retraced/json.h"
#include "store/redis/redis_fields.h"
#include "store/redis/redis_store.h"
#include "store/store_checks.h"

namespace retraced::redis {
namespace {

// Enqueue calls of at least this many jobs, all with generated ids, write
// their specs themselves (enqueue.lua, written); smaller ones do not save
// the round trip it costs.
constexpr size_t kWrittenSpecsFrom = 32;
// Specs per HSET when the producer writes them: small enough that the
// server starts on the first while the rest are packed.
constexpr size_t kSpecsPerCommand = 100;

}  // namespace

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
  // (generated ones are new by construction). The look-up and the scripts
  // are in another slot than each other, so this process runs them one
  // enqueue at a time; producers in other processes giving one id to two
  // queues at the same moment are not caught (docs/redis-schema.md).
  std::vector<std::string> given;
  for (size_t i = 0; i < built.size(); ++i) {
    if (jobs[i].id) given.push_back(built[i].id);
  }
  std::unique_lock<std::mutex> given_lock(given_ids_mu_, std::defer_lock);
  if (!given.empty()) given_lock.lock();
  RETRACED_ASSIGN_OR_RETURN(auto existing, QueuesOf(given));
  std::map<std::string, std::vector<size_t>> by_queue;
  std::set<std::string> in_batch;  // a second job with the same id is not added
  for (size_t i = 0; i < built.size(); ++i) {
    if (existing.count(built[i].id) || (jobs[i].id && !in_batch.insert(built[i].id).second)) {
      results[i] = EnqueueResult{built[i].id, false, "a job with id " + built[i].id + " exists"};
    } else {
      by_queue[built[i].queue].push_back(i);
    }
  }
  for (const auto& [queue, indexes] : by_queue) {
    QueueKeys k(queue);
    // A batch of generated ids has its specs written by this process, in
    // the script's transaction: the specs, payloads included, never become
    // Lua strings, which Redis hashes byte by byte (bench/README.md). That
    // takes a round trip more, for the server's time and the jobs' numbers.
    const bool written = indexes.size() >= kWrittenSpecsFrom &&
                         std::none_of(indexes.begin(), indexes.end(),
                                      [&](size_t n) { return jobs[n].id.has_value(); });
    std::string now_arg = NowArg();
    int64_t created_ms = 0;  // when written: the server's time, reserved
    int64_t first = last_seq_.load() + 1;
    if (written) {
      RETRACED_ASSIGN_OR_RETURN(
          Reply reserved,
          Conn().EvalAfter({"SADD", std::string(kQueuesKey), queue}, ScriptNamed("reserve.lua"),
                           {k.Seq()},
                           {now_arg, std::to_string(indexes.size()), std::to_string(first)}));
      if (reserved.IsError()) return Status::Internal("script reserve.lua: " + reserved.str);
      if (reserved.elements.size() != 2) return Status::Internal("reserve.lua: unexpected reply");
      created_ms = reserved.elements[0].integer;
      now_arg = std::to_string(created_ms);
      first = reserved.elements[1].integer;
    }
    std::vector<std::string> args = {now_arg, std::string(actor), std::to_string(indexes.size()),
                                     std::to_string(first), written ? "1" : ""};
    args.reserve(args.size() + 3 * indexes.size());
    // When written, the specs go out in commands of kSpecsPerCommand as they
    // are packed: the server reads one while this process packs the next.
    std::optional<Connection::Transaction> txn;
    if (written) txn.emplace(Conn());
    std::vector<std::string> hset;
    // The jobs of a batch mostly share their policy: its text is made once.
    const RetryPolicy* policy = nullptr;
    std::string policy_text;
    for (size_t p = 0; p < indexes.size(); ++p) {
      const size_t n = indexes[p];
      const Job& j = built[n];
      if (!policy || !(*policy == j.policy)) {
        policy = &j.policy;
        policy_text = FormatPolicy(j.policy);
      }
      const bool later = j.run_at > now;
      args.push_back(j.id);
      std::string spec = PackSpec(j.type, policy_text, j.payload,
                                  j.timeout ? std::optional(j.timeout->count()) : std::nullopt);
      if (written) {
        // Job p has number first + p; its entry of all starts every 100.
        // The script schedules the job when the run_at it is sent (only
        // when later by this machine's clock) is after the server's time.
        const bool scheduled = later && ToUnixMillis(j.run_at) > created_ms;
        AppendSpecEnd(&spec, created_ms, scheduled ? std::nullopt : std::optional(actor),
                      first + static_cast<int64_t>(p / 100 * 100));
        if (hset.empty()) hset = {"HSET", k.Specs()};
        hset.push_back(j.id);
        hset.push_back(std::move(spec));
        if (hset.size() == 2 + 2 * kSpecsPerCommand || p + 1 == indexes.size()) {
          RETRACED_RETURN_IF_ERROR(txn->Add(hset));
          hset.clear();
        }
      } else {
        args.push_back(std::move(spec));
      }
      // A job with no options takes three arguments, not ten (enqueue.lua).
      if (j.priority == 0 && !later && !j.unique_key && !j.deadline_at && !j.policy.deadline &&
          !jobs[n].id) {
        args.emplace_back();
        continue;
      }
      args.push_back("1");
      args.push_back(std::to_string(j.priority));
      args.push_back(later ? MsText(j.run_at) : "");
      args.push_back(j.unique_key.value_or(""));
      args.push_back(j.deadline_at ? MsText(*j.deadline_at) : "");
      args.push_back(j.policy.deadline ? std::to_string(j.policy.deadline->count()) : "");
      args.push_back(later ? "due at " + FormatTime(j.run_at) : "");
      args.push_back(jobs[n].id ? "1" : "");
    }
    const std::vector<std::string> keys = {k.prefix(), k.Ready(),    k.Scheduled(), k.Unique(),
                                           k.All(),    k.Counters(), k.Signal(),    k.Seq()};
    // One round trip: the queue is registered (lookups by id ask every
    // registered queue) just ahead of the script, which writes its first
    // job; or just ahead of reserve.lua when this process writes the specs.
    RETRACED_ASSIGN_OR_RETURN(Reply r,
                              written ? txn->Run(ScriptNamed("enqueue.lua"), keys, args)
                                      : Conn().EvalAfter({"SADD", std::string(kQueuesKey), queue},
                                                         ScriptNamed("enqueue.lua"), keys, args));
    if (r.IsError()) {
      if (written) DropSpecsWithoutJobs(k, built, indexes);
      return Status::Internal("script enqueue.lua: " + r.str);
    }
    // {now, last_seq, i, status, id, note, ...}, flat: the jobs not created
    // (i counts from 1 in this call); every other one was.
    if (r.elements.size() < 2 || (r.elements.size() - 2) % 4 != 0) {
      return Status::Internal("enqueue.lua: unexpected reply");
    }
    // This producer's next jobs list after these, whatever their queue.
    for (int64_t last = last_seq_.load(), seen = r.elements[1].integer;
         seen > last && !last_seq_.compare_exchange_weak(last, seen);) {
    }
    for (size_t n : indexes) results[n] = EnqueueResult{built[n].id, true, ""};
    for (size_t e = 2; e + 3 < r.elements.size(); e += 4) {
      const int64_t i = r.elements[e].integer;
      if (i < 1 || static_cast<size_t>(i) > indexes.size()) {
        return Status::Internal("enqueue.lua: unexpected reply");
      }
      EnqueueResult& out = results[indexes[static_cast<size_t>(i - 1)]];
      out.created = false;
      out.id = r.elements[e + 2].str;
      out.note = r.elements[e + 3].str;
    }
  }
  return results;
}

void RedisStore::DropSpecsWithoutJobs(const QueueKeys& k, const std::vector<Job>& built,
                                      const std::vector<size_t>& indexes) {
  // A spec with no record is never read, but would be kept for good. Best
  // effort: this runs after a failure already reported.
  std::vector<std::string> read = {"HMGET", k.Jobs()}, drop = {"HDEL", k.Specs()};
  for (size_t n : indexes) read.push_back(built[n].id);
  Result<Reply> records = Conn().Command(read);
  if (!records.ok() || records->elements.size() != indexes.size()) return;
  for (size_t i = 0; i < indexes.size(); ++i) {
    if (records->elements[i].IsNil()) drop.push_back(built[indexes[i]].id);
  }
  if (drop.size() > 2) (void)Conn().Command(drop);
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
  // {now, id, spec, record, ...}: each job's spec and record as stored.
  if (r.elements.empty() || (r.elements.size() - 1) % 3 != 0) {
    return Status::Internal("claim.lua: unexpected reply");
  }
  out.reserve(r.elements.size() / 3);
  std::vector<std::pair<std::string, Held>> held;
  held.reserve(r.elements.size() / 3);
  for (size_t i = 1; i + 2 < r.elements.size(); i += 3) {
    ClaimedJob c;
    Job& j = c.job;
    j.id = r.elements[i].str;
    j.queue = req.queue;
    // Read field by field (docs/redis-schema.md has the short names): no
    // map per job on the path every job takes.
    std::string policy;
    int64_t created = 0;
    const Reply& spec = r.elements[i + 1];
    bool ok =
        !spec.IsNil() && ForEachField(spec.str, [&](std::string_view name, std::string_view text,
                                                    std::optional<int64_t> n) {
          switch (NameCode(name)) {
            case NameCode("t"):
              j.type = text;
              break;
            case NameCode("d"):
              j.payload = text;
              break;
            case NameCode("p"):
              policy = text;
              break;
            case NameCode("c"):
              if (n) created = *n;
              break;
            case NameCode("to"):
              if (n) j.timeout = Millis(*n);
              break;
          }
        });
    if (!ok) return Status::Internal("the record of job " + j.id + " is malformed");
    RETRACED_ASSIGN_OR_RETURN(j.policy, StoredPolicy(policy));
    j.created_at = FromUnixMillis(created);
    int64_t run_at = 0;
    std::string_view trigger = "initial";
    std::string& record = r.elements[i + 2].str;
    ok = ForEachField(record,
                      [&](std::string_view name, std::string_view text, std::optional<int64_t> n) {
                        switch (NameCode(name)) {
                          case NameCode("n"):
                            if (n) j.attempt_count = static_cast<int>(*n);
                            break;
                          case NameCode("pr"):
                            if (n) j.priority = static_cast<int>(*n);
                            break;
                          case NameCode("r"):
                            if (n) run_at = *n;
                            break;
                          case NameCode("dl"):
                            if (n) j.deadline_at = FromUnixMillis(*n);
                            break;
                          case NameCode("k"):
                            if (!n) j.unique_key = std::string(text);
                            break;
                          case NameCode("tr"):
                            if (!n) trigger = text;
                            break;
                        }
                      });
    if (!ok) return Status::Internal("the record of job " + j.id + " is malformed");
    j.state = JobState::kActive;
    j.run_at = FromUnixMillis(run_at);
    c.attempt.n = j.attempt_count;
    RETRACED_ASSIGN_OR_RETURN(c.attempt.trigger, ParseTrigger(trigger));
    c.attempt.worker = req.worker;
    c.attempt.started_at = now;
    c.attempt.lateness = std::chrono::duration_cast<Millis>(now - j.run_at);
    c.lease = Lease{j.id, j.attempt_count};
    c.lease_expires_at = now + req.lease;
    held.push_back({j.id, Held{req.queue, std::move(record), std::move(policy)}});
    out.push_back(std::move(c));
  }
  RememberClaimed(std::move(held));
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
          k.State(JobState::kDead),
          k.Signal()};
  const bool current = f && Get(*f, "state") == "active" && IntField(*f, "n") == token;
  std::vector<std::string>& args = plan.args;
  args.resize(19);
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
    // The actor is left out (null) when it is the attempt's own worker, and
    // the event's note when it is the decision's reason (always, here).
    // Written directly: building the JSON tree cost more than the script.
    std::string end = "[\"x\"," + std::to_string(token) + "," + MsText(now) + ",";
    AppendJson(end, Name(outcome));
    end += ',';
    AppendJson(end, error.error);
    end += ',';
    AppendJson(end, d);
    end += ',';
    AppendJson(end, Name(to));
    end += ',';
    AppendJson(end, event_name);
    end += ',';
    if (actor == Get(*f, "worker")) {
      end += "null";
    } else {
      AppendJson(end, actor);
    }
    end += ",null]";
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
    args[12] = std::move(end);
    args[13] = counters;
    std::string last_error = "[";  // [class, code, message, signature]
    AppendJson(last_error, Name(error.error.error_class));
    last_error += ',';
    AppendJson(last_error, error.error.code);
    last_error += ',';
    AppendJson(last_error, error.error.message);
    last_error += ',';
    AppendJson(last_error, ErrorSignature(error.error.message));
    last_error += ']';
    args[14] = std::move(last_error);
    // The attempt's start record, which the claim left to be written with
    // the end (docs/redis-schema.md): made here, where numbers are cheap to
    // print (in the script, printing them cost more than the rest of a
    // failure).
    const int64_t started = IntField(*f, "updated");
    std::string start = "[\"a\"," + std::to_string(token) + ",";
    AppendJson(start, f->count("trigger") ? Get(*f, "trigger") : "initial");
    start += ',';
    AppendJson(start, Get(*f, "worker"));
    start += "," + std::to_string(started) + "," +
             std::to_string(started - IntField(*f, "run_at")) + "]";
    args[17] = std::move(start);
    // The attempt the decision is for: a job enqueued again under the same
    // id and claimed since has the same token but not the same start.
    args[18] = std::to_string(started);
    if (d.action == Action::kDead) {
      RETRACED_ASSIGN_OR_RETURN(Job job, LoadJob(queue, id));
      Attempt& last = job.attempts.back();
      last.ended_at = now;
      last.outcome = outcome;
      last.error = error.error;
      last.decision = d;
      args[15] = std::string(Name(*d.dead_reason));
      args[16] = DumpJson(Json(DeadEvidence(job.attempts, d)));
    }
    plan.ended = Ended{d, to};
  } else {
    // Not the job's lease when read: the script only records the refusal
    // (an empty `to` is never applied, whatever the job's state by then).
    args[6] = "refused";
    args[7] = "";
    args[12] = "[]";
    args[13] = "";
  }
  return plan;
}

Result<std::optional<RedisStore::Ended>> RedisStore::Applied(const EndPlan& plan, const Reply& r,
                                                             std::string* refusal) {
  if (r.IsError()) return Status::Internal("script end_attempt.lua: " + r.str);
  // 1 applied, -1 no such job, {0, state, n} refused.
  int64_t status = r.type == Reply::Type::kInteger ? r.integer : 0;
  if (status == 0 && r.elements.size() != 3) {
    return Status::Internal("end_attempt.lua: unexpected reply");
  }
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
  std::vector<std::string_view> ids;
  ids.reserve(items.size());
  for (const Completion& c : items) ids.push_back(c.lease.job_id);
  RETRACED_ASSIGN_OR_RETURN(std::vector<std::string> queues, ClaimedQueuesOf(ids));
  // One complete.lua call per (queue, worker), all in one round trip. A
  // batch is nearly always one group: the last one is looked at first.
  struct Group {
    std::string_view queue, worker;
    std::vector<size_t> indexes;
  };
  std::vector<Group> groups;
  for (size_t i = 0; i < items.size(); ++i) {
    if (queues[i].empty()) continue;
    auto same = [&](const Group& g) { return g.queue == queues[i] && g.worker == items[i].worker; };
    auto g = !groups.empty() && same(groups.back())
                 ? groups.end() - 1
                 : std::find_if(groups.begin(), groups.end(), same);
    if (g == groups.end()) g = groups.insert(g, Group{queues[i], items[i].worker, {}});
    g->indexes.push_back(i);
  }
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> calls;
  for (const Group& g : groups) {
    QueueKeys k{std::string(g.queue)};
    std::vector<std::string> args = {NowArg(), std::string(g.worker)};
    args.reserve(2 + 2 * g.indexes.size());
    for (size_t i : g.indexes) {
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
  ForgetClaimed(ids);
  std::vector<Status> results(items.size(), Status::Ok());
  for (size_t i = 0; i < items.size(); ++i) {
    if (queues[i].empty()) results[i] = Status::NotFound("no job " + items[i].lease.job_id);
  }
  for (size_t call = 0; call < groups.size(); ++call) {
    const Reply& r = replies[call];
    if (r.IsError()) return Status::Internal("script complete.lua: " + r.str);
    const std::vector<size_t>& indexes = groups[call].indexes;
    for (size_t n = 0; n < indexes.size(); ++n) {
      const Completion& c = items[indexes[n]];
      const Reply& one = r.elements[n + 1];
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
  std::vector<std::string_view> ids;
  ids.reserve(reqs.size());
  for (const FailRequest& r : reqs) ids.push_back(r.lease.job_id);
  RETRACED_ASSIGN_OR_RETURN(std::vector<std::string> queues, ClaimedQueuesOf(ids));
  // The records of jobs this store claimed under these leases are as it
  // remembers them (the script checks the lease again); the others are read.
  std::vector<std::optional<Fields>> known(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    known[i] = TakeClaimedRecord(reqs[i].lease.job_id, reqs[i].lease.token);
  }
  ForgetClaimed(ids);
  // One round trip for the time and the records not known, one for the scripts.
  std::vector<std::vector<std::string>> reads;
  if (!options_.clock) reads.push_back({"TIME"});
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (!queues[i].empty() && !known[i]) {
      QueueKeys k(queues[i]);
      reads.push_back({"HGET", k.Jobs(), reqs[i].lease.job_id});
      reads.push_back({"HGET", k.Specs(), reqs[i].lease.job_id});
    }
  }
  std::vector<Reply> read;
  if (!reads.empty()) {
    RETRACED_ASSIGN_OR_RETURN(read, Conn().Pipeline(reads));
  }
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
    const std::string& queue = queues[i];
    if (queue.empty()) continue;
    std::optional<Fields> f = std::move(known[i]);
    if (!f) {
      const Reply& h = read[next++];
      const Reply& spec = read[next++];
      if (!h.IsNil() && !spec.IsNil()) {
        f = DecodeRecord(h.str);
        std::optional<Fields> unchanging = DecodeRecord(spec.str);
        if (!f || !unchanging) {
          return Status::Internal("the record of job " + r.lease.job_id + " is malformed");
        }
        f->merge(*unchanging);
      }
    }
    RETRACED_ASSIGN_OR_RETURN(plans[i], PlanEnd(queue, r.lease.job_id, r.lease.token, r.outcome,
                                                r.error, r.worker, "", "failure", true, now, f));
    auto [c, added] = call_of_queue.emplace(queue, calls.size());
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
  std::vector<std::string_view> ids;
  ids.reserve(leases.size());
  for (const Lease& l : leases) ids.push_back(l.job_id);
  RETRACED_ASSIGN_OR_RETURN(std::vector<std::string> queues, ClaimedQueuesOf(ids));
  // One heartbeat.lua call per queue, all in one round trip.
  std::map<std::string, std::vector<size_t>> by_queue;
  for (size_t i = 0; i < leases.size(); ++i) {
    if (!queues[i].empty()) by_queue[queues[i]].push_back(i);
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
  // Every queue's expired leases in one round trip, not one per queue: each
  // worker asks this every recover_every, and a deployment may have many.
  std::vector<std::vector<std::string>> reads;
  reads.reserve(queues.size());
  for (const std::string& queue : queues) {
    reads.push_back({"ZRANGEBYSCORE", QueueKeys(queue).Active(), "-inf",
                     std::to_string(Ms(now) - 1), "LIMIT", "0", std::to_string(max)});
  }
  std::vector<Reply> expired_in;
  if (!reads.empty()) {
    RETRACED_ASSIGN_OR_RETURN(expired_in, Conn().Pipeline(reads));
  }
  std::vector<RecoveredJob> out;
  // A queue whose read failed (its key of another type) is passed over, as
  // one that had nothing expired: the others are recovered all the same.
  for (size_t q = 0; q < queues.size() && static_cast<int>(out.size()) < max; ++q) {
    const std::string& queue = queues[q];
    QueueKeys k(queue);
    for (const Reply& e : expired_in[q].elements) {
      if (static_cast<int>(out.size()) >= max) break;
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
