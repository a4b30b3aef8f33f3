// Lifecycle hooks for alerting and metrics: count attempts and retries, and
// raise an alert when a job reaches the dead letter queue. A hook that throws
// is logged by the worker and changes nothing about the job.
//
//   lifecycle_hooks [STORE_URL]      (default sqlite:lifecycle_hooks.db)
#include <atomic>
#include <iostream>
#include <mutex>

#include "retraced/worker.h"

using namespace retraced;

class Metrics : public LifecycleHooks {
 public:
  void AfterAttempt(const AttemptReport&) override { ++attempts; }
  void OnRetryScheduled(const AttemptReport&) override { ++retries; }
  void OnDead(const AttemptReport& r) override {
    std::lock_guard lock(mu_);
    std::cout << "ALERT: job " << r.job.id << " (" << r.job.type
              << ") is dead: " << r.attempt.decision->reason << "\n";
  }
  void OnReplay(const Job& job, const Attempt& a) override {
    std::lock_guard lock(mu_);
    std::cout << "replayed job " << job.id << " is running again (attempt " << a.n << ")\n";
  }
  std::atomic<int> attempts{0}, retries{0};

 private:
  std::mutex mu_;
};

int main(int argc, char** argv) {
  std::string url = argc > 1 ? argv[1] : "sqlite:lifecycle_hooks.db";
  std::unique_ptr<Store> store = std::move(*OpenStore(url));
  std::vector<NewJob> jobs(2);
  jobs[0].queue = jobs[1].queue = "emails";
  jobs[0].type = "send";
  jobs[1].type = "send_to_bounced_address";
  for (NewJob& j : jobs) j.policy = *ParsePolicy("immediate(2)");
  (void)store->Enqueue(jobs, "example");

  auto metrics = std::make_shared<Metrics>();
  WorkerOptions options;
  options.queues = {"emails"};
  options.drain = true;
  options.log = [](std::string_view) {};
  Worker worker(*store, options);
  worker.Handle("send", [](const JobContext&) { return HandlerResult::Success(); });
  worker.Handle("send_to_bounced_address", [](const JobContext&) {
    return HandlerResult::Temporary("SMTP_451", "mailbox temporarily unavailable");
  });
  worker.AddHooks(metrics);
  if (Status s = worker.Start(); !s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }
  worker.Wait();
  std::cout << metrics->attempts << " attempts, " << metrics->retries << " retries scheduled\n";
  return metrics->attempts == 4 && metrics->retries == 2 ? 0 : 1;
}
