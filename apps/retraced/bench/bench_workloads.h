// The workloads of `retraced bench` (bench/README.md): each run of one
// workload gets a fresh store (or queue) and returns its figures.
#ifndef RETRACED_APPS_BENCH_BENCH_WORKLOADS_H_
#define RETRACED_APPS_BENCH_BENCH_WORKLOADS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_env.h"
#include "retraced/status.h"

namespace retraced::bench {

// One figure of one run, e.g. {"drain, 1 worker process", "s", 0.42}.
struct Sample {
  std::string figure;
  std::string unit;  // "s", "jobs/s", "attempts/s", "ms", "bytes/job"
  double value = 0;
};

// Where one run writes: a store URL and a queue of its own.
struct Target {
  std::string url;
  std::string queue;
};

// A backend under test: the redis-server or SQLite files the benchmark made
// itself, or a store the user gave (then every run uses a queue of its own,
// bench-<id>, purged after the run).
class Backend {
 public:
  // kind: "redis" (starts a redis-server) or "sqlite" (files in a temporary directory).
  static Result<std::unique_ptr<Backend>> Own(const std::string& kind);
  static Result<std::unique_ptr<Backend>> Given(const std::string& url);
  virtual ~Backend() = default;

  const std::string& kind() const { return kind_; }  // "redis" or "sqlite"
  const std::string& version() const { return version_; }
  // A store (or queue) with nothing in it, for one run.
  virtual Result<Target> Fresh() = 0;
  // Removes what the run wrote.
  virtual void Done(const Target& t) = 0;
  // The Redis server's admin connection (INFO memory); nullptr for SQLite.
  virtual redis::Connection* redis_admin() { return nullptr; }
  // Whether memory figures mean anything: the server holds only the benchmark's data.
  virtual bool own() const = 0;

 protected:
  std::string kind_, version_;
};

struct WorkloadOptions {
  double scale = 1.0;    // job counts and durations are multiplied by this (tests use 0.01)
  std::string self_exe;  // for worker processes: `SELF bench-worker ...`
};

struct Workload {
  std::string name;  // seed, throughput, retries, enqueue, latency, memory
  std::string what;  // one line: what it runs and how
  bool redis_only = false;
  std::function<Result<std::vector<Sample>>(Backend&, const WorkloadOptions&)> run;
};

const std::vector<Workload>& Workloads();

// A whole number with thousands separators: 10000 -> "10,000".
std::string Grouped(int64_t n);

// The worker process that `seed` starts: drains `queue` running no-op jobs.
struct BenchWorkerOptions {
  std::string store, queue;
  int concurrency = 4;
  int prefetch = 1000;
};
int RunBenchWorker(const BenchWorkerOptions& o);

}  // namespace retraced::bench

#endif  // RETRACED_APPS_BENCH_BENCH_WORKLOADS_H_
