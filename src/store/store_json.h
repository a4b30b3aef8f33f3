// JSON forms of the store's result types, shared by the CLI's --json and the
// HTTP API. Field names follow docs/json.md.
#ifndef RETRACED_STORE_STORE_JSON_H_
#define RETRACED_STORE_STORE_JSON_H_

#include "retraced/json.h"
#include "retraced/store.h"

namespace retraced {

// The job without attempts and events, plus "last_error" (or null) and "updated_at".
Json ToJson(const JobSummary& s);
// {"jobs": [...], "next_cursor": "..." or null}
Json ToJson(const JobPage& page);
// {"queue", "class", "code", "signature", "count", "reasons": {...},
//  "first_dead_at", "last_dead_at", "sample_job_id", "sample_message"}
Json ToJson(const DeadGroup& g);
// {"queue", "states": {state: n, ... every state}, "counters": {...}}
Json ToJson(const QueueStats& s);

}  // namespace retraced

#endif  // RETRACED_STORE_STORE_JSON_H_
