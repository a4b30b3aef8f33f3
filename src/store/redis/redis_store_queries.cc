// The Redis store's read side and operator actions.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <set>

#include "retraced/decide.h"
#include "retraced/json.h"
#include "store/redis/redis_store.h"
#include "store/store_checks.h"

namespace retraced::redis {
namespace {

constexpr JobState kAllStates[] = {JobState::kScheduled, JobState::kReady,     JobState::kActive,
                                   JobState::kRetryWait, JobState::kCompleted, JobState::kDead,
                                   JobState::kCancelled};

bool Matches(const JobFilter& f, const JobSummary& s, bool with_state) {
  const Job& j = s.job;
  if (with_state && f.state && j.state != *f.state) return false;
  if (f.type && j.type != *f.type) return false;
  if (f.code && (!s.last_error || s.last_error->code != *f.code)) return false;
  if (f.error_class && (!s.last_error || s.last_error->error_class != *f.error_class)) return false;
  if (f.created_after && j.created_at < *f.created_after) return false;
  if (f.created_before && j.created_at >= *f.created_before) return false;
  if (!f.ids.empty() && std::find(f.ids.begin(), f.ids.end(), j.id) == f.ids.end()) return false;
  return true;
}

// The slots of an entry of `all`: its ids, space-separated, each numbered
// the entry's score plus its place; a removed job leaves its slot empty.
std::vector<std::string_view> SplitEntry(std::string_view entry) {
  std::vector<std::string_view> ids;
  while (true) {
    const size_t space = entry.find(' ');
    ids.push_back(entry.substr(0, space));
    if (space == std::string_view::npos) return ids;
    entry.remove_prefix(space + 1);
  }
}

}  // namespace

Result<std::vector<std::string>> RedisStore::QueuesOrAll(const std::optional<std::string>& queue) {
  if (queue) return std::vector<std::string>{*queue};
  return Queues();
}

Result<Job> RedisStore::GetJob(std::string_view id) {
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  RETRACED_ASSIGN_OR_RETURN(std::optional<std::string> queue, QueueOf(id));
  if (!queue) return Status::NotFound("no job " + std::string(id));
  return LoadJob(*queue, id);
}

Result<JobPage> RedisStore::ListJobs(const JobFilter& filter) {
  if (filter.limit < 1 || filter.limit > 1000) {
    return Status::InvalidArgument("limit must be from 1 to 1000, got " +
                                   std::to_string(filter.limit));
  }
  // Jobs go by insertion number, newest first, and on a tie (two queues can
  // give one number: it is unique within a queue) by queue name. The cursor
  // is the last job shown: "NUMBER:QUEUE".
  int64_t before = INT64_MAX;
  std::optional<std::string> before_queue;
  if (!filter.cursor.empty()) {
    const std::string_view c = filter.cursor;
    const size_t colon = c.find(':');
    const std::string_view number = c.substr(0, colon);
    auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), before);
    if (ec != std::errc() || p != number.data() + number.size() || colon == 0) {
      return Status::InvalidArgument("invalid cursor '" + filter.cursor + "'");
    }
    if (colon != std::string_view::npos) before_queue = std::string(c.substr(colon + 1));
  }
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  RETRACED_ASSIGN_OR_RETURN(std::vector<std::string> queues, QueuesOrAll(filter.queue));
  // Newest first across queues: each queue's jobs are read in chunks from
  // its newest end (list.lua cuts its `all` entries, each the jobs of one
  // enqueue call: docs/redis-schema.md), and the chunks are merged, so a
  // page costs what it shows (plus what the filter skips), not the size of
  // the queues.
  struct Source {
    std::string queue;
    int64_t bound;   // jobs numbered below it come next (at it too, when inclusive)
    bool inclusive;  // after the cursor's job, in a queue after the cursor's on a tie
    std::vector<std::pair<int64_t, std::string>> chunk;  // (seq, id), newest first
    size_t next = 0;
    bool exhausted = false;
  };
  const size_t chunk_size = static_cast<size_t>(std::max(filter.limit + 1, 100));
  std::vector<Source> sources;
  for (const std::string& q : queues) {
    const bool tie_follows = before_queue && q > *before_queue;
    sources.push_back({q, before, tie_follows, {}, 0});
  }
  auto fill = [&](Source& src) -> Status {
    RETRACED_ASSIGN_OR_RETURN(Reply r, Run("list.lua", {QueueKeys(src.queue).All()},
                                           {std::to_string(src.bound), src.inclusive ? "1" : "",
                                            std::to_string(chunk_size)}));
    src.chunk.clear();
    src.next = 0;
    for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
      src.chunk.emplace_back(r.elements[i].integer, r.elements[i + 1].str);
    }
    src.exhausted = src.chunk.size() < chunk_size;
    if (!src.chunk.empty()) {
      src.bound = src.chunk.back().first;
      src.inclusive = false;
    }
    return Status::Ok();
  };
  for (Source& src : sources) RETRACED_RETURN_IF_ERROR(fill(src));
  JobPage page;
  int64_t last_seq = 0;
  std::string last_queue;
  while (true) {
    Source* newest = nullptr;
    for (Source& src : sources) {
      if (src.next == src.chunk.size() && !src.exhausted) RETRACED_RETURN_IF_ERROR(fill(src));
      if (src.next == src.chunk.size()) continue;
      if (!newest || src.chunk[src.next].first > newest->chunk[newest->next].first ||
          (src.chunk[src.next].first == newest->chunk[newest->next].first &&
           src.queue < newest->queue)) {
        newest = &src;
      }
    }
    if (!newest) break;
    const auto [seq, id] = newest->chunk[newest->next++];
    RETRACED_ASSIGN_OR_RETURN(std::optional<Fields> f, LoadFields(QueueKeys(newest->queue), id));
    if (!f) continue;
    RETRACED_ASSIGN_OR_RETURN(JobSummary s, ToSummary(newest->queue, *f));
    if (!Matches(filter, s, true)) continue;
    if (static_cast<int>(page.jobs.size()) == filter.limit) {
      page.next_cursor = std::to_string(last_seq) + ":" + last_queue;
      break;
    }
    last_seq = seq;
    last_queue = newest->queue;
    page.jobs.push_back(std::move(s));
  }
  return page;
}

