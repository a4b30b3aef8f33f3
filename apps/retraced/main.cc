// retraced: the command-line tool. Parses flags and hands over to a command.
#include <iostream>

#include "commands.h"
#include "store_flags.h"

int main(int argc, char** argv) {
  using namespace retraced::cli;
  CLI::App app{
      "ReTraced: a job scheduler that records every attempt, retry decision and state change.\n"
      "Run 'retraced COMMAND --help' for the options of a command.",
      "retraced"};
  app.set_version_flag("--version", "retraced 0.1.0");
  app.require_subcommand(1);
  AddStoreFlag(app, GlobalStoreFlags());
  RunFn run;
  AddEnqueueCommand(app, run);
  AddJobsCommand(app, run);
  AddDlqCommand(app, run);
  AddWorkerCommand(app, run);
  AddDemoCommand(app, run);
  AddPolicyCommand(app, run);
  AddBenchCommand(app, run);
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) known = known || sub->check_name(argv[1]);
    if (!known) {
      std::cerr << "retraced: unknown command '" << argv[1] << "'\n";
      std::cerr << "Run 'retraced --help' for the list of commands.\n";
      return kExitBadInput;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "retraced: " << e.what() << "\n";
    std::cerr << "Run 'retraced --help' for usage.\n";
    return kExitBadInput;
  }
  return run ? run() : kExitBadInput;
}
