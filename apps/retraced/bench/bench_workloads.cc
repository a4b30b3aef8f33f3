#include "bench/bench_workloads.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <thread>

#include "retraced/worker.h"

namespace retraced::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point from) {
  return std::chrono::duration<double>(Clock::now() - from).count();
}

int Scaled(double scale, int n) { return std::max(1, static_cast<int>(std::lround(n * scale))); }

// A payload of about `size` bytes, JSON like a real job's.
std::string Payload(int i, size_t size) {
  std::string p =
      R"({"user_id":)" + std::to_string(1'000'000 + i) + R"(,"template":"welcome","to":")";
  std::string tail = R"(@example.com"})";
  while (p.size() + tail.size() < size) p += 'u';
  return p + tail;
}

Result<std::unique_ptr<Store>> Open(const Target& t) { return OpenStore(t.url); }

// Enqueues `n` jobs of `type` in batches of 1,000.
Status EnqueueJobs(Store& store, const std::string& queue, int n, const std::string& type,
                   const RetryPolicy& policy, size_t payload_size = 40) {
  for (int done = 0; done < n;) {
    std::vector<NewJob> batch(static_cast<size_t>(std::min(1000, n - done)));
    for (NewJob& j : batch) {
      j.queue = queue;
      j.type = type;
      j.payload = Payload(done++, payload_size);
      j.policy = policy;
    }
    RETRACED_RETURN_IF_ERROR(store.Enqueue(batch, "bench").status());
  }
  return Status::Ok();
}

// Checks the run did what it claims: every job completed (or dead), every attempt stored.
Status Check(Store& store, const std::string& queue, const std::string& counter, int64_t jobs,
             int64_t attempts) {
  RETRACED_ASSIGN_OR_RETURN(std::vector<QueueStats> stats, store.Stats(queue));
  int64_t ended = 0, stored_attempts = 0;
  for (const QueueStats& s : stats) {
    auto c = s.counters.find(counter);
    if (c != s.counters.end()) ended = c->second;
    auto a = s.counters.find("attempts");
    if (a != s.counters.end()) stored_attempts = a->second;
  }
  if (ended != jobs || stored_attempts != attempts) {
    return Status::Internal("queue " + queue + " has " + std::to_string(ended) + " " + counter +
                            " jobs and " + std::to_string(stored_attempts) +
                            " attempts recorded; expected " + std::to_string(jobs) + " and " +
                            std::to_string(attempts));
  }
  return Status::Ok();
}

WorkerOptions Quiet(const std::string& queue) {
  WorkerOptions o;
  o.queues = {queue};
  o.log = [](std::string_view) {};
  return o;
}

// The best single-process configuration found for no-op jobs (bench/README.md).
WorkerOptions Fast(const std::string& queue) {
  WorkerOptions o = Quiet(queue);
  o.concurrency = 4;
  o.prefetch = 1000;
  o.ack_batch = 1000;
  o.drain = true;
  return o;
}
constexpr const char* kFastConfig = "1 process: concurrency 4, prefetch 1000, acks of up to 1000";

Status RunWorker(Worker& w) {
  RETRACED_RETURN_IF_ERROR(w.Start());
  w.Wait();
  return Status::Ok();
}

// ---- seed ------------------------------------------------------------------

Result<double> SeedDrain(Backend& b, const WorkloadOptions& o, int processes, int jobs) {
  RETRACED_ASSIGN_OR_RETURN(Target t, b.Fresh());
  RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Open(t));
  RETRACED_RETURN_IF_ERROR(EnqueueJobs(*store, t.queue, jobs, "noop", *ParsePolicy("none")));
  Clock::time_point start = Clock::now();
  std::vector<pid_t> pids;
  for (int i = 0; i < processes; ++i) {
    Result<pid_t> pid = Spawn({o.self_exe, "bench-worker", "--store", t.url, "--queue", t.queue});
    if (!pid.ok()) {
      (void)WaitAll(pids);
      return pid.status();
    }
    pids.push_back(*pid);
  }
  RETRACED_RETURN_IF_ERROR(WaitAll(pids));
  double seconds = Seconds(start);
  RETRACED_RETURN_IF_ERROR(Check(*store, t.queue, "completed", jobs, jobs));
  store.reset();
  b.Done(t);
  return seconds;
}

