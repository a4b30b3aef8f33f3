// The JSON form of every record. Field names are a public contract shared by
// the CLI's --json, the HTTP API and the stores; docs/json.md lists them.
//
// Instants are RFC 3339 UTC strings with milliseconds, durations integers in
// milliseconds with an _ms suffix, absent optional values null. A job's payload
// is its JSON value when the payload bytes are JSON (in compact form); other
// bytes appear base64-encoded in "payload_base64" with "payload" null.
//
// The *FromJson functions check every field and name the first bad one by
// its path ("attempts[1].error.class: ..."); they never throw.
#ifndef RETRACED_JSON_H_
#define RETRACED_JSON_H_

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "retraced/job.h"
#include "retraced/retry_policy.h"
#include "retraced/status.h"

namespace retraced {

// Objects keep their keys in insertion order, so output follows the order in
// which the fields are documented and JSON payloads keep theirs.
using Json = nlohmann::ordered_json;

Json ToJson(const Error& e);
Json ToJson(const Decision& d);
Json ToJson(const Attempt& a);
Json ToJson(const Event& e);
Json ToJson(const DeadInfo& d);
Json ToJson(const Replay& r);
Json ToJson(const Job& j);  // the policy as its text form

Result<Error> ErrorFromJson(const Json& j);
Result<Decision> DecisionFromJson(const Json& j);
Result<Attempt> AttemptFromJson(const Json& j);
Result<Event> EventFromJson(const Json& j);
Result<DeadInfo> DeadInfoFromJson(const Json& j);
Result<Replay> ReplayFromJson(const Json& j);
Result<Job> JobFromJson(const Json& j);

// The structured form of a policy:
//   {"strategy": "exponential", "base_ms": 200, "factor": 2, "max_ms": 30000,
//    "retries": 8, "jitter": "full", "deadline_ms": ..., "retry_on": [...], "dead_on": [...]}
// for one strategy; {"phases": [{...}, ...], "deadline_ms": ..., ...} for several;
// {"strategy": "none"} for none. Plus "text": the canonical text form.
Json PolicyToJson(const RetryPolicy& p);
// Accepts the structured form or a string holding the text form.
Result<RetryPolicy> PolicyFromJson(const Json& j);

// Serializes; bytes that are not valid UTF-8 become U+FFFD instead of throwing.
std::string DumpJson(const Json& j, int indent = -1);

// The text DumpJson(ToJson(x)) gives, appended to `out` without building the
// JSON tree first (for the stores' hot paths): a string, an error, a decision.
void AppendJson(std::string& out, std::string_view text);
void AppendJson(std::string& out, const Error& e);
void AppendJson(std::string& out, const Decision& d);

// Parses text into JSON; InvalidArgument with the parser's position on failure.
Result<Json> ParseJson(std::string_view text);

// The payload codec on its own, as used in ToJson(Job).
void PutPayload(Json& job_json, std::string_view payload);
Result<std::string> GetPayload(const Json& job_json);

}  // namespace retraced

#endif  // RETRACED_JSON_H_