Result<std::vector<DeadGroup>> RedisStore::GroupDead(const JobFilter& filter) {
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  RETRACED_ASSIGN_OR_RETURN(std::vector<std::string> queues, QueuesOrAll(filter.queue));
  std::vector<DeadGroup> groups;
  std::vector<int64_t> newest;
  for (const std::string& q : queues) {
    QueueKeys k(q);
    RETRACED_ASSIGN_OR_RETURN(Reply ids,
                              Conn().Command({"ZRANGE", k.State(JobState::kDead), "0", "-1"}));
    // Insertion numbers, to pick each group's newest job as its sample: a
    // job enqueued alone has an entry of its own in `all`, one enqueued in
    // a batch has a place in its batch's entry (its spec's af).
    std::vector<std::string> zmscore = {"ZMSCORE", k.All()};
    for (const Reply& id : ids.elements) zmscore.push_back(id.str);
    Reply seqs;
    if (!ids.elements.empty()) {
      RETRACED_ASSIGN_OR_RETURN(seqs, Conn().Command(zmscore));
      if (seqs.IsError()) return Status::Internal("ZMSCORE (Redis 6.2 or later): " + seqs.str);
    }
    std::map<std::string, std::map<std::string, int64_t, std::less<>>> entries;  // by score
    auto seq_in_entry = [&](const std::string& first, const std::string& id) -> Result<int64_t> {
      auto e = entries.find(first);
      if (e == entries.end()) {
        RETRACED_ASSIGN_OR_RETURN(Reply r,
                                  Conn().Command({"ZRANGEBYSCORE", k.All(), first, first}));
        if (r.IsError()) return Status::Internal("ZRANGEBYSCORE: " + r.str);
        int64_t base = 0;
        std::from_chars(first.data(), first.data() + first.size(), base);
        std::map<std::string, int64_t, std::less<>> places;
        for (const Reply& entry : r.elements) {
          std::vector<std::string_view> slots = SplitEntry(entry.str);
          for (size_t p = 0; p < slots.size(); ++p) {
            if (!slots[p].empty()) places.emplace(slots[p], base + static_cast<int64_t>(p));
          }
        }
        e = entries.emplace(first, std::move(places)).first;
      }
      auto place = e->second.find(id);
      return place == e->second.end() ? 0 : place->second;
    };
    for (size_t n = 0; n < ids.elements.size(); ++n) {
      const Reply& id = ids.elements[n];
      RETRACED_ASSIGN_OR_RETURN(std::optional<Fields> f, LoadFields(k, id.str));
      if (!f) continue;
      RETRACED_ASSIGN_OR_RETURN(JobSummary s, ToSummary(q, *f));
      if (!Matches(filter, s, false) || !s.job.dead) continue;
      std::optional<ErrorClass> cls =
          s.last_error ? std::optional(s.last_error->error_class) : std::nullopt;
      std::string code = s.last_error ? s.last_error->code : "";
      std::string sig = f->count("err_sig") ? f->find("err_sig")->second : "";
      size_t i = 0;
      while (i < groups.size() && !(groups[i].queue == q && groups[i].error_class == cls &&
                                    groups[i].code == code && groups[i].signature == sig)) {
        ++i;
      }
      if (i == groups.size()) {
        groups.push_back(
            DeadGroup{q, cls, code, sig, 0, "", "", {}, s.job.dead->at, s.job.dead->at});
        newest.push_back(-1);
      }
      DeadGroup& g = groups[i];
      ++g.count;
      ++g.reasons[s.job.dead->reason];
      g.first_dead_at = std::min(g.first_dead_at, s.job.dead->at);
      g.last_dead_at = std::max(g.last_dead_at, s.job.dead->at);
      int64_t seq = 0;
      if (n < seqs.elements.size() && !seqs.elements[n].IsNil()) {
        const std::string& seq_text = seqs.elements[n].str;
        std::from_chars(seq_text.data(), seq_text.data() + seq_text.size(), seq);
      } else if (auto first = f->find("all_first"); first != f->end()) {
        RETRACED_ASSIGN_OR_RETURN(seq, seq_in_entry(first->second, id.str));
      }
      if (seq > newest[i]) {
        newest[i] = seq;
        g.sample_job_id = s.job.id;
        g.sample_message = s.last_error ? s.last_error->message : "";
      }
    }
  }
  std::stable_sort(groups.begin(), groups.end(), [](const DeadGroup& a, const DeadGroup& b) {
    return a.count != b.count ? a.count > b.count : a.last_dead_at > b.last_dead_at;
  });
  return groups;
}