Result<std::vector<Sample>> Seed(Backend& b, const WorkloadOptions& o) {
  const int jobs = Scaled(o.scale, 10'000);
  std::vector<Sample> out;
  for (int processes : {1, 5}) {
    RETRACED_ASSIGN_OR_RETURN(double s, SeedDrain(b, o, processes, jobs));
    std::string label = Grouped(jobs) + " jobs, " + std::to_string(processes) +
                        (processes == 1 ? " worker process" : " worker processes");
    out.push_back({label, "s", s});
  }
  return out;
}

// ---- throughput ------------------------------------------------------------

Result<std::vector<Sample>> Throughput(Backend& b, const WorkloadOptions& o) {
  const int jobs = Scaled(o.scale, 100'000);
  RETRACED_ASSIGN_OR_RETURN(Target t, b.Fresh());
  RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Open(t));
  RETRACED_RETURN_IF_ERROR(EnqueueJobs(*store, t.queue, jobs, "noop", *ParsePolicy("none")));
  Worker w(*store, Fast(t.queue));
  w.HandleAny([](const JobContext&) { return HandlerResult::Success(); });
  Clock::time_point start = Clock::now();
  RETRACED_RETURN_IF_ERROR(RunWorker(w));
  double seconds = Seconds(start);
  RETRACED_RETURN_IF_ERROR(Check(*store, t.queue, "completed", jobs, jobs));
  store.reset();
  b.Done(t);
  return std::vector<Sample>{{Grouped(jobs) + " no-op jobs", "jobs/s", jobs / seconds}};
}

// ---- retries ---------------------------------------------------------------

Result<std::vector<Sample>> Retries(Backend& b, const WorkloadOptions& o) {
  const int jobs = Scaled(o.scale, 10'000);
  RETRACED_ASSIGN_OR_RETURN(Target t, b.Fresh());
  RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Open(t));
  RETRACED_RETURN_IF_ERROR(
      EnqueueJobs(*store, t.queue, jobs, "flaky", *ParsePolicy("immediate(2)")));
  Worker w(*store, Fast(t.queue));
  w.HandleAny([](const JobContext& c) {
    if (c.attempt.n < 3) return HandlerResult::Temporary("UPSTREAM_DOWN", "upstream is down");
    return HandlerResult::Success();
  });
  Clock::time_point start = Clock::now();
  RETRACED_RETURN_IF_ERROR(RunWorker(w));
  double seconds = Seconds(start);
  RETRACED_RETURN_IF_ERROR(Check(*store, t.queue, "completed", jobs, 3 * int64_t{jobs}));
  store.reset();
  b.Done(t);
  return std::vector<Sample>{
      {Grouped(3 * jobs) + " attempts (" + Grouped(jobs) + " jobs failing twice)", "attempts/s",
       3 * jobs / seconds}};
}

// ---- enqueue ---------------------------------------------------------------

Result<std::vector<Sample>> EnqueueRate(Backend& b, const WorkloadOptions& o) {
  const int jobs = Scaled(o.scale, 100'000);
  const RetryPolicy policy = *ParsePolicy("exponential(1s, max=1m, retries=5)");
  std::vector<Sample> out;
  for (size_t batch_size : {size_t{1}, size_t{1000}}) {
    RETRACED_ASSIGN_OR_RETURN(Target t, b.Fresh());
    RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Open(t));
    // The jobs are built before the clock starts: the figure is the store's.
    std::vector<NewJob> all(static_cast<size_t>(jobs));
    for (size_t i = 0; i < all.size(); ++i) {
      all[i].queue = t.queue;
      all[i].type = "send_email";
      all[i].payload = Payload(static_cast<int>(i), 100);
      all[i].policy = policy;
    }
    Clock::time_point start = Clock::now();
    for (size_t i = 0; i < all.size(); i += batch_size) {
      size_t n = std::min(batch_size, all.size() - i);
      RETRACED_RETURN_IF_ERROR(
          store->Enqueue(std::span<const NewJob>(all.data() + i, n), "bench").status());
    }
    double seconds = Seconds(start);
    RETRACED_ASSIGN_OR_RETURN(std::vector<QueueStats> stats, store->Stats(t.queue));
    int64_t enqueued = stats.empty() ? 0 : stats[0].counters["enqueued"];
    if (enqueued != jobs) {
      return Status::Internal(std::to_string(enqueued) + " jobs enqueued, expected " +
                              std::to_string(jobs));
    }
    store.reset();
    b.Done(t);
    out.push_back(
        {batch_size == 1 ? "one job per call" : "batches of 1,000", "jobs/s", jobs / seconds});
  }
  return out;
}

// ---- latency ---------------------------------------------------------------

// Milliseconds from a planned time to now, on the system clock (a Redis
// server on this machine keeps the same clock).
double MsLate(TimePoint planned) {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now() - planned)
      .count();
}

