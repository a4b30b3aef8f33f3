// retraced demo: a realistic mix of jobs run by a real worker on the embedded
// store, a manual replay from the dead letter queue, and the story of each job.
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "commands.h"
#include "render.h"
#include "retraced/worker.h"
#include "store_flags.h"

namespace retraced::cli {
namespace {

constexpr std::string_view kDemoStore = "sqlite:retraced-demo.db";

struct DemoOptions {
  StoreFlags store;
};

struct DemoJob {
  const char* queue;
  const char* type;
  const char* payload;
  const char* policy;
};

// What each job does: the handlers below read the attempt and trigger, so the
// story is the same on every run.
constexpr DemoJob kJobs[] = {
    {"emails", "send_welcome_email", R"({"to":"ada@example.com"})",
     "exponential(1s, max=1m, retries=5)"},
    {"webhooks", "deliver_webhook", R"({"url":"https://hooks.example.com/orders","order":1042})",
     "exponential(100ms, factor=2, max=2s, retries=5, jitter=full)"},
    {"images", "resize_image", R"({"key":"uploads/cat.jpg"})",
     "phases(immediate(2), exponential(100ms, max=1s, retries=3))"},
    {"payments", "capture_payment", R"({"order":1042,"amount_cents":4999})",
     "exponential(200ms, retries=3)"},
    {"crm", "sync_contact", R"({"contact":17})", "fixed(150ms, retries=3)"},
    {"crm", "sync_contact", R"({"contact":18})", "fixed(150ms, retries=3)"},
    {"crm", "sync_contact", R"({"contact":19})", "fixed(150ms, retries=3)"},
    {"reports", "build_report", R"({"month":"2026-10"})",
     "linear(300ms, step=300ms, retries=10, deadline=2s)"},
};

void RegisterHandlers(Worker& w) {
  auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(5)); };
  w.Handle("send_welcome_email", [pause](const JobContext&) {
    pause();
    return HandlerResult::Success();
  });
  w.Handle("deliver_webhook", [pause](const JobContext& c) {
    pause();
    if (c.attempt.n < 3) {
      return HandlerResult::Temporary("HTTP_503",
                                      "hooks.example.com answered 503 Service Unavailable");
    }
    return HandlerResult::Success();
  });
  w.Handle("resize_image", [pause](const JobContext& c) {
    pause();
    if (c.attempt.n < 4)
      return HandlerResult::Temporary("S3_SLOWDOWN", "S3 asked to slow down (503 SlowDown)");
    return HandlerResult::Success();
  });
  w.Handle("capture_payment", [pause](const JobContext& c) {
    pause();
    if (c.attempt.trigger == Trigger::kManual) return HandlerResult::Success();
    return HandlerResult::Permanent("CARD_DECLINED",
                                    "card ending 4242 was declined (do_not_honor)");
  });
  w.Handle("sync_contact", [pause](const JobContext& c) {
    pause();
    return HandlerResult::Temporary("TIMEOUT", "crm.example.com did not answer within " +
                                                   std::to_string(2 + c.attempt.n % 2) + "s");
  });
  w.Handle("build_report", [pause](const JobContext&) {
    pause();
    return HandlerResult::Temporary("DB_LOCKED", "the reporting database is locked by a migration");
  });
}

// Runs a worker on every demo queue until they have nothing left.
Status RunUntilIdle(Store& store) {
  WorkerOptions o;
  o.queues = {"emails", "webhooks", "images", "payments", "crm", "reports"};
  o.concurrency = 4;
  o.drain = true;
  o.id = "demo-worker";
  o.log = [](std::string_view) {};
  Worker w(store, o);
  RegisterHandlers(w);
  RETRACED_RETURN_IF_ERROR(w.Start());
  w.Wait();
  return Status::Ok();
}

int RunDemo(const DemoOptions& o) {
  StoreFlags flags = o.store;
  if (flags.url.empty() && GlobalStoreFlags().url.empty()) {
    // The demo's own file, made anew each run.
    flags.url = std::string(kDemoStore);
    std::string path(kDemoStore.substr(kDemoStore.find(':') + 1));
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
  int exit_code = kExitOk;
  std::unique_ptr<Store> store = OpenOrReport(flags, &exit_code);
  if (!store) return exit_code;
  std::string url = flags.url.empty() ? GlobalStoreFlags().url : flags.url;

  std::vector<NewJob> batch;
  for (const DemoJob& d : kJobs) {
    NewJob j;
    j.queue = d.queue;
    j.type = d.type;
    j.payload = d.payload;
    j.policy = *ParsePolicy(d.policy);
    batch.push_back(std::move(j));
  }
  Result<std::vector<EnqueueResult>> added = store->Enqueue(batch, "demo");
  if (!added.ok()) return Report(added.status());
  std::cout << "ReTraced demo: " << batch.size()
            << " jobs into 6 queues, each with its own retry policy; a worker runs them until "
               "none is left.\n\n";

  TimePoint start = store->Now();
  Status s = RunUntilIdle(*store);
  if (!s.ok()) return Report(s);

  // An operator looks at the dead letter queue and replays the payment once
  // the customer has updated their card.
  std::string payment;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (std::string_view(kJobs[i].type) == "capture_payment") payment = (*added)[i].id;
  }
  ReplayRequest replay;
  replay.filter.ids = {payment};
  replay.by = "demo-operator";
  replay.note = "customer updated their card";
  replay.mode = Replay::Mode::kMore;
  replay.more = 1;
  Result<ReplayResult> replayed = store->ReplayJobs(replay);
  if (!replayed.ok()) return Report(replayed.status());
  s = RunUntilIdle(*store);
  if (!s.ok()) return Report(s);

  std::cout << "What happened to each job (times from the start of the run):\n\n";
  for (const EnqueueResult& r : *added) {
    Result<Job> job = store->GetJob(r.id);
    if (!job.ok()) return Report(job.status());
    PrintStory(*job, start, std::cout);
  }
  Result<std::vector<DeadGroup>> groups = store->GroupDead({});
  if (!groups.ok()) return Report(groups.status());
  std::cout << "The dead letter queue, grouped by error:\n\n";
  PrintDeadGroups(*groups, std::cout);
  std::cout << "\nEverything above is stored. Explore it:\n"
            << "  retraced --store " << url << " jobs show " << payment << "\n"
            << "  retraced --store " << url << " dlq list\n"
            << "  retraced --store " << url << " stats\n";
  return kExitOk;
}

}  // namespace

void AddDemoCommand(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "demo",
      "Run a realistic mix of jobs (successes, retries under each strategy, a permanent "
      "failure, exhausted retries, a deadline, a manual replay) and show what happened. "
      "Without --store it writes retraced-demo.db in the working directory, replacing it.");
  AddStoreFlag(*cmd, o->store);
  cmd->callback([&run, o] { run = [o] { return RunDemo(*o); }; });
}

}  // namespace retraced::cli
