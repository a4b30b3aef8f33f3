// retraced dlq list|groups|show|replay|purge: the dead letter queue.
#include <iostream>
#include <memory>

#include "commands.h"
#include "job_views.h"
#include "render.h"
#include "store/store_json.h"
#include "store_flags.h"

namespace retraced::cli {
namespace {

struct GroupsOptions {
  StoreFlags store;
  std::string queue, code;
  bool json = false;
};

struct ReplayOptions {
  StoreFlags store;
  std::vector<std::string> ids;
  bool all = false;
  std::string queue, code, by, note, mode = "fresh";
  bool dry_run = false;
  bool json = false;
};

struct PurgeOptions {
  StoreFlags store;
  std::vector<std::string> ids;
  bool all = false;
  std::string queue, older_than, by, note;
  bool dry_run = false;
  bool json = false;
};

// Either job ids or --all, not both and not neither.
Status CheckSelection(const std::vector<std::string>& ids, bool all, bool has_filters) {
  if (ids.empty() && !all) return Status::InvalidArgument("name job ids, or --all with filters");
  if (!ids.empty() && all) return Status::InvalidArgument("give job ids or --all, not both");
  if (!ids.empty() && has_filters) {
    return Status::InvalidArgument("--queue, --code and --older-than go with --all, not with ids");
  }
  return Status::Ok();
}

int RunGroups(const GroupsOptions& o) {
  int exit_code = kExitOk;
  std::unique_ptr<Store> store = OpenOrReport(o.store, &exit_code);
  if (!store) return exit_code;
  JobFilter f;
  if (!o.queue.empty()) f.queue = o.queue;
  if (!o.code.empty()) f.code = o.code;
  Result<std::vector<DeadGroup>> groups = store->GroupDead(f);
  if (!groups.ok()) return Report(groups.status());
  if (o.json) {
    Json all = Json::array();
    for (const DeadGroup& g : *groups) all.push_back(ToJson(g));
    std::cout << DumpJson(all, 2) << "\n";
  } else {
    PrintDeadGroups(*groups, std::cout);
  }
  return kExitOk;
}

int RunReplay(const ReplayOptions& o) {
  Status sel = CheckSelection(o.ids, o.all, !o.queue.empty() || !o.code.empty());
  if (!sel.ok()) return Report(sel);
  ReplayRequest req;
  Replay mode;
  Status m = ParseReplayMode(o.mode, mode);
  if (!m.ok()) return Report(m.WithContext("--mode"));
  req.mode = mode.mode;
  req.more = mode.more;
  req.filter.ids = o.ids;
  if (!o.queue.empty()) req.filter.queue = o.queue;
  if (!o.code.empty()) req.filter.code = o.code;
  req.by = o.by;
  req.note = o.note;
  req.dry_run = o.dry_run;
  int exit_code = kExitOk;
  std::unique_ptr<Store> store = OpenOrReport(o.store, &exit_code);
  if (!store) return exit_code;
  Result<ReplayResult> r = store->ReplayJobs(req);
  if (!r.ok()) return Report(r.status());
  if (o.json) {
    std::cout << DumpJson(Json{{"replayed", r->replayed}, {"dry_run", o.dry_run}}, 2) << "\n";
    return kExitOk;
  }
  std::cout << (o.dry_run ? "would replay " : "replayed ") << r->replayed.size()
            << (r->replayed.size() == 1 ? " job" : " jobs") << " (mode " << o.mode << ", by "
            << o.by << ")" << (o.dry_run ? " - dry run, nothing changed" : "") << "\n";
  for (const std::string& id : r->replayed) std::cout << id << "\n";
  return kExitOk;
}

int RunPurge(const PurgeOptions& o) {
  Status sel = CheckSelection(o.ids, o.all, !o.queue.empty() || !o.older_than.empty());
  if (!sel.ok()) return Report(sel);
  PurgeRequest req;
  req.state = JobState::kDead;
  req.ids = o.ids;
  if (!o.queue.empty()) req.queue = o.queue;
  if (!o.older_than.empty()) {
    Result<Millis> d = ParseDuration(o.older_than);
    if (!d.ok()) return Report(d.status().WithContext("--older-than"));
    req.older_than = *d;
  }
  req.by = o.by;
  req.note = o.note;
  req.dry_run = o.dry_run;
  int exit_code = kExitOk;
  std::unique_ptr<Store> store = OpenOrReport(o.store, &exit_code);
  if (!store) return exit_code;
  Result<PurgeResult> r = store->Purge(req);
  if (!r.ok()) return Report(r.status());
  if (o.json) {
    std::cout << DumpJson(Json{{"purged", r->purged}, {"dry_run", o.dry_run}}, 2) << "\n";
  } else {
    std::cout << (o.dry_run ? "would purge " : "purged ") << r->purged
              << (r->purged == 1 ? " dead job" : " dead jobs") << " with their history"
              << (o.dry_run ? " - dry run, nothing changed" : "") << "\n";
  }
  return kExitOk;
}

}  // namespace

void AddDlqCommand(CLI::App& app, RunFn& run) {
  CLI::App* dlq = app.add_subcommand("dlq", "The dead letter queue: inspect, replay, purge");
  dlq->require_subcommand(1);

  auto list = std::make_shared<ListOptions>();
  list->dead_only = true;
  CLI::App* l = dlq->add_subcommand("list", "List dead jobs, newest first");
  AddListOptions(*l, list, false);
  l->callback([&run, list] { run = [list] { return RunList(*list); }; });

  auto groups = std::make_shared<GroupsOptions>();
  CLI::App* g = dlq->add_subcommand(
      "groups", "Dead jobs grouped by error: class, code and message signature");
  g->add_option("--queue", groups->queue, "Only this queue");
  g->add_option("--code", groups->code, "Only this error code");
  g->add_flag("--json", groups->json, "Print JSON");
  AddStoreFlag(*g, groups->store);
  g->callback([&run, groups] { run = [groups] { return RunGroups(*groups); }; });

  auto show = std::make_shared<ShowOptions>();
  CLI::App* s = dlq->add_subcommand("show", "A dead job's whole story and why retries stopped");
  s->add_option("id", show->id, "Job id")->required();
  s->add_flag("--json", show->json, "Print the job as JSON");
  AddStoreFlag(*s, show->store);
  s->callback([&run, show] { run = [show] { return RunShow(*show); }; });

  auto replay = std::make_shared<ReplayOptions>();
  CLI::App* r = dlq->add_subcommand(
      "replay",
      "Run dead jobs again. Each keeps its id and history; the next attempt is recorded as "
      "manual, with who replayed it and why");
  r->add_option("ids", replay->ids, "Job ids to replay (dead or cancelled)");
  r->add_flag("--all", replay->all, "Replay every dead job that matches --queue and --code");
  r->add_option("--queue", replay->queue, "With --all: only this queue");
  r->add_option("--code", replay->code, "With --all: only jobs whose latest error has this code");
  r->add_option("--by", replay->by, "Who is replaying (recorded)")->required();
  r->add_option("--note", replay->note, "Why (recorded)");
  r->add_option("--mode", replay->mode,
                "fresh: the policy's full retry budget again (default); more=N: N runs in all");
  r->add_flag("--dry-run", replay->dry_run, "Print what would be replayed; change nothing");
  r->add_flag("--json", replay->json, "Print JSON");
  AddStoreFlag(*r, replay->store);
  r->callback([&run, replay] { run = [replay] { return RunReplay(*replay); }; });

  auto purge = std::make_shared<PurgeOptions>();
  CLI::App* p =
      dlq->add_subcommand("purge", "Delete dead jobs with their history (counted and recorded)");
  p->add_option("ids", purge->ids, "Dead job ids to purge");
  p->add_flag("--all", purge->all, "Purge every dead job that matches --queue and --older-than");
  p->add_option("--queue", purge->queue, "With --all: only this queue");
  p->add_option("--older-than", purge->older_than, "With --all: only jobs dead this long, e.g. 7d");
  p->add_option("--by", purge->by, "Who is purging (recorded)")->required();
  p->add_option("--note", purge->note, "Why (recorded)");
  p->add_flag("--dry-run", purge->dry_run, "Count what would be purged; change nothing");
  p->add_flag("--json", purge->json, "Print JSON");
  AddStoreFlag(*p, purge->store);
  p->callback([&run, purge] { run = [purge] { return RunPurge(*purge); }; });
}

}  // namespace retraced::cli