Result<ReplayResult> RedisStore::ReplayJobs(const ReplayRequest& req) {
  RETRACED_RETURN_IF_ERROR(internal::CheckReplay(req));
  Replay mode;
  mode.mode = req.mode;
  mode.more = req.more;
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  RETRACED_ASSIGN_OR_RETURN(TimePoint now, NowLocked());
  // Which jobs, checked before anything changes: (queue, id, policy).
  std::vector<std::tuple<std::string, std::string, std::string>> targets;
  if (!req.filter.ids.empty()) {
    std::set<std::string> named;  // an id named twice is replayed once
    for (const std::string& id : req.filter.ids) {
      if (!named.insert(id).second) continue;
      RETRACED_ASSIGN_OR_RETURN(std::optional<std::string> q, QueueOf(id));
      if (!q) return Status::NotFound("no job " + id);
      RETRACED_ASSIGN_OR_RETURN(std::optional<Fields> f, LoadFields(QueueKeys(*q), id));
      if (!f) return Status::NotFound("no job " + id);
      const std::string state = f->count("state") ? f->find("state")->second : "";
      if (state != "dead" && state != "cancelled") {
        return Status::FailedPrecondition("job " + id + " is " + state +
                                          "; only dead or cancelled jobs can be replayed");
      }
      targets.emplace_back(*q, id, f->count("policy") ? f->find("policy")->second : "none");
    }
  } else {
    RETRACED_ASSIGN_OR_RETURN(std::vector<std::string> queues, QueuesOrAll(req.filter.queue));
    JobFilter f = req.filter;
    for (const std::string& q : queues) {
      QueueKeys k(q);
      RETRACED_ASSIGN_OR_RETURN(Reply ids,
                                Conn().Command({"ZRANGE", k.State(JobState::kDead), "0", "-1"}));
      for (const Reply& id : ids.elements) {
        RETRACED_ASSIGN_OR_RETURN(std::optional<Fields> fields, LoadFields(k, id.str));
        if (!fields) continue;
        RETRACED_ASSIGN_OR_RETURN(JobSummary s, ToSummary(q, *fields));
        if (Matches(f, s, false)) targets.emplace_back(q, id.str, fields->find("policy")->second);
      }
    }
  }
  ReplayResult result;
  for (const auto& [q, id, policy_text] : targets) {
    result.replayed.push_back(id);
    if (req.dry_run) continue;
    RETRACED_ASSIGN_OR_RETURN(RetryPolicy policy, ParsePolicy(policy_text, ParseOptions{true}));
    std::optional<TimePoint> deadline = DeadlineAt(policy, now);
    QueueKeys k(q);
    std::string note = "mode " + ReplayModeText(mode) + (req.note.empty() ? "" : ": " + req.note);
    RETRACED_ASSIGN_OR_RETURN(
        Reply r, Run("replay.lua",
                     {k.prefix(), k.Ready(), k.State(JobState::kDead),
                      k.State(JobState::kCancelled), k.Unique(), k.Counters(), k.Signal()},
                     {std::to_string(ToUnixMillis(now)), id, req.by, req.note, ReplayModeText(mode),
                      req.mode == Replay::Mode::kMore ? std::to_string(req.more) : "",
                      deadline ? std::to_string(ToUnixMillis(*deadline)) : "", note}));
    if (r.elements[0].integer == 2) {
      return Status::Conflict("job " + id +
                              " cannot be replayed: its unique key is held by live job " +
                              r.elements[1].str);
    }
  }
  return result;
}

