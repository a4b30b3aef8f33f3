#include "store_flags.h"

#include <cstdlib>
#include <iostream>

#include "commands.h"

namespace retraced::cli {

void AddStoreFlag(CLI::App& cmd, StoreFlags& flags) {
  cmd.add_option("--store", flags.url,
                 "Store URL, e.g. sqlite:jobs.db (default: $RETRACED_STORE, else "
                 "sqlite:retraced.db)");
}

StoreFlags& GlobalStoreFlags() {
  static StoreFlags flags;
  return flags;
}

std::unique_ptr<Store> OpenOrReport(const StoreFlags& flags, int* exit_code) {
  std::string url = flags.url.empty() ? GlobalStoreFlags().url : flags.url;
  if (url.empty()) {
    const char* env = std::getenv("RETRACED_STORE");
    url = env && *env ? env : std::string(kDefaultStoreUrl);
  }
  Result<std::unique_ptr<Store>> store = OpenStore(url);
  if (!store.ok()) {
    *exit_code = Report(store.status());
    return nullptr;
  }
  return std::move(*store);
}

int Report(const Status& s) {
  std::cerr << "retraced: " << s.message() << "\n";
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kFailedPrecondition:
      return kExitBadInput;
    default:
      return kExitFailure;
  }
}

std::optional<JobState> StateFlag(const std::string& text, int* exit_code) {
  Result<JobState> s = ParseJobState(text);
  if (!s.ok()) {
    *exit_code = Report(s.status().WithContext("--state"));
    return std::nullopt;
  }
  return *s;
}

}  // namespace retraced::cli
