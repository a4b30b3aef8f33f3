// The worker: claims jobs of one or more queues from a store and runs their
// handlers on N executor threads, with leases kept alive by heartbeats,
// expired leases of other workers recovered, per-job timeouts, and a
// graceful stop.
//
//   WorkerOptions options;
//   options.queues = {"emails"};
//   Worker w(store, options);
//   w.Handle("send_welcome", [](const JobContext& c) { ...; return HandlerResult::Success(); });
//   w.Start();  ... w.Stop();
//
// Inside, one class with five kinds of threads: a fetcher (claims batches
// into a local queue, and when idle sleeps until the next job falls due),
// executors (run handlers), two reporters (report successes and failures to
// the store in batches), a supervisor (heartbeats, recovery, timeouts), and
// a watcher (wakes the fetcher when the store signals new jobs).
//
// Thread-safety: Handle, HandleAny, SetClassifier and AddHooks before Start;
// Stop, Notify and Wait from any thread.
#ifndef RETRACED_WORKER_H_
#define RETRACED_WORKER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "retraced/handler.h"
#include "retraced/store.h"

namespace retraced {

struct WorkerOptions {
  std::vector<std::string> queues;  // served in turn
  int concurrency = 4;              // executor threads
  int prefetch = -1;                // jobs claimed ahead of free executors; -1: concurrency
  Millis lease{30'000};             // how long a claim holds a job without a heartbeat
  Millis heartbeat_every{0};        // 0: a third of the lease
  Millis recover_every{1'000};      // how often expired leases are looked for
  Millis idle_poll{50};             // idle with nothing due: how often to look for new jobs
  Millis grace{10'000};             // Stop(): how long running jobs may finish
  std::string id;                   // empty: DefaultWorkerId()
  ClassifierConfig classes;         // for queues without their own
  std::map<std::string, ClassifierConfig> queue_classes;
  // The class of a handler's escaping exception (code UNHANDLED_EXCEPTION);
  // unset: the queue's class for unclassified failures (temporary by default).
  std::optional<ErrorClass> exception_class;
  // Stop once the served queues hold no ready, scheduled, retry_wait or active job.
  bool drain = false;
  int ack_batch = 128;  // successes reported to the store in one call, at most
  // Where the worker's log lines go (one line per call); unset: stderr.
  std::function<void(std::string_view line)> log;
};

// A readable id that is unique across machines and restarts:
// "HOST:PID:STARTED", e.g. "web-3:4242:20261128T120000.123Z".
std::string DefaultWorkerId();

class Worker {
 public:
  // `store` must outlive the worker.
  Worker(Store& store, WorkerOptions options);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();  // Stop()s and waits

  void Handle(std::string type, Handler handler);
  // For job types without a handler of their own (e.g. one exec program for all).
  void HandleAny(Handler handler);
  void SetClassifier(FailureClassifier classifier);
  void AddHooks(std::shared_ptr<LifecycleHooks> hooks);

  // Starts the threads. InvalidArgument for bad options.
  Status Start();
  // Stops claiming; running jobs get `grace` to finish; jobs still running
  // then, and jobs claimed but not started, are released (their next run is a
  // recovery). Returns when every thread has ended. Safe to call twice.
  void Stop();
  // Wakes the fetcher at once, e.g. after enqueueing in this process.
  void Notify();
  // Blocks until the worker has stopped: drained (options.drain) or Stop().
  void Wait();

  const std::string& id() const;

  struct Counts {
    int64_t claimed = 0, succeeded = 0, failed = 0, timed_out = 0, lost = 0, released = 0;
  };
  Counts counts() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retraced

#endif  // RETRACED_WORKER_H_
