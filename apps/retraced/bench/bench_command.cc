// retraced bench: the project's own benchmark (bench/README.md). Runs each
// workload several times on a redis-server it starts and on SQLite files of
// its own (or on the store --store names), and prints the median of each
// figure with its range.
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <sstream>
#include <thread>

#include "bench/bench_workloads.h"
#include "commands.h"
#include "retraced/json.h"
#include "store_flags.h"
#include "table.h"

namespace retraced::cli {
namespace {

using bench::Backend;
using bench::Sample;
using bench::Workload;

struct BenchOptions {
  std::string workloads = "seed,throughput,retries,enqueue,latency,memory";
  std::string backends = "redis,sqlite";
  std::string store;
  int runs = 3;
  double scale = 1.0;
  bool json = false;
};

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// One figure over every run.
struct Figure {
  std::string workload, backend, figure, unit;
  std::vector<double> samples;
  double Median() const {
    std::vector<double> v = samples;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
};

std::string Number(double v, const std::string& unit) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  if (unit == "s") {
    out.precision(3);
    out << v;
  } else if (unit == "ms") {
    out.precision(v < 10 ? 2 : 1);
    out << v;
  } else {
    out << bench::Grouped(std::llround(v));
  }
  return out.str();
}

int RunBench(const BenchOptions& o) {
  if (o.runs < 1 || o.runs > 100) return Report(Status::InvalidArgument("--runs must be 1 to 100"));
  if (!(o.scale > 0 && o.scale <= 10)) {
    return Report(Status::InvalidArgument("--scale must be above 0 and at most 10"));
  }
  std::vector<const Workload*> chosen;
  for (const std::string& name : Split(o.workloads)) {
    auto it = std::find_if(bench::Workloads().begin(), bench::Workloads().end(),
                           [&](const Workload& w) { return w.name == name; });
    if (it == bench::Workloads().end()) {
      return Report(
          Status::InvalidArgument("--workloads: unknown workload '" + name +
                                  "' (seed, throughput, retries, enqueue, latency, memory)"));
    }
    chosen.push_back(&*it);
  }
  std::vector<std::unique_ptr<Backend>> backends;
  if (!o.store.empty()) {
    Result<std::unique_ptr<Backend>> b = Backend::Given(o.store);
    if (!b.ok()) return Report(b.status().WithContext("--store"));
    backends.push_back(std::move(*b));
  } else {
    for (const std::string& kind : Split(o.backends)) {
      if (kind != "redis" && kind != "sqlite") {
        return Report(
            Status::InvalidArgument("--backends: unknown backend '" + kind + "' (redis, sqlite)"));
      }
    }
    for (const std::string& kind : Split(o.backends)) {
      Result<std::unique_ptr<Backend>> b = Backend::Own(kind);
      if (!b.ok()) return Report(b.status());
      backends.push_back(std::move(*b));
    }
  }

  bench::WorkloadOptions wo;
  wo.scale = o.scale;
  wo.self_exe = bench::SelfExe();
  const unsigned cores = std::thread::hardware_concurrency();
  const bool progress = !o.json && isatty(STDERR_FILENO);
  if (!o.json) {
    std::cout << "retraced bench: " << cores << " cores";
    for (const auto& b : backends) std::cout << ", " << b->kind() << " " << b->version();
    std::cout << "; each figure is the median of " << o.runs << (o.runs == 1 ? " run" : " runs")
              << " (min-max)\n";
    for (const Workload* w : chosen) std::cout << "  " << w->name << ": " << w->what << "\n";
    std::cout << std::flush;
  }
  std::vector<Figure> figures;
  for (const Workload* w : chosen) {
    for (const auto& b : backends) {
      if (w->redis_only && (b->kind() != "redis" || !b->own())) continue;
      for (int run = 0; run < o.runs; ++run) {
        if (progress) {
          std::cerr << "\r" << w->name << " on " << b->kind() << ": run " << run + 1 << " of "
                    << o.runs << "   " << std::flush;
        }
        Result<std::vector<Sample>> samples = w->run(*b, wo);
        if (!samples.ok()) {
          if (progress) std::cerr << "\n";
          return Report(samples.status().WithContext(w->name + " on " + b->kind()));
        }
        for (const Sample& s : *samples) {
          auto it = std::find_if(figures.begin(), figures.end(), [&](const Figure& f) {
            return f.workload == w->name && f.backend == b->kind() && f.figure == s.figure;
          });
          if (it == figures.end()) {
            figures.push_back({w->name, b->kind(), s.figure, s.unit, {}});
            it = figures.end() - 1;
          }
          it->samples.push_back(s.value);
        }
      }
    }
  }
  if (progress) std::cerr << "\r" << std::string(40, ' ') << "\r" << std::flush;

  if (o.json) {
    Json out;
    out["cores"] = cores;
    out["runs"] = o.runs;
    out["scale"] = o.scale;
    Json versions = Json::object();
    versions["retraced"] = "0.1.0";
    for (const auto& b : backends) versions[b->kind()] = b->version();
    out["versions"] = versions;
    Json workloads = Json::object();
    for (const Workload* w : chosen) workloads[w->name] = w->what;
    out["workloads"] = workloads;
    out["figures"] = Json::array();
    for (const Figure& f : figures) {
      out["figures"].push_back({{"workload", f.workload},
                                {"backend", f.backend},
                                {"figure", f.figure},
                                {"unit", f.unit},
                                {"median", f.Median()},
                                {"min", *std::min_element(f.samples.begin(), f.samples.end())},
                                {"max", *std::max_element(f.samples.begin(), f.samples.end())},
                                {"samples", f.samples}});
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  Table t({"WORKLOAD", "BACKEND", "FIGURE", ">MEDIAN", ">MIN-MAX", "UNIT"});
  for (const Figure& f : figures) {
    t.AddRow({f.workload, f.backend, f.figure, Number(f.Median(), f.unit),
              Number(*std::min_element(f.samples.begin(), f.samples.end()), f.unit) + "-" +
                  Number(*std::max_element(f.samples.begin(), f.samples.end()), f.unit),
              f.unit});
  }
  t.Print(std::cout);
  return kExitOk;
}

}  // namespace

void AddBenchCommand(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Measure: runs the benchmark workloads (seed, throughput, retries, enqueue, latency, "
      "memory) on a redis-server it starts (no persistence, a free loopback port) and on SQLite "
      "files in a temporary directory, and prints the median of each figure with its range. "
      "Every run records the full history, as in production. See bench/README.md.");
  cmd->add_option("--workloads", o->workloads,
                  "Comma-separated (default: seed,throughput,retries,enqueue,latency,memory)");
  cmd->add_option("--backends", o->backends, "Comma-separated: redis, sqlite (default both)");
  cmd->add_option("--store", o->store,
                  "Run on this store instead (each run uses a queue of its own, purged after; "
                  "memory is measured only on the benchmark's own redis-server)");
  cmd->add_option("--runs", o->runs, "Runs per workload (default 3)");
  cmd->add_option(
      "--scale", o->scale,
      "Multiply job counts and durations by this (default 1; e.g. 0.1 for a quick look)");
  cmd->add_flag("--json", o->json, "Print the figures as JSON");
  cmd->callback([&run, o] { run = [o] { return RunBench(*o); }; });

  // The worker processes of the seed workload; not for users.
  auto w = std::make_shared<bench::BenchWorkerOptions>();
  CLI::App* worker = app.add_subcommand("bench-worker", "");
  worker->group("");
  worker->add_option("--store", w->store)->required();
  worker->add_option("--queue", w->queue)->required();
  worker->add_option("--concurrency", w->concurrency);
  worker->add_option("--prefetch", w->prefetch);
  worker->callback([&run, w] { run = [w] { return bench::RunBenchWorker(*w); }; });
}

}  // namespace retraced::cli
