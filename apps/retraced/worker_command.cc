// retraced worker: runs a program per job (exec handlers) until stopped or drained.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "commands.h"
#include "retraced/exec_handler.h"
#include "retraced/worker.h"
#include "store_flags.h"

namespace retraced::cli {
namespace {

struct WorkerCmdOptions {
  StoreFlags store;
  std::string queues, exec, lease = "30s", grace = "10s", timeout_class;
  int concurrency = 4;
  bool drain = false;
  bool quiet = false;
};

// One line per ended attempt on stderr, so an operator watching the worker
// sees each decision as it is made.
class AttemptLog : public LifecycleHooks {
 public:
  void AfterAttempt(const AttemptReport& r) override {
    std::ostringstream line;
    line << FormatTime(r.attempt.ended_at.value_or(r.attempt.started_at)) << " job " << r.job.id
         << " (" << r.job.type << ") attempt " << r.attempt.n << " " << Name(r.attempt.trigger)
         << ": " << (r.attempt.outcome ? Name(*r.attempt.outcome) : "ended");
    if (r.attempt.error) line << " " << r.attempt.error->code;
    if (r.attempt.decision && r.attempt.decision->action != Action::kNone) {
      line << " -> " << Name(r.state) << ": " << r.attempt.decision->reason;
    }
    std::lock_guard lock(mu_);
    std::cerr << line.str() << "\n";
  }

 private:
  std::mutex mu_;
};

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int RunWorker(const WorkerCmdOptions& o) {
  WorkerOptions w;
  w.queues = SplitList(o.queues);
  w.concurrency = o.concurrency;
  w.drain = o.drain;
  Result<Millis> lease = ParseDuration(o.lease);
  if (!lease.ok()) return Report(lease.status().WithContext("--lease"));
  w.lease = *lease;
  Result<Millis> grace = ParseDuration(o.grace);
  if (!grace.ok()) return Report(grace.status().WithContext("--grace"));
  w.grace = *grace;
  Result<std::vector<std::string>> argv = SplitCommand(o.exec);
  if (!argv.ok()) return Report(argv.status().WithContext("--exec"));

  // SIGINT and SIGTERM are taken by a thread of their own: blocked here,
  // before any other thread exists, so every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  int exit_code = kExitOk;
  std::unique_ptr<Store> store = OpenOrReport(o.store, &exit_code);
  if (!store) return exit_code;
  Worker worker(*store, w);
  worker.HandleAny(ExecHandler(*argv));
  if (!o.quiet) worker.AddHooks(std::make_shared<AttemptLog>());
  Status started = worker.Start();
  if (!started.ok()) return Report(started);

  std::atomic<bool> done{false};
  std::thread signals([&] {
    timespec tick{0, 100'000'000};
    while (!done) {
      int sig = sigtimedwait(&stop_signals, nullptr, &tick);
      if (sig == SIGINT || sig == SIGTERM) {
        std::cerr << "retraced: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
                  << ": stopping; running jobs have " << o.grace
                  << " to finish (signal again to exit at once)\n";
        // A second signal ends the process: the leases it holds expire and
        // other workers recover the jobs.
        std::thread([&stop_signals] {
          int again = 0;
          sigwait(&stop_signals, &again);
          std::cerr << "retraced: exiting at once; held jobs will be recovered when their leases "
                       "expire\n";
          std::_Exit(130);
        }).detach();
        worker.Stop();
        return;
      }
    }
  });
  worker.Wait();
  done = true;
  signals.join();
  Worker::Counts c = worker.counts();
  std::cerr << "retraced: worker " << worker.id() << " ran " << c.claimed
            << " attempts: " << c.succeeded << " succeeded, " << c.failed << " failed, "
            << c.timed_out << " timed out, " << c.lost << " lost their lease, " << c.released
            << " released\n";
  return kExitOk;
}

}  // namespace

void AddWorkerCommand(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<WorkerCmdOptions>();
  CLI::App* cmd = app.add_subcommand(
      "worker",
      "Run jobs: claims jobs of the queues and runs PROGRAM for each, without a shell. The "
      "payload is on its stdin; RETRACED_JOB_ID, RETRACED_ATTEMPT, RETRACED_TRIGGER, "
      "RETRACED_QUEUE and RETRACED_JOB_TYPE are in its environment. Exit 0 is success, 75 a "
      "temporary failure, other sysexits codes (64-78) permanent ones; a JSON object on the last "
      "line of stdout, {\"class\":\"permanent\",\"code\":\"...\",\"message\":\"...\"}, says more. "
      "SIGINT or SIGTERM stops it gracefully.");
  cmd->add_option("--queue", o->queues, "Queue(s) to serve, comma-separated")->required();
  cmd->add_option("--exec", o->exec, "The program to run per job, e.g. './send_email.py --live'")
      ->required();
  cmd->add_option("--concurrency", o->concurrency, "Jobs run at once (default 4)");
  cmd->add_option("--lease", o->lease, "Lease per claim, renewed by heartbeats (default 30s)");
  cmd->add_option("--grace", o->grace,
                  "On SIGINT/SIGTERM, how long running jobs may finish (default 10s)");
  cmd->add_flag("--drain", o->drain,
                "Exit once the queues have no ready, scheduled, retry_wait or active job");
  cmd->add_flag("--quiet", o->quiet, "No line per attempt on stderr");
  AddStoreFlag(*cmd, o->store);
  cmd->callback([&run, o] { run = [o] { return RunWorker(*o); }; });
}

}  // namespace retraced::cli
