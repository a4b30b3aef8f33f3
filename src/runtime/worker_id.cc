// A worker's default id: host, process and start time, so that every event
// and lease names the process that acted.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "retraced/worker.h"

namespace retraced {

std::string DefaultWorkerId() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
    std::snprintf(host, sizeof host, "host");
  std::string started = FormatTime(SystemClock().Now());  // 2026-11-28T12:00:00.123Z
  std::string compact;
  for (char c : started) {
    if (c != '-' && c != ':') compact += c;
  }
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + compact;
}

}  // namespace retraced