struct Latencies {
  std::mutex mu;
  std::vector<double> ms;
  void Add(double v) {
    std::lock_guard lock(mu);
    ms.push_back(v);
  }
  size_t size() {
    std::lock_guard lock(mu);
    return ms.size();
  }
};

void AddPercentiles(std::vector<Sample>& out, const std::string& what, std::vector<double> ms) {
  if (ms.empty()) return;
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(ms.size()))) - 1;
    return ms[std::min(i, ms.size() - 1)];
  };
  out.push_back({what + ", p50", "ms", at(0.50)});
  out.push_back({what + ", p99", "ms", at(0.99)});
  out.push_back({what + ", max", "ms", ms.back()});
}

// Jobs planned over `spread`, and retries planned 50 ms after a first failure:
// how late each run starts, with the worker idle between them.
Status PlannedLatency(Backend& b, const WorkloadOptions& o, std::vector<Sample>& out) {
  const int planned = Scaled(o.scale, 2'000), retried = Scaled(o.scale, 500);
  const Millis spread(std::max<int64_t>(200, std::lround(10'000 * o.scale)));
  RETRACED_ASSIGN_OR_RETURN(Target t, b.Fresh());
  RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Open(t));
  TimePoint first = store->Now() + Millis(500);
  std::vector<NewJob> jobs;
  for (int i = 0; i < planned + retried; ++i) {
    NewJob j;
    j.queue = t.queue;
    j.type = i < planned ? "planned" : "retried";
    j.payload = Payload(i, 40);
    j.policy = *ParsePolicy(i < planned ? "none" : "fixed(50ms, retries=1)");
    int k = i < planned ? i : i - planned, n = i < planned ? planned : retried;
    j.run_at = first + Millis(spread.count() * k / n);
    jobs.push_back(std::move(j));
  }
  RETRACED_RETURN_IF_ERROR(store->Enqueue(jobs, "bench").status());
  Latencies starts, retries;
  WorkerOptions wo = Quiet(t.queue);
  wo.drain = true;
  Worker w(*store, wo);
  w.Handle("planned", [&](const JobContext& c) {
    starts.Add(MsLate(c.job.run_at));
    return HandlerResult::Success();
  });
  w.Handle("retried", [&](const JobContext& c) {
    if (c.attempt.n == 1) return HandlerResult::Temporary("UPSTREAM_DOWN", "upstream is down");
    retries.Add(MsLate(c.job.run_at));
    return HandlerResult::Success();
  });
  RETRACED_RETURN_IF_ERROR(RunWorker(w));
  RETRACED_RETURN_IF_ERROR(
      Check(*store, t.queue, "completed", planned + retried, planned + 2 * int64_t{retried}));
  store.reset();
  b.Done(t);
  AddPercentiles(out, "planned -> start", std::move(starts.ms));
  AddPercentiles(out, "retry planned 50 ms on -> start", std::move(retries.ms));
  return Status::Ok();
}

// A producer in another connection enqueues one job a millisecond; the
// worker learns of them only through the store.
Status EnqueueToStart(Backend& b, const WorkloadOptions& o, std::vector<Sample>& out) {
  const int jobs = Scaled(o.scale, 3'000);
  RETRACED_ASSIGN_OR_RETURN(Target t, b.Fresh());
  RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Open(t));
  RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Store> producer, Open(t));
  Latencies starts;
  Worker w(*store, Quiet(t.queue));
  w.HandleAny([&](const JobContext& c) {
    int64_t sent_us = std::stoll(c.job.payload.substr(5));
    int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    starts.Add(static_cast<double>(now_us - sent_us) / 1000.0);
    return HandlerResult::Success();
  });
  RETRACED_RETURN_IF_ERROR(w.Start());
  std::this_thread::sleep_for(Millis(200));  // the worker is idle when the first job comes
  Clock::time_point start = Clock::now();
  Status produced = Status::Ok();
  for (int i = 0; i < jobs && produced.ok(); ++i) {
    std::this_thread::sleep_until(start + std::chrono::milliseconds(i));
    NewJob j;
    j.queue = t.queue;
    j.type = "noop";
    j.policy = *ParsePolicy("none");
    j.payload = "{\"t\":" +
                std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count()) +
                "}";
    produced = producer->Enqueue(std::span<const NewJob>(&j, 1), "bench").status();
  }
  for (int waited = 0; produced.ok() && starts.size() < static_cast<size_t>(jobs) && waited < 3000;
       ++waited) {
    std::this_thread::sleep_for(Millis(10));
  }
  w.Stop();
  RETRACED_RETURN_IF_ERROR(produced);
  if (starts.size() != static_cast<size_t>(jobs)) {
    return Status::Internal(std::to_string(starts.size()) + " of " + std::to_string(jobs) +
                            " jobs started within 30 s");
  }
  store.reset();
  producer.reset();
  b.Done(t);
  AddPercentiles(out, "enqueue -> start at 1,000 jobs/s", std::move(starts.ms));
  return Status::Ok();
}

Result<std::vector<Sample>> Latency(Backend& b, const WorkloadOptions& o) {
  std::vector<Sample> out;
  RETRACED_RETURN_IF_ERROR(PlannedLatency(b, o, out));
  RETRACED_RETURN_IF_ERROR(EnqueueToStart(b, o, out));
  return out;
}

// ---- memory ----------------------------------------------------------------

Result<std::vector<Sample>> Memory(Backend& b, const WorkloadOptions& o) {
  const int jobs = Scaled(o.scale, 100'000);
  std::vector<Sample> out;
  for (bool dead : {false, true}) {
    RETRACED_ASSIGN_OR_RETURN(Target t, b.Fresh());
    RETRACED_ASSIGN_OR_RETURN(int64_t before, UsedMemory(*b.redis_admin()));
    RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Open(t));
    RETRACED_RETURN_IF_ERROR(EnqueueJobs(*store, t.queue, jobs, "job",
                                         *ParsePolicy(dead ? "immediate(3)" : "none"), 100));
    Worker w(*store, Fast(t.queue));
    w.HandleAny([dead](const JobContext&) {
      return dead ? HandlerResult::Temporary("UPSTREAM_DOWN", "upstream is down")
                  : HandlerResult::Success();
    });
    RETRACED_RETURN_IF_ERROR(RunWorker(w));
    RETRACED_RETURN_IF_ERROR(Check(*store, t.queue, dead ? "dead_attempts_exhausted" : "completed",
                                   jobs, dead ? 4 * int64_t{jobs} : jobs));
    RETRACED_ASSIGN_OR_RETURN(int64_t after, UsedMemory(*b.redis_admin()));
    store.reset();
    b.Done(t);
    out.push_back({dead ? "dead job, 4 attempts" : "completed job, 1 attempt", "bytes/job",
                   static_cast<double>(after - before) / jobs});
  }
  return out;
}

// ---- backends --------------------------------------------------------------

class OwnRedisBackend : public Backend {
 public:
  static Result<std::unique_ptr<Backend>> Make() {
    std::unique_ptr<OwnRedisBackend> b(new OwnRedisBackend());
    RETRACED_ASSIGN_OR_RETURN(b->server_, OwnRedis::Start());
    RETRACED_ASSIGN_OR_RETURN(b->admin_, AdminConnection(b->server_->url()));
    b->kind_ = "redis";
    b->version_ = RedisVersion(*b->admin_);
    return std::unique_ptr<Backend>(std::move(b));
  }
  Result<Target> Fresh() override {
    RETRACED_ASSIGN_OR_RETURN(redis::Reply r, admin_->Command({"FLUSHALL"}));
    if (r.IsError()) return Status::Internal("FLUSHALL: " + r.str);
    return Target{server_->url(), "bench"};
  }
  void Done(const Target&) override {}
  redis::Connection* redis_admin() override { return admin_.get(); }
  bool own() const override { return true; }

 private:
  std::unique_ptr<OwnRedis> server_;
  std::unique_ptr<redis::Connection> admin_;
};

class OwnSqliteBackend : public Backend {
 public:
  OwnSqliteBackend() {
    kind_ = "sqlite";
    version_ = sqlite3_libversion();
  }
  Result<Target> Fresh() override {
    return Target{"sqlite:" + (dir_.path() / ("run-" + std::to_string(++runs_) + ".db")).string(),
                  "bench"};
  }
  void Done(const Target& t) override {
    std::string path = t.url.substr(7);
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
  bool own() const override { return true; }

 private:
  TempDir dir_;
  int runs_ = 0;
};

// A store the user gave: each run writes a queue of its own, purged after.
class GivenBackend : public Backend {
 public:
  static Result<std::unique_ptr<Backend>> Make(const std::string& url) {
    std::unique_ptr<GivenBackend> b(new GivenBackend());
    b->url_ = url;
    b->kind_ = url.rfind("redis", 0) == 0 ? "redis" : "sqlite";
    if (b->kind_ == "redis") {
      RETRACED_ASSIGN_OR_RETURN(b->admin_, AdminConnection(url));
      b->version_ = RedisVersion(*b->admin_);
    } else {
      b->version_ = sqlite3_libversion();
    }
    RETRACED_RETURN_IF_ERROR(OpenStore(url).status());
    return std::unique_ptr<Backend>(std::move(b));
  }
  Result<Target> Fresh() override {
    return Target{url_, "bench-" + std::to_string(getpid()) + "-" + std::to_string(++runs_)};
  }
  void Done(const Target& t) override {
    Result<std::unique_ptr<Store>> store = OpenStore(url_);
    if (!store.ok()) return;
    PurgeRequest p;
    p.queue = t.queue;
    p.by = "retraced bench";
    p.note = "benchmark run over";
    (void)(*store)->Purge(p);
  }
  redis::Connection* redis_admin() override { return admin_.get(); }
  bool own() const override { return false; }

 private:
  std::string url_;
  std::unique_ptr<redis::Connection> admin_;
  int runs_ = 0;
};

}  // namespace

std::string Grouped(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out = n < 0 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

Result<std::unique_ptr<Backend>> Backend::Own(const std::string& kind) {
  if (kind == "redis") return OwnRedisBackend::Make();
  if (kind == "sqlite") return std::unique_ptr<Backend>(new OwnSqliteBackend());
  return Status::InvalidArgument("unknown backend '" + kind + "' (redis or sqlite)");
}

Result<std::unique_ptr<Backend>> Backend::Given(const std::string& url) {
  return GivenBackend::Make(url);
}

const std::vector<Workload>& Workloads() {
  static const std::vector<Workload> all = {
      {"seed",
       "the original prototype's test: 10,000 no-op jobs enqueued, then drained by separate "
       "worker processes (seconds from starting them to the last one's exit)",
       false, Seed},
      {"throughput", std::string("100,000 no-op jobs drained by ") + kFastConfig, false,
       Throughput},
      {"retries",
       std::string("10,000 jobs failing with a temporary error on attempts 1 and 2, succeeding on "
                   "3, policy immediate(2); every attempt and decision stored; ") +
           kFastConfig,
       false, Retries},
      {"enqueue", "100,000 jobs (100-byte payloads) enqueued from one process", false, EnqueueRate},
      {"latency",
       "an idle worker (default options): 2,000 jobs planned over 10 s and 500 retries planned "
       "50 ms after a failure, then 3,000 jobs enqueued by another connection at 1,000 a second",
       false, Latency},
      {"memory",
       "Redis used_memory growth over 100,000 jobs (100-byte payloads), with their history", true,
       Memory},
  };
  return all;
}

int RunBenchWorker(const BenchWorkerOptions& o) {
  Result<std::unique_ptr<Store>> store = OpenStore(o.store);
  if (!store.ok()) return 1;
  WorkerOptions wo = Quiet(o.queue);
  wo.concurrency = o.concurrency;
  wo.prefetch = o.prefetch;
  wo.ack_batch = 1000;
  wo.idle_poll = Millis(2);
  wo.drain = true;
  Worker w(**store, wo);
  w.HandleAny([](const JobContext&) { return HandlerResult::Success(); });
  return RunWorker(w).ok() ? 0 : 1;
}

}  // namespace retraced::bench
