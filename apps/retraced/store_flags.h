// What every store-using command shares: the --store flag (or RETRACED_STORE),
// opening the store, and turning a Status into a message and an exit code.
#ifndef RETRACED_APPS_STORE_FLAGS_H_
#define RETRACED_APPS_STORE_FLAGS_H_

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "retraced/status.h"
#include "retraced/store.h"

namespace retraced::cli {

struct StoreFlags {
  std::string url;  // empty: RETRACED_STORE, then the default
};

// Adds --store to `cmd`. Also call it on the top-level app with
// GlobalStoreFlags(), so that `retraced --store URL COMMAND` works too.
void AddStoreFlag(CLI::App& cmd, StoreFlags& flags);
StoreFlags& GlobalStoreFlags();

// Opens the store; on failure prints the reason and sets *exit_code.
std::unique_ptr<Store> OpenOrReport(const StoreFlags& flags, int* exit_code);

// Prints "retraced: <message>" on stderr and returns the exit code for `s`:
// 2 for bad input (invalid_argument, not_found, failed_precondition), else 1.
int Report(const Status& s);

// Parses a --state value, or reports it; nullopt with *exit_code set on error.
std::optional<JobState> StateFlag(const std::string& text, int* exit_code);

}  // namespace retraced::cli

#endif  // RETRACED_APPS_STORE_FLAGS_H_
