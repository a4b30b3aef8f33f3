// The CLI's subcommands. Each Add*Command registers its subcommand on the app
// and sets `run` so that main can call it after parsing.
#ifndef RETRACED_APPS_COMMANDS_H_
#define RETRACED_APPS_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <functional>

namespace retraced::cli {

// Exit codes of the retraced command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // the operation ran and failed (store down, ...)
inline constexpr int kExitBadInput = 2;  // bad flags, arguments or input; nothing was changed

using RunFn = std::function<int()>;

void AddPolicyCommand(CLI::App& app, RunFn& run);
void AddEnqueueCommand(CLI::App& app, RunFn& run);
void AddJobsCommand(CLI::App& app, RunFn& run);  // also `stats`
void AddDlqCommand(CLI::App& app, RunFn& run);
void AddWorkerCommand(CLI::App& app, RunFn& run);
void AddDemoCommand(CLI::App& app, RunFn& run);
void AddBenchCommand(CLI::App& app, RunFn& run);  // also the hidden bench-worker

}  // namespace retraced::cli

#endif  // RETRACED_APPS_COMMANDS_H_