Status RedisStore::Cancel(std::string_view id, std::string_view by, std::string_view note) {
  RETRACED_RETURN_IF_ERROR(internal::CheckOperator(by));
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  RETRACED_ASSIGN_OR_RETURN(std::optional<std::string> queue, QueueOf(id));
  if (!queue) return Status::NotFound("no job " + std::string(id));
  RETRACED_ASSIGN_OR_RETURN(TimePoint now, NowLocked());
  QueueKeys k(*queue);
  std::string line =
      "cancelled by " + std::string(by) + (note.empty() ? "" : ": " + std::string(note));
  RETRACED_ASSIGN_OR_RETURN(std::optional<Fields> f, LoadFields(k, id));
  Decision cancelled;
  cancelled.action = Action::kDead;
  cancelled.dead_reason = DeadReason::kCancelled;
  cancelled.reason =
      line + " while attempt " + (f && f->count("n") ? f->find("n")->second : "?") + " was running";
  Json end = Json::array({"x", 0, ToUnixMillis(now), nullptr, nullptr, ToJson(cancelled)});
  RETRACED_ASSIGN_OR_RETURN(
      Reply r, Run("cancel.lua",
                   {k.prefix(), k.Scheduled(), k.Ready(), k.RetryWait(), k.Active(),
                    k.State(JobState::kCancelled), k.Unique(), k.Counters()},
                   {std::to_string(ToUnixMillis(now)), std::string(id), std::string(by),
                    std::string(note), DumpJson(Json::array({line})), DumpJson(end)}));
  if (r.elements[0].integer == -1) return Status::NotFound("no job " + std::string(id));
  if (r.elements[0].integer == 0) {
    return Status::FailedPrecondition("job " + std::string(id) + " is " + r.elements[1].str +
                                      "; only scheduled, ready, retry_wait or active jobs can be "
                                      "cancelled");
  }
  return Status::Ok();
}

Result<int64_t> RedisStore::Remove(const std::string& queue, const std::vector<std::string>& ids,
                                   std::string_view counter) {
  QueueKeys k(queue);
  int64_t removed = 0;
  // A script blocks the server while it runs: 500 jobs a call (a few
  // milliseconds), each call its own round trip so that other clients'
  // commands run in between. 50,000 jobs in one call took 225 ms.
  constexpr size_t kPerCall = 500;
  for (size_t first = 0; first < ids.size(); first += kPerCall) {
    std::vector<std::string> args = {std::string(counter)};
    args.insert(args.end(), ids.begin() + static_cast<std::ptrdiff_t>(first),
                ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), first + kPerCall)));
    RETRACED_ASSIGN_OR_RETURN(
        Reply r, Run("remove.lua",
                     {k.prefix(), k.All(), k.State(JobState::kCompleted), k.State(JobState::kDead),
                      k.State(JobState::kCancelled), k.Counters()},
                     args));
    removed += static_cast<int64_t>(r.elements.size());
  }
  return removed;
}

