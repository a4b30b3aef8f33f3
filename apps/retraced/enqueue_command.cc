// retraced enqueue: adds one job and prints its id.
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "commands.h"
#include "retraced/json.h"
#include "store_flags.h"

namespace retraced::cli {
namespace {

struct EnqueueOptions {
  StoreFlags store;
  std::string queue, type, payload, policy, delay, at, unique, timeout, id, deadline_at;
  int priority = 0;
  bool raw = false;
  bool json = false;
};

// The payload bytes the flag names: literal text, @file, or - for stdin.
Result<std::string> ReadPayload(const std::string& flag) {
  if (flag == "-") {
    std::ostringstream in;
    in << std::cin.rdbuf();
    return in.str();
  }
  if (!flag.empty() && flag[0] == '@') {
    std::ifstream file(flag.substr(1), std::ios::binary);
    if (!file)
      return Status::InvalidArgument("--payload: cannot read file '" + flag.substr(1) + "'");
    return std::string(std::istreambuf_iterator<char>(file), {});
  }
  return flag;
}

int RunEnqueue(const EnqueueOptions& o) {
  NewJob job;
  job.queue = o.queue;
  job.type = o.type;
  if (!o.id.empty()) job.id = o.id;
  if (!o.unique.empty()) job.unique_key = o.unique;
  job.priority = o.priority;

  Result<std::string> payload = ReadPayload(o.payload.empty() ? "{}" : o.payload);
  if (!payload.ok()) return Report(payload.status());
  if (o.raw) {
    job.payload = std::move(*payload);
  } else {
    // JSON payloads are checked and stored in compact form.
    Result<Json> parsed = ParseJson(*payload);
    if (!parsed.ok()) {
      return Report(parsed.status().WithContext("--payload"));
    }
    job.payload = parsed->dump();
  }
  if (!o.policy.empty()) {
    Result<RetryPolicy> p = ParsePolicy(o.policy);
    if (!p.ok()) return Report(p.status().WithContext("--policy"));
    job.policy = std::move(*p);
  }
  if (!o.timeout.empty()) {
    Result<Millis> t = ParseDuration(o.timeout);
    if (!t.ok()) return Report(t.status().WithContext("--timeout"));
    job.timeout = *t;
  }
  if (!o.deadline_at.empty()) {
    Result<TimePoint> t = ParseTime(o.deadline_at);
    if (!t.ok()) return Report(t.status().WithContext("--deadline-at"));
    job.deadline_at = *t;
  }
  int exit_code = kExitOk;
  std::unique_ptr<Store> store = OpenOrReport(o.store, &exit_code);
  if (!store) return exit_code;
  if (!o.delay.empty()) {
    Result<Millis> d = ParseDuration(o.delay);
    if (!d.ok()) return Report(d.status().WithContext("--delay"));
    job.run_at = store->Now() + *d;
  } else if (!o.at.empty()) {
    Result<TimePoint> t = ParseTime(o.at);
    if (!t.ok()) return Report(t.status().WithContext("--at"));
    job.run_at = *t;
  }

  Result<std::vector<EnqueueResult>> r = store->Enqueue({&job, 1}, "cli");
  if (!r.ok()) return Report(r.status());
  const EnqueueResult& result = r->front();
  if (!result.created) std::cerr << "retraced: not enqueued: " << result.note << "\n";
  if (o.json) {
    Result<Job> stored = store->GetJob(result.id);
    if (!stored.ok()) return Report(stored.status());
    Json j = ToJson(*stored);
    std::cout << DumpJson(j, 2) << "\n";
  } else {
    std::cout << result.id << "\n";
  }
  return kExitOk;
}

}  // namespace

void AddEnqueueCommand(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<EnqueueOptions>();
  CLI::App* cmd =
      app.add_subcommand("enqueue", "Add a job; prints its id (or, with --json, the stored job)");
  cmd->add_option("--queue", o->queue, "Queue name")->required();
  cmd->add_option("--type", o->type, "Job type: the handler that runs it")->required();
  cmd->add_option("--payload", o->payload,
                  "JSON payload: literal text, @FILE, or - for stdin (default {})");
  cmd->add_flag("--raw", o->raw, "Take the payload bytes as they are, not as JSON");
  cmd->add_option("--policy", o->policy,
                  "Retry policy, e.g. 'exponential(1s, max=1m, retries=5, jitter=full)'");
  auto* delay = cmd->add_option("--delay", o->delay, "Run after this long, e.g. 5s, 10m");
  auto* at = cmd->add_option("--at", o->at, "Run at this time (RFC 3339)");
  delay->excludes(at);
  cmd->add_option("--unique", o->unique, "Unique key: no second live job in the queue with it");
  cmd->add_option("--timeout", o->timeout, "Time limit per attempt, e.g. 30s");
  cmd->add_option("--deadline-at", o->deadline_at,
                  "No retry past this time (RFC 3339); default from the policy's deadline=");
  cmd->add_option("--id", o->id, "Job id (default: a generated ULID)");
  cmd->add_option("--priority", o->priority, "Higher runs first among due jobs (default 0)");
  cmd->add_flag("--json", o->json, "Print the stored job as JSON");
  AddStoreFlag(*cmd, o->store);
  cmd->callback([&run, o] { run = [o] { return RunEnqueue(*o); }; });
}

}  // namespace retraced::cli
