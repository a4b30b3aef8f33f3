// Listing and showing jobs: shared by `jobs list|show` and `dlq list|show`.
#ifndef RETRACED_APPS_JOB_VIEWS_H_
#define RETRACED_APPS_JOB_VIEWS_H_

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "store_flags.h"

namespace retraced::cli {

struct ListOptions {
  StoreFlags store;
  std::string queue, state, type, code, error_class, cursor, since, until;
  int limit = 50;
  bool json = false;
  bool dead_only = false;  // set by `dlq list`
};

struct ShowOptions {
  StoreFlags store;
  std::string id;
  bool json = false;
};

int RunList(const ListOptions& o);
int RunShow(const ShowOptions& o);

// Adds the listing filters to `cmd`; --state only when `with_state`.
void AddListOptions(CLI::App& cmd, const std::shared_ptr<ListOptions>& o, bool with_state);

}  // namespace retraced::cli

#endif  // RETRACED_APPS_JOB_VIEWS_H_
