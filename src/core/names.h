// Internal helper for the closed vocabularies: a table of (value, name) pairs
// gives both directions, so a name is written in exactly one place.
#ifndef RETRACED_CORE_NAMES_H_
#define RETRACED_CORE_NAMES_H_

#include <string>
#include <string_view>
#include <utility>

#include "retraced/status.h"

namespace retraced::internal {

template <typename E, size_t N>
std::string_view NameIn(const std::pair<E, std::string_view> (&table)[N], E value) {
  for (const auto& [v, name] : table) {
    if (v == value) return name;
  }
  return "unknown";
}

// InvalidArgument "unknown <what> 'x'; expected a, b or c" when absent.
template <typename E, size_t N>
Result<E> ParseIn(const std::pair<E, std::string_view> (&table)[N], std::string_view text,
                  std::string_view what) {
  for (const auto& [v, name] : table) {
    if (name == text) return v;
  }
  std::string msg = "unknown " + std::string(what) + " '" + std::string(text) + "'; expected ";
  for (size_t i = 0; i < N; ++i) {
    if (i > 0) msg += (i + 1 == N) ? " or " : ", ";
    msg += table[i].second;
  }
  return Status::InvalidArgument(std::move(msg));
}

}  // namespace retraced::internal

#endif  // RETRACED_CORE_NAMES_H_
