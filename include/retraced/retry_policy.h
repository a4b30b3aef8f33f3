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

#include <functional>
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
  enum class Kind { kImmediate, kFixed, kLinear, kExponential, kCustom };
  Kind kind = Kind::kFixed;
  Millis base{0};       // fixed: the delay; linear: the first delay; exponential: the first delay
  Millis step{0};       // linear only: added per retry
  double factor = 2.0;  // exponential only: multiplier per retry
  std::optional<Millis> max;  // cap on the delay before jitter (linear, exponential)
  int retries = 0;            // retries this phase gives
  Jitter jitter = Jitter::kNone;
  // kCustom only: the registered name and its own options, as written.
  std::string custom_name;
  std::vector<std::pair<std::string, std::string>> custom_options;

  // A custom option's text, if given.
  std::optional<std::string> Option(std::string_view key) const;

  friend bool operator==(const Strategy&, const Strategy&) = default;
};
std::string_view Name(Strategy::Kind k);
// The name policy text uses: the kind's, or a custom strategy's own.
std::string_view StrategyName(const Strategy& s);

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

// ---------------------------------------------------------------------------
// Custom strategies: a library user's own, written in policy text like the
// built-in ones once registered, e.g. RegisterStrategy({"fibonacci", {}, fn})
// makes "fibonacci(100ms, max=1m, retries=8, jitter=full)" valid. `retries`,
// `max` and `jitter` work as for every strategy; `options` names the
// strategy's own key=value options, kept as text (Strategy::Option).
//
// `delay` gives the delay before jitter of the strategy's `index`-th retry
// (1-based within its phase); the result is capped by max= and 365 days. It
// must be deterministic (a stored decision must be recomputable) and
// thread-safe.
using CustomDelayFn = std::function<Millis(const Strategy& strategy, int index)>;
struct CustomStrategy {
  std::string name;
  std::vector<std::string> options;
  CustomDelayFn delay;
};

// Registers for the whole process. InvalidArgument for a name that is not a
// lower_snake identifier, that a built-in strategy uses, or that is taken;
// or an option named like a common one.
Status RegisterStrategy(CustomStrategy strategy);
// The registered strategy, or nullptr.
const CustomStrategy* FindStrategy(std::string_view name);

struct ParseOptions {
  // Accept strategies that are not registered in this process (reading
  // policies stored by a process that had them). Their decisions use the
  // strategy's base delay, and say so.
  bool allow_unregistered = false;
};

// Parses the text form. On error: InvalidArgument whose message gives the
// 1-based column, what was found there and what was expected, e.g.
// "column 20: unknown jitter 'fuzzy'; expected none, full, equal or decorrelated".
Result<RetryPolicy> ParsePolicy(std::string_view text, ParseOptions options = {});

// The canonical text form; ParsePolicy(FormatPolicy(p)) == p. Options equal to
// their defaults are left out, retries= is always written.
std::string FormatPolicy(const RetryPolicy& policy);

// Checks ranges (also for policies built in code or read from JSON).
Status ValidatePolicy(const RetryPolicy& policy);

}  // namespace retraced

#endif  // RETRACED_RETRY_POLICY_H_
