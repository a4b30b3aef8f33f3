// The job model: a job, its states and the legal moves between them, and the
// records that make up its history (attempts, retry decisions, events, why it
// died, manual replays). Plain values with no behaviour beyond validation;
// the JSON form of each is in retraced/json.h.
#ifndef RETRACED_JOB_H_
#define RETRACED_JOB_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "retraced/retry_policy.h"
#include "retraced/status.h"
#include "retraced/time.h"
#include "retraced/vocabulary.h"

namespace retraced {

// Terminal states keep their job until it is purged or replayed.
bool IsTerminal(JobState s);

// The state machine. OK when a job may move from `from` to `to`; otherwise
// FailedPrecondition naming both states. The legal moves:
//   scheduled  -> ready (due), cancelled
//   ready      -> active (claimed), cancelled
//   active     -> completed, retry_wait, ready (immediate retry or lease
//                 recovered), dead, cancelled
//   retry_wait -> ready (due), dead (operator kill), cancelled
//   dead       -> ready, scheduled (manual replay)
//   cancelled  -> ready, scheduled (manual replay)
//   completed  -> (nothing)
// Enqueue creates a job directly in scheduled or ready.
Status CheckTransition(JobState from, JobState to);

// ---------------------------------------------------------------------------
// Records.

// A classified failure. Text fields are valid UTF-8 (invalid bytes become
// U+FFFD) and capped so one bad handler cannot bloat the store; what was cut
// is recorded in the *_cut_bytes fields.
struct Error {
  static constexpr size_t kMaxCodeBytes = 128;
  static constexpr size_t kMaxMessageBytes = 1024;
  static constexpr size_t kMaxDetailBytes = 4096;

  ErrorClass error_class = ErrorClass::kTemporary;
  std::string code;     // short, stable, machine-readable: "TIMEOUT", "HTTP_503"
  std::string message;  // one human line; its head is kept when capped
  std::string detail;   // stack trace or stderr; its tail is kept when capped
  size_t code_cut_bytes = 0;
  size_t message_cut_bytes = 0;
  size_t detail_cut_bytes = 0;

  friend bool operator==(const Error&, const Error&) = default;
};

// An Error built from handler text: invalid UTF-8 replaced, then the caps
// applied: code and message keep their head, detail its tail, each cut on a
// character boundary.
Error MakeError(ErrorClass cls, std::string_view code, std::string_view message,
                std::string_view detail = {});

// What the retry policy decided after an attempt ended.
struct Decision {
  Action action = Action::kNone;
  std::string reason;                     // in words: why, by which rule, with the numbers
  std::optional<DeadReason> dead_reason;  // set when action == kDead
  int phase = 0;                          // 1-based policy phase that decided; 0 when none did
  Millis base_delay{0};                   // the strategy's delay before jitter
  Millis jitter{0};                       // what jitter changed: delay - base_delay
  Millis delay{0};                        // the delay actually applied
  std::optional<TimePoint> next_run_at;   // set when action == kRetry

  friend bool operator==(const Decision&, const Decision&) = default;
};

// One run of a job, from claim to its end.
struct Attempt {
  int n = 0;  // 1-based over the job's whole life
  Trigger trigger = Trigger::kInitial;
  std::string worker;  // id of the worker that ran it
  TimePoint started_at;
  std::optional<TimePoint> ended_at;  // unset while running
  std::optional<Outcome> outcome;     // unset while running
  std::optional<Error> error;         // set when the attempt did not succeed
  std::optional<Decision> decision;   // set once the attempt has ended
  Millis lateness{0};                 // started_at minus the planned run time

  friend bool operator==(const Attempt&, const Attempt&) = default;
};

// One lifecycle transition: who or what moved the job, from where, to where, why.
struct Event {
  TimePoint at;
  std::optional<JobState> from;  // unset for the enqueue that created the job
  std::optional<JobState> to;    // unset for an event that changed no state (refused ack)
  std::string reason;            // short machine-readable word: "enqueued", "claimed", ...
  std::string actor;             // worker id, operator name, or "system"
  std::string note;              // free text

  friend bool operator==(const Event&, const Event&) = default;
};

// Why and when retries stopped, with the evidence that led there.
struct DeadInfo {
  DeadReason reason = DeadReason::kAttemptsExhausted;
  TimePoint at;
  std::vector<std::string> evidence;  // one human line per fact (attempt, worker, error)

  friend bool operator==(const DeadInfo&, const DeadInfo&) = default;
};

// A manual replay of a dead or cancelled job: who, when, why, and how many
// tries it gets. The job keeps its id and history; its next attempt has
// trigger `manual`.
struct Replay {
  enum class Mode { kFresh, kMore };
  std::string by;  // operator name, required
  std::string note;
  TimePoint at;
  Mode mode = Mode::kFresh;
  int more = 0;  // with kMore: runs allowed, the replayed run included (>= 1)

  friend bool operator==(const Replay&, const Replay&) = default;
};

// "fresh" or "more=N".
std::string ReplayModeText(const Replay& r);
// Parses "fresh" or "more=N" into r.mode and r.more.
Status ParseReplayMode(std::string_view text, Replay& r);

struct Job {
  std::string id;
  std::string queue;
  std::string type;  // the handler name
  JobState state = JobState::kReady;
  std::string payload;  // opaque bytes, usually JSON
  RetryPolicy policy;
  int attempt_count = 0;
  TimePoint created_at;
  TimePoint run_at;  // when it is (or was) next due
  std::optional<std::string> unique_key;
  std::optional<Millis> timeout;
  std::optional<TimePoint> deadline_at;  // no retry may be planned past this instant
  int priority = 0;                      // higher runs first among due jobs
  std::vector<Attempt> attempts;
  std::vector<Event> events;
  std::optional<DeadInfo> dead;
  std::optional<Replay> replay;  // the latest manual replay, if any

  friend bool operator==(const Job&, const Job&) = default;
};

// Checks the fields a producer sets: id, queue and type are short printable
// identifiers; unique key and payload within their limits.
Status ValidateNewJob(const Job& job);

constexpr size_t kMaxPayloadBytes = 16 * 1024 * 1024;
constexpr Millis kMaxTimeout = std::chrono::days(7);

}  // namespace retraced

#endif  // RETRACED_JOB_H_
