// retraced policy explain: the schedule a retry policy would produce.
#include <iostream>
#include <memory>

#include "commands.h"
#include "retraced/decide.h"
#include "retraced/json.h"
#include "table.h"

namespace retraced::cli {
namespace {

struct ExplainOptions {
  std::string policy;
  std::string job_id = "example";
  std::string start;  // RFC 3339; empty: now
  bool json = false;
};

std::string Signed(Millis d) { return (d.count() > 0 ? "+" : "") + HumanDuration(d); }

int RunExplain(const ExplainOptions& o) {
  Result<RetryPolicy> policy = ParsePolicy(o.policy);
  if (!policy.ok()) {
    std::cerr << "retraced: " << policy.status().message() << "\n";
    std::cerr << "  " << o.policy << "\n";
    return kExitBadInput;
  }
  TimePoint start = SystemClock().Now();
  if (!o.start.empty()) {
    Result<TimePoint> t = ParseTime(o.start);
    if (!t.ok()) {
      std::cerr << "retraced: --start: " << t.status().message() << "\n";
      return kExitBadInput;
    }
    start = *t;
  }
  std::vector<ExplainRow> rows = ExplainPolicy(*policy, o.job_id, start);
  const ExplainRow& last = rows.back();

  if (o.json) {
    Json attempts = Json::array();
    for (const ExplainRow& r : rows) {
      Json d = ToJson(r.decision);
      if (r.decision.next_run_at) {
        d["next_run_after_ms"] = (r.starts_after + r.decision.delay).count();
      }
      attempts.push_back({{"attempt", r.attempt},
                          {"trigger", r.trigger},
                          {"starts_after_ms", r.starts_after.count()},
                          {"decision", std::move(d)}});
    }
    Json out = {{"policy", PolicyToJson(*policy)},
                {"job_id", o.job_id},
                {"start", FormatTime(start)},
                {"attempts", std::move(attempts)},
                {"runs", rows.size()},
                {"total_ms", last.starts_after.count()},
                {"dead_reason", Name(*last.decision.dead_reason)},
                {"dead_after_attempt", last.attempt}};
    std::cout << DumpJson(out, 2) << "\n";
    return kExitOk;
  }

  std::cout << "policy  " << FormatPolicy(*policy) << "\n";
  bool jittered = false;
  for (const Strategy& s : policy->phases) jittered = jittered || s.jitter != Jitter::kNone;
  if (jittered) {
    std::cout << "jitter  drawn from a generator seeded by job id '" << o.job_id
              << "' and the attempt number (--job-id to change)\n";
  }
  std::cout << "assumes the job is created at " << FormatTime(start)
            << " and runs at once, every attempt fails with a temporary error, starts on time and "
               "ends at once\n\n";
  Table t({">attempt", "trigger", ">starts", "then", "phase", ">base", ">jitter", ">delay",
           ">next run"});
  for (const ExplainRow& r : rows) {
    const Decision& d = r.decision;
    std::string phase = d.phase > 0 ? std::to_string(d.phase) + " " +
                                          std::string(StrategyName(policy->phases[d.phase - 1]))
                                    : "-";
    if (d.action == Action::kRetry) {
      t.AddRow({std::to_string(r.attempt), r.trigger, Signed(r.starts_after), "retry", phase,
                HumanDuration(d.base_delay), d.jitter.count() ? Signed(d.jitter) : "0ms",
                HumanDuration(d.delay), Signed(r.starts_after + d.delay)});
    } else {
      t.AddRow({std::to_string(r.attempt), r.trigger, Signed(r.starts_after), "dead", "-", "-", "-",
                "-", "-"});
    }
  }
  t.Print(std::cout);
  std::cout << "\nAfter attempt " << last.attempt << " the job goes to the dead letter queue ("
            << Name(*last.decision.dead_reason) << "): " << last.decision.reason << ".\n";
  std::cout << rows.size() << (rows.size() == 1 ? " run" : " runs") << " in "
            << HumanDuration(last.starts_after) << " from the first run to the last.\n";
  return kExitOk;
}

}  // namespace

void AddPolicyCommand(CLI::App& app, RunFn& run) {
  CLI::App* policy = app.add_subcommand("policy", "Work with retry policies");
  policy->require_subcommand(1);
  auto opts = std::make_shared<ExplainOptions>();
  CLI::App* explain = policy->add_subcommand(
      "explain",
      "Print the schedule a retry policy produces for a job that always fails with a temporary "
      "error, and when and why it would go to the dead letter queue.\n"
      "Example: retraced policy explain 'exponential(200ms, factor=2, max=30s, retries=8, "
      "jitter=full)'");
  explain->add_option("policy", opts->policy, "The policy text (see docs/retry-policies.md)")
      ->required();
  explain->add_option("--job-id", opts->job_id, "Job id that seeds the jitter (default 'example')");
  explain->add_option("--start", opts->start,
                      "When the job is created and first runs, RFC 3339 (default: now); the "
                      "deadline counts from it");
  explain->add_flag("--json", opts->json, "Print JSON instead of a table");
  explain->callback([&run, opts] { run = [opts] { return RunExplain(*opts); }; });
}

}  // namespace retraced::cli
