// A custom classifier: the handler reports raw HTTP statuses, and one
// function decides which are worth retrying, for every job type at once.
//
//   custom_classifier [STORE_URL]      (default sqlite:custom_classifier.db)
#include <iostream>

#include "retraced/worker.h"

using namespace retraced;

int main(int argc, char** argv) {
  std::string url = argc > 1 ? argv[1] : "sqlite:custom_classifier.db";
  std::unique_ptr<Store> store = std::move(*OpenStore(url));

  std::vector<NewJob> jobs;
  for (int status : {200, 429, 404, 503}) {
    NewJob j;
    j.queue = "webhooks";
    j.type = "deliver";
    j.payload = "{\"status\":" + std::to_string(status) + "}";
    j.policy = *ParsePolicy("fixed(20ms, retries=2)");
    jobs.push_back(j);
  }
  std::vector<EnqueueResult> added = *store->Enqueue(jobs, "example");

  WorkerOptions options;
  options.queues = {"webhooks"};
  options.drain = true;
  options.log = [](std::string_view) {};
  Worker worker(*store, options);
  worker.Handle("deliver", [](const JobContext& c) {
    int status = std::stoi(c.job.payload.substr(c.job.payload.find(':') + 1));
    if (status < 300) return HandlerResult::Success();
    return HandlerResult::Unclassified("HTTP_" + std::to_string(status),
                                       "the endpoint answered " + std::to_string(status));
  });
  // 429 and 5xx are worth retrying; any other 4xx never will be.
  worker.SetClassifier([](const Job&, HandlerFailure& f) {
    if (f.code.rfind("HTTP_", 0) != 0) return;
    int status = std::stoi(f.code.substr(5));
    if (status == 429) f.code = "RATE_LIMITED";
    f.error_class =
        (status == 429 || status >= 500) ? ErrorClass::kTemporary : ErrorClass::kPermanent;
  });
  if (Status s = worker.Start(); !s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }
  worker.Wait();

  for (const EnqueueResult& r : added) {
    Job job = *store->GetJob(r.id);
    std::cout << job.payload << ": " << Name(job.state) << " after " << job.attempts.size()
              << (job.attempts.size() == 1 ? " attempt" : " attempts");
    if (job.attempts.back().error) {
      const Error& e = *job.attempts.back().error;
      std::cout << " (" << Name(e.error_class) << " " << e.code << ")";
    }
    std::cout << "\n";
  }
  return 0;
}
