// Test helper: a real worker process with C++ handlers for the runtime tests.
//   test_worker STORE_URL QUEUE [--lease MS] [--heartbeat MS] [--grace MS] [--idle-poll MS]
//               [--concurrency N] [--poison-after N] [--drain]
// Handlers (job type -> behaviour; payload fields in parentheses):
//   ok         succeeds
//   flaky      fails temporary HTTP_503 until attempt `succeed_on` (default 3)
//   permanent  fails permanent INVALID_INPUT
//   sleep      sleeps `ms` (default 1000; `first_ms` on attempt 1), stopping early
//              when asked, then succeeds
//   crash      kills its own worker process with SIGKILL
//   throw      throws std::runtime_error("boom")
// Every run prints "RUN <job id> <attempt> <trigger>" on stdout.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <mutex>
#include <thread>

#include "retraced/json.h"
#include "retraced/worker.h"

using namespace retraced;

namespace {

std::mutex out_mu;

int64_t Field(const Job& job, const char* name, int64_t fallback) {
  Result<Json> j = ParseJson(job.payload);
  if (!j.ok() || !j->is_object() || !j->contains(name)) return fallback;
  return (*j)[name].get<int64_t>();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: test_worker STORE_URL QUEUE [options]\n";
    return 2;
  }
  WorkerOptions o;
  o.queues = {argv[2]};
  o.lease = Millis(2000);
  o.recover_every = Millis(50);
  StoreOptions so;
  for (int i = 3; i < argc; ++i) {
    std::string flag = argv[i];
    auto next = [&] { return std::stoll(argv[++i]); };
    if (flag == "--lease")
      o.lease = Millis(next());
    else if (flag == "--heartbeat")
      o.heartbeat_every = Millis(next());
    else if (flag == "--grace")
      o.grace = Millis(next());
    else if (flag == "--idle-poll")
      o.idle_poll = Millis(next());
    else if (flag == "--concurrency")
      o.concurrency = static_cast<int>(next());
    else if (flag == "--poison-after")
      so.poison_after = static_cast<int>(next());
    else if (flag == "--drain")
      o.drain = true;
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  Result<std::unique_ptr<Store>> store = OpenStore(argv[1], so);
  if (!store.ok()) {
    std::cerr << store.status().ToString() << "\n";
    return 1;
  }
  Worker worker(**store, o);
  auto say = [](const JobContext& c) {
    std::lock_guard lock(out_mu);
    std::cout << "RUN " << c.job.id << " " << c.attempt.n << " " << Name(c.attempt.trigger)
              << std::endl;
  };
  worker.Handle("ok", [&](const JobContext& c) {
    say(c);
    return HandlerResult::Success();
  });
  worker.Handle("flaky", [&](const JobContext& c) {
    say(c);
    if (c.attempt.n >= Field(c.job, "succeed_on", 3)) return HandlerResult::Success();
    return HandlerResult::Temporary("HTTP_503",
                                    "upstream busy (attempt " + std::to_string(c.attempt.n) + ")");
  });
  worker.Handle("permanent", [&](const JobContext& c) {
    say(c);
    return HandlerResult::Permanent("INVALID_INPUT", "the input cannot be processed");
  });
  worker.Handle("sleep", [&](const JobContext& c) {
    say(c);
    int64_t ms = Field(c.job, "ms", 1000);
    if (c.attempt.n == 1) ms = Field(c.job, "first_ms", ms);
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
      if (c.stop.stop_requested()) return HandlerResult::Temporary("STOPPED", "asked to stop");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return HandlerResult::Success();
  });
  worker.Handle("crash", [&](const JobContext& c) {
    say(c);
    raise(SIGKILL);
    return HandlerResult::Success();
  });
  worker.Handle("throw", [&](const JobContext& c) -> HandlerResult {
    say(c);
    throw std::runtime_error("boom");
  });

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  Status s = worker.Start();
  if (!s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }
  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig == SIGTERM || sig == SIGINT) worker.Stop();
  });
  signals.detach();
  worker.Wait();
  std::cout << "WORKER " << worker.id() << std::endl;
  return 0;
}