Result<PurgeResult> RedisStore::Purge(const PurgeRequest& req) {
  RETRACED_RETURN_IF_ERROR(internal::CheckPurge(req));
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  RETRACED_ASSIGN_OR_RETURN(TimePoint now, NowLocked());
  for (const std::string& id : req.ids) {
    RETRACED_ASSIGN_OR_RETURN(std::optional<std::string> q, QueueOf(id));
    if (!q) return Status::NotFound("no job " + id);
    RETRACED_ASSIGN_OR_RETURN(std::optional<Fields> f, LoadFields(QueueKeys(*q), id));
    const std::string state = f && f->count("state") ? f->find("state")->second : "";
    Result<JobState> parsed = ParseJobState(state);
    if (parsed.ok() && !IsTerminal(*parsed)) {
      return Status::FailedPrecondition("job " + id + " is " + state +
                                        "; live jobs are never purged");
    }
  }
  RETRACED_ASSIGN_OR_RETURN(std::vector<std::string> queues, QueuesOrAll(req.queue));
  std::vector<JobState> states;
  if (req.state) {
    states = {*req.state};
  } else {
    states = {JobState::kCompleted, JobState::kDead, JobState::kCancelled};
  }
  std::string max = req.older_than ? std::to_string(ToUnixMillis(now - *req.older_than)) : "+inf";
  PurgeResult result;
  for (const std::string& q : queues) {
    QueueKeys k(q);
    std::vector<std::string> doomed;
    for (JobState s : states) {
      RETRACED_ASSIGN_OR_RETURN(Reply ids,
                                Conn().Command({"ZRANGEBYSCORE", k.State(s), "-inf", max}));
      for (const Reply& id : ids.elements) {
        if (req.ids.empty() || std::find(req.ids.begin(), req.ids.end(), id.str) != req.ids.end()) {
          doomed.push_back(id.str);
        }
      }
    }
    if (req.dry_run) {
      result.purged += static_cast<int64_t>(doomed.size());
      continue;
    }
    RETRACED_ASSIGN_OR_RETURN(int64_t n, Remove(q, doomed, "purged"));
    result.purged += n;
  }
  return result;
}

Result<int64_t> RedisStore::ApplyRetention() {
  const Retention& r = options_.retention;
  if (!r.completed_max_count && !r.completed_max_age && !r.dead_max_age) return int64_t{0};
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  RETRACED_ASSIGN_OR_RETURN(TimePoint now, NowLocked());
  RETRACED_ASSIGN_OR_RETURN(std::vector<std::string> queues, Queues());
  int64_t total = 0;
  for (const std::string& q : queues) {
    QueueKeys k(q);
    std::vector<std::string> doomed;
    auto take = [&](const std::vector<std::string>& cmd) -> Status {
      RETRACED_ASSIGN_OR_RETURN(Reply ids, Conn().Command(cmd));
      for (const Reply& id : ids.elements) doomed.push_back(id.str);
      return Status::Ok();
    };
    if (r.completed_max_age) {
      RETRACED_RETURN_IF_ERROR(take({"ZRANGEBYSCORE", k.State(JobState::kCompleted), "-inf",
                                     std::to_string(ToUnixMillis(now - *r.completed_max_age))}));
    }
    if (r.dead_max_age) {
      RETRACED_RETURN_IF_ERROR(take({"ZRANGEBYSCORE", k.State(JobState::kDead), "-inf",
                                     std::to_string(ToUnixMillis(now - *r.dead_max_age))}));
    }
    if (r.completed_max_count) {
      RETRACED_ASSIGN_OR_RETURN(Reply n, Conn().Command({"ZCARD", k.State(JobState::kCompleted)}));
      if (n.integer > *r.completed_max_count) {
        RETRACED_RETURN_IF_ERROR(take({"ZRANGE", k.State(JobState::kCompleted), "0",
                                       std::to_string(n.integer - *r.completed_max_count - 1)}));
      }
    }
    std::sort(doomed.begin(), doomed.end());
    doomed.erase(std::unique(doomed.begin(), doomed.end()), doomed.end());
    RETRACED_ASSIGN_OR_RETURN(int64_t removed, Remove(q, doomed, "trimmed"));
    total += removed;
  }
  return total;
}

