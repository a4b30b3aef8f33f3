// A custom retry strategy, registered by name and then written in policy text
// like the built-in ones: "fibonacci(100ms, max=2s, retries=6, jitter=equal)".
//
//   custom_policy [STORE_URL]      (default sqlite:custom_policy.db)
#include <iostream>

#include "retraced/worker.h"

using namespace retraced;

int main(int argc, char** argv) {
  // The delay before jitter of retry `index` (1-based): base x fib(index).
  // Deterministic, so every stored decision can be recomputed.
  Status registered = RegisterStrategy({"fibonacci", {}, [](const Strategy& s, int index) {
                                          int64_t a = 1, b = 1;
                                          for (int i = 1; i < index; ++i)
                                            b = std::exchange(a, b) + b;
                                          return Millis(s.base.count() * a);
                                        }});
  if (!registered.ok()) {
    std::cerr << registered.ToString() << "\n";
    return 1;
  }

  std::string url = argc > 1 ? argv[1] : "sqlite:custom_policy.db";
  std::unique_ptr<Store> store = std::move(*OpenStore(url));
  NewJob j;
  j.queue = "syncs";
  j.type = "sync";
  j.policy = *ParsePolicy("fibonacci(10ms, max=1s, retries=5)");
  std::string id = (*store->Enqueue({&j, 1}, "example"))[0].id;

  WorkerOptions options;
  options.queues = {"syncs"};
  options.drain = true;
  options.log = [](std::string_view) {};
  Worker worker(*store, options);
  worker.Handle("sync", [](const JobContext& c) {
    if (c.attempt.n < 5) return HandlerResult::Temporary("UPSTREAM_BUSY", "try later");
    return HandlerResult::Success();
  });
  if (Status s = worker.Start(); !s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }
  worker.Wait();

  Job job = *store->GetJob(id);
  std::cout << "policy " << FormatPolicy(job.policy) << ": " << Name(job.state) << "\n";
  for (const Attempt& a : job.attempts) {
    if (a.decision && a.decision->action == Action::kRetry) {
      std::cout << "  attempt " << a.n << " -> " << a.decision->reason << "\n";
    }
  }
  return job.state == JobState::kCompleted ? 0 : 1;
}
