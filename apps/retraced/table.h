// Plain-text tables and human-friendly numbers for the CLI's default output.
#ifndef RETRACED_APPS_TABLE_H_
#define RETRACED_APPS_TABLE_H_

#include <ostream>
#include <string>
#include <vector>

#include "retraced/time.h"

namespace retraced::cli {

class Table {
 public:
  // A column whose header starts with '>' is right-aligned (the '>' is not shown).
  explicit Table(std::vector<std::string> headers);
  void AddRow(std::vector<std::string> cells);
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// Short and readable rather than exact: "113ms", "1.5s", "2m3s", "1h5m", "2d3h".
std::string HumanDuration(Millis d);

}  // namespace retraced::cli

#endif  // RETRACED_APPS_TABLE_H_
