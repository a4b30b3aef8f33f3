// The CLI's human-readable output: job tables, a job's timeline, dead-letter
// groups, statistics.
#ifndef RETRACED_APPS_RENDER_H_
#define RETRACED_APPS_RENDER_H_

#include <ostream>
#include <vector>

#include "retraced/store.h"

namespace retraced::cli {

void PrintJobTable(const JobPage& page, std::ostream& out);

// The whole story of one job: its fields, every attempt with its error and
// the decision that followed (planned and actual start, lateness), every
// event, and for a dead job why retries stopped.
void PrintTimeline(const Job& job, std::ostream& out);

// A short story of one job for the demo: one line per attempt with its
// outcome and error, then the decision that followed. Times relative to `start`.
void PrintStory(const Job& job, TimePoint start, std::ostream& out);

void PrintDeadGroups(const std::vector<DeadGroup>& groups, std::ostream& out);
void PrintStats(const std::vector<QueueStats>& stats, std::ostream& out);

// At most `max` characters of `s` on one line, with "..." when cut.
std::string OneLine(std::string_view s, size_t max);

}  // namespace retraced::cli

#endif  // RETRACED_APPS_RENDER_H_
