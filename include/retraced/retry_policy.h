// Retry policies: per-job data that says how a failed job is retried
// (retraced/decide.h has the function that applies it). The grammar and the
// semantics are documented in docs/retry-policies.md; in short:
//
//   none
//   fixed(2s, retries=5)
//   linear(1s, step=1s, max=10s, retries=5)
//   exponential(200ms, factor=2, max=30s, retries=8, jitter=full)
//   phases(immediate(2), exponential(1s, max=1m, retries=5), deadline=1h)
//
// with the policy-wide options deadline=, retry_on=[CODE,...], dead_on=[CODE,...]
// written in the outermost call. `retries=N` is the number of retries after the
// first run.
#ifndef RETRACED_RETRY_POLICY_H_
#define RETRACED_RETRY_POLICY_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "retraced/status.h"
#include "retraced/time.h"

namespace retraced {

enum class Jitter { kNone, kFull, kEqual, kDecorrelated };
std::string_view Name(Jitter j);
Result<Jitter> ParseJitter(std::string_view text);

// One phase of a policy: a strategy and how many retries it gives.
struct Strategy {
  enum class Kind { kImmediate, kFixed, kLinear, kExponential };
  Kind kind = Kind::kFixed;
  Millis base{0};       // fixed: the delay; linear: the first delay; exponential: the first delay
  Millis step{0};       // linear only: added per retry
  double factor = 2.0;  // exponential only: multiplier per retry
  std::optional<Millis> max;  // cap on the delay before jitter (linear, exponential)
  int retries = 0;            // retries this phase gives
  Jitter jitter = Jitter::kNone;

  friend bool operator==(const Strategy&, const Strategy&) = default;
};
std::string_view Name(Strategy::Kind k);

struct RetryPolicy {
  std::vector<Strategy> phases;       // tried in order; empty means no retry ("none")
  std::optional<Millis> deadline;     // no retry may be planned later than created_at + deadline
  std::vector<std::string> retry_on;  // codes always treated as temporary
  std::vector<std::string> dead_on;   // codes always treated as permanent

  // Retries over all phases.
  int TotalRetries() const;

  friend bool operator==(const RetryPolicy&, const RetryPolicy&) = default;
};

// Limits that make a policy absurd rather than merely unusual.
constexpr Millis kMaxPolicyDelay = std::chrono::days(365);
constexpr int kMaxPolicyRetries = 10'000;
constexpr double kMaxPolicyFactor = 100.0;
constexpr size_t kMaxPolicyPhases = 16;
constexpr size_t kMaxPolicyTextBytes = 4096;

// The policy a job gets when its producer names none.
inline constexpr std::string_view kDefaultPolicyText =
    "exponential(1s, factor=2, max=1h, retries=10, jitter=full)";
const RetryPolicy& DefaultPolicy();

// Parses the text form. On error: InvalidArgument whose message gives the
// 1-based column, what was found there and what was expected, e.g.
// "column 20: unknown jitter 'fuzzy'; expected none, full, equal or decorrelated".
Result<RetryPolicy> ParsePolicy(std::string_view text);

// The canonical text form; ParsePolicy(FormatPolicy(p)) == p. Options equal to
// their defaults are left out, retries= is always written.
std::string FormatPolicy(const RetryPolicy& policy);

// Checks ranges (also for policies built in code or read from JSON).
Status ValidatePolicy(const RetryPolicy& policy);

}  // namespace retraced

#endif  // RETRACED_RETRY_POLICY_H_
