// retraced jobs list|show|cancel, and retraced stats.
#include <iostream>
#include <memory>
#include <tuple>

#include "commands.h"
#include "job_views.h"
#include "render.h"
#include "store/store_json.h"
#include "store_flags.h"

namespace retraced::cli {
namespace {

struct CancelOptions {
  StoreFlags store;
  std::string id, by, note;
};

struct StatsOptions {
  StoreFlags store;
  std::string queue;
  bool json = false;
};

}  // namespace

namespace {

// An RFC 3339 instant, or a duration meaning that long before `now`.
Result<TimePoint> InstantOrAgo(const std::string& text, TimePoint now) {
  if (Result<Millis> ago = ParseDuration(text); ago.ok()) return now - *ago;
  Result<TimePoint> t = ParseTime(text);
  if (!t.ok()) {
    return Status::InvalidArgument("'" + text +
                                   "' is neither a time (RFC 3339) nor a duration such as 1h");
  }
  return t;
}

}  // namespace

int RunList(const ListOptions& o) {
  int exit_code = kExitOk;
  JobFilter f;
  if (!o.queue.empty()) f.queue = o.queue;
  if (o.dead_only) {
    f.state = JobState::kDead;
  } else if (!o.state.empty()) {
    f.state = StateFlag(o.state, &exit_code);
    if (!f.state) return exit_code;
  }
  if (!o.type.empty()) f.type = o.type;
  if (!o.code.empty()) f.code = o.code;
  if (!o.error_class.empty()) {
    Result<ErrorClass> c = ParseErrorClass(o.error_class);
    if (!c.ok()) return Report(c.status().WithContext("--class"));
    f.error_class = *c;
  }
  f.limit = o.limit;
  f.cursor = o.cursor;
  std::unique_ptr<Store> store = OpenOrReport(o.store, &exit_code);
  if (!store) return exit_code;
  for (auto [flag, text, bound] : {std::tuple{"--since", &o.since, &f.created_after},
                                   std::tuple{"--until", &o.until, &f.created_before}}) {
    if (text->empty()) continue;
    Result<TimePoint> t = InstantOrAgo(*text, store->Now());
    if (!t.ok()) return Report(t.status().WithContext(flag));
    *bound = *t;
  }
  Result<JobPage> page = store->ListJobs(f);
  if (!page.ok()) return Report(page.status());
  if (o.json) {
    std::cout << DumpJson(ToJson(*page), 2) << "\n";
  } else {
    PrintJobTable(*page, std::cout);
  }
  return kExitOk;
}

int RunShow(const ShowOptions& o) {
  int exit_code = kExitOk;
  std::unique_ptr<Store> store = OpenOrReport(o.store, &exit_code);
  if (!store) return exit_code;
  Result<Job> job = store->GetJob(o.id);
  if (!job.ok()) return Report(job.status());
  if (o.json) {
    std::cout << DumpJson(ToJson(*job), 2) << "\n";
  } else {
    PrintTimeline(*job, std::cout);
  }
  return kExitOk;
}

namespace {

int RunCancel(const CancelOptions& o) {
  int exit_code = kExitOk;
  std::unique_ptr<Store> store = OpenOrReport(o.store, &exit_code);
  if (!store) return exit_code;
  Status s = store->Cancel(o.id, o.by, o.note);
  if (!s.ok()) return Report(s);
  std::cout << "cancelled " << o.id << "\n";
  return kExitOk;
}

int RunStats(const StatsOptions& o) {
  int exit_code = kExitOk;
  std::unique_ptr<Store> store = OpenOrReport(o.store, &exit_code);
  if (!store) return exit_code;
  Result<std::vector<QueueStats>> stats =
      store->Stats(o.queue.empty() ? std::nullopt : std::optional<std::string_view>(o.queue));
  if (!stats.ok()) return Report(stats.status());
  if (o.json) {
    Json all = Json::array();
    for (const QueueStats& s : *stats) all.push_back(ToJson(s));
    std::cout << DumpJson(all, 2) << "\n";
  } else {
    PrintStats(*stats, std::cout);
  }
  return kExitOk;
}

}  // namespace

void AddListOptions(CLI::App& cmd, const std::shared_ptr<ListOptions>& o, bool with_state) {
  cmd.add_option("--queue", o->queue, "Only this queue");
  if (with_state) {
    cmd.add_option("--state", o->state,
                   "Only this state: scheduled, ready, active, retry_wait, completed, dead, "
                   "cancelled");
  }
  cmd.add_option("--type", o->type, "Only this job type");
  cmd.add_option("--code", o->code, "Only jobs whose latest error has this code");
  cmd.add_option("--class", o->error_class,
                 "Only jobs whose latest error is of this class: temporary or permanent");
  cmd.add_option("--since", o->since,
                 "Only jobs created at or after this time (RFC 3339) or this long ago (e.g. 1h)");
  cmd.add_option("--until", o->until, "Only jobs created before this time or this long ago");
  cmd.add_option("--limit", o->limit, "Jobs per page, 1 to 1000 (default 50)");
  cmd.add_option("--cursor", o->cursor, "Continue after the page that printed this cursor");
  cmd.add_flag("--json", o->json, "Print JSON");
  AddStoreFlag(cmd, o->store);
}

void AddJobsCommand(CLI::App& app, RunFn& run) {
  CLI::App* jobs = app.add_subcommand("jobs", "List, inspect and cancel jobs");
  jobs->require_subcommand(1);

  auto list = std::make_shared<ListOptions>();
  CLI::App* l = jobs->add_subcommand("list", "List jobs, newest first");
  AddListOptions(*l, list, true);
  l->callback([&run, list] { run = [list] { return RunList(*list); }; });

  auto show = std::make_shared<ShowOptions>();
  CLI::App* s = jobs->add_subcommand(
      "show", "A job's whole story: attempts, errors, retry decisions, events");
  s->add_option("id", show->id, "Job id")->required();
  s->add_flag("--json", show->json, "Print the job as JSON");
  AddStoreFlag(*s, show->store);
  s->callback([&run, show] { run = [show] { return RunShow(*show); }; });

  auto cancel = std::make_shared<CancelOptions>();
  CLI::App* c = jobs->add_subcommand("cancel", "Cancel a job that has not finished");
  c->add_option("id", cancel->id, "Job id")->required();
  c->add_option("--by", cancel->by, "Who is cancelling (recorded)")->required();
  c->add_option("--note", cancel->note, "Why (recorded)");
  AddStoreFlag(*c, cancel->store);
  c->callback([&run, cancel] { run = [cancel] { return RunCancel(*cancel); }; });

  auto stats = std::make_shared<StatsOptions>();
  CLI::App* st = app.add_subcommand("stats", "Jobs per state and counters, per queue");
  st->add_option("--queue", stats->queue, "Only this queue");
  st->add_flag("--json", stats->json, "Print JSON");
  AddStoreFlag(*st, stats->store);
  st->callback([&run, stats] { run = [stats] { return RunStats(*stats); }; });
}

}  // namespace retraced::cli