Result<std::vector<QueueStats>> RedisStore::Stats(std::optional<std::string_view> queue) {
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  RETRACED_ASSIGN_OR_RETURN(std::vector<std::string> queues,
                            QueuesOrAll(queue ? std::optional<std::string>(*queue) : std::nullopt));
  std::vector<QueueStats> out;
  for (const std::string& q : queues) {
    QueueKeys k(q);
    std::vector<std::vector<std::string>> cmds;
    for (JobState s : kAllStates) cmds.push_back({"ZCARD", k.State(s)});
    cmds.push_back({"HGETALL", k.Counters()});
    RETRACED_ASSIGN_OR_RETURN(std::vector<Reply> r, Conn().Pipeline(cmds));
    QueueStats qs;
    qs.queue = q;
    for (size_t i = 0; i < std::size(kAllStates); ++i) {
      if (r[i].integer > 0) qs.states[kAllStates[i]] = r[i].integer;
    }
    const Reply& c = r.back();
    for (size_t i = 0; i + 1 < c.elements.size(); i += 2) {
      int64_t v = 0;
      std::from_chars(c.elements[i + 1].str.data(),
                      c.elements[i + 1].str.data() + c.elements[i + 1].str.size(), v);
      qs.counters[c.elements[i].str] = v;
    }
    if (qs.states.empty() && qs.counters.empty()) continue;
    out.push_back(std::move(qs));
  }
  return out;
}

Result<std::optional<TimePoint>> RedisStore::NextDueAt(std::string_view queue) {
  Borrow borrowed(*this);
  RETRACED_RETURN_IF_ERROR(borrowed.status());
  QueueKeys k(queue);
  RETRACED_ASSIGN_OR_RETURN(std::vector<Reply> r,
                            Conn().Pipeline({{"ZRANGE", k.Scheduled(), "0", "0", "WITHSCORES"},
                                             {"ZRANGE", k.RetryWait(), "0", "0", "WITHSCORES"}}));
  std::optional<TimePoint> due;
  for (const Reply& one : r) {
    if (one.elements.size() < 2) continue;
    int64_t ms = 0;
    std::from_chars(one.elements[1].str.data(),
                    one.elements[1].str.data() + one.elements[1].str.size(), ms);
    TimePoint t = FromUnixMillis(ms);
    if (!due || t < *due) due = t;
  }
  return due;
}

}  // namespace retraced::redis

namespace retraced::redis {
namespace {

// Blocks in XREAD on the queues' signal streams, on a connection of its own,
// from the last entry it saw of each.
class RedisSignal final : public JobSignal {
 public:
  RedisSignal(std::unique_ptr<Connection> conn, std::vector<std::string> streams,
              std::vector<std::string> last)
      : conn_(std::move(conn)), streams_(std::move(streams)), last_(std::move(last)) {}

  void Interrupt() override {
    interrupted_ = true;
    conn_->Interrupt();
  }

  Result<bool> Wait(Millis timeout) override {
    if (interrupted_) return false;
    std::vector<std::string> cmd = {
        "XREAD", "BLOCK", std::to_string(std::max<int64_t>(1, timeout.count())), "STREAMS"};
    cmd.insert(cmd.end(), streams_.begin(), streams_.end());
    cmd.insert(cmd.end(), last_.begin(), last_.end());
    Result<Reply> reply = conn_->Command(cmd);
    if (interrupted_) return false;
    RETRACED_ASSIGN_OR_RETURN(Reply r, std::move(reply));
    if (r.IsError()) return Status::Internal("XREAD: " + r.str);
    if (r.IsNil()) return false;
    for (const Reply& stream : r.elements) {
      if (stream.elements.size() < 2 || stream.elements[1].elements.empty()) continue;
      for (size_t i = 0; i < streams_.size(); ++i) {
        if (streams_[i] == stream.elements[0].str) {
          last_[i] = stream.elements[1].elements.back().elements[0].str;
        }
      }
    }
    return true;
  }

 private:
  std::unique_ptr<Connection> conn_;
  std::vector<std::string> streams_, last_;
  std::atomic<bool> interrupted_{false};
};

}  // namespace

Result<std::unique_ptr<JobSignal>> RedisStore::WatchQueues(std::span<const std::string> queues) {
  ConnectionOptions options;
  options.io_timeout = Millis(60'000);  // longer than any wait
  RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(address_, options));
  std::vector<std::string> streams, last;
  for (const std::string& q : queues) {
    streams.push_back(QueueKeys(q).Signal());
    RETRACED_ASSIGN_OR_RETURN(Reply r,
                              conn->Command({"XREVRANGE", streams.back(), "+", "-", "COUNT", "1"}));
    last.push_back(r.elements.empty() ? "0-0" : r.elements[0].elements[0].str);
  }
  return std::unique_ptr<JobSignal>(
      std::make_unique<RedisSignal>(std::move(conn), std::move(streams), std::move(last)));
}

}  // namespace retraced::redis
