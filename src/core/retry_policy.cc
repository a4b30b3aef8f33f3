// Policy vocabulary, canonical text form and validation.
#include "retraced/retry_policy.h"

#include <charconv>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>

#include "core/names.h"
#include "retraced/id.h"

namespace retraced {
namespace {

constexpr std::pair<Jitter, std::string_view> kJitters[] = {
    {Jitter::kNone, "none"},
    {Jitter::kFull, "full"},
    {Jitter::kEqual, "equal"},
    {Jitter::kDecorrelated, "decorrelated"},
};
constexpr std::pair<Strategy::Kind, std::string_view> kKinds[] = {
    {Strategy::Kind::kImmediate, "immediate"}, {Strategy::Kind::kFixed, "fixed"},
    {Strategy::Kind::kLinear, "linear"},       {Strategy::Kind::kExponential, "exponential"},
    {Strategy::Kind::kCustom, "custom"},
};

constexpr std::string_view kReservedNames[] = {"none",        "immediate", "fixed", "linear",
                                               "exponential", "phases",    "custom"};
constexpr std::string_view kCommonOptions[] = {"retries",  "jitter",   "max",
                                               "deadline", "retry_on", "dead_on"};

bool IsLowerSnake(std::string_view s) {
  if (s.empty() || s.size() > 64 || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// The registry of custom strategies. Entries are never removed, so pointers
// handed out stay valid.
struct Registry {
  std::shared_mutex mu;
  std::map<std::string, std::unique_ptr<CustomStrategy>, std::less<>> by_name;
};

Registry& TheRegistry() {
  static Registry* r = new Registry();
  return *r;
}

std::string FormatFactor(double f) {
  char buf[32];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, f);
  return std::string(buf, ptr);
}

std::string FormatCodes(const std::vector<std::string>& codes) {
  std::string out = "[";
  for (size_t i = 0; i < codes.size(); ++i) out += (i ? "," : "") + codes[i];
  return out + "]";
}

// The arguments of one strategy's call, without the parentheses.
std::string FormatStrategyArgs(const Strategy& s) {
  using K = Strategy::Kind;
  if (s.kind == K::kImmediate) return std::to_string(s.retries);
  std::string out = FormatDuration(s.base);
  for (const auto& [key, value] : s.custom_options) out += ", " + key + "=" + value;
  if (s.kind == K::kLinear) out += ", step=" + FormatDuration(s.step);
  if (s.kind == K::kExponential) out += ", factor=" + FormatFactor(s.factor);
  if (s.max) out += ", max=" + FormatDuration(*s.max);
  out += ", retries=" + std::to_string(s.retries);
  if (s.jitter != Jitter::kNone) out += ", jitter=" + std::string(Name(s.jitter));
  return out;
}

std::string FormatOptions(const RetryPolicy& p) {
  std::string out;
  if (p.deadline) out += ", deadline=" + FormatDuration(*p.deadline);
  if (!p.retry_on.empty()) out += ", retry_on=" + FormatCodes(p.retry_on);
  if (!p.dead_on.empty()) out += ", dead_on=" + FormatCodes(p.dead_on);
  return out;
}

Status CheckDelay(std::string_view what, Millis d, int phase) {
  if (d.count() < 0 || d > kMaxPolicyDelay) {
    return Status::InvalidArgument("phase " + std::to_string(phase) + ": " + std::string(what) +
                                   " must be from 0ms to 365d, got " + FormatDuration(d));
  }
  return Status::Ok();
}

}  // namespace

std::string_view Name(Jitter j) { return internal::NameIn(kJitters, j); }
Result<Jitter> ParseJitter(std::string_view text) {
  return internal::ParseIn(kJitters, text, "jitter");
}
std::string_view Name(Strategy::Kind k) { return internal::NameIn(kKinds, k); }

std::string_view StrategyName(const Strategy& s) {
  return s.kind == Strategy::Kind::kCustom ? std::string_view(s.custom_name) : Name(s.kind);
}

std::optional<std::string> Strategy::Option(std::string_view key) const {
  for (const auto& [k, v] : custom_options) {
    if (k == key) return v;
  }
  return std::nullopt;
}

Status RegisterStrategy(CustomStrategy strategy) {
  if (!IsLowerSnake(strategy.name)) {
    return Status::InvalidArgument("strategy name '" + strategy.name +
                                   "' must be a lower_snake identifier");
  }
  for (std::string_view reserved : kReservedNames) {
    if (strategy.name == reserved) {
      return Status::InvalidArgument("strategy name '" + strategy.name + "' is built in");
    }
  }
  for (const std::string& option : strategy.options) {
    if (!IsLowerSnake(option)) {
      return Status::InvalidArgument("option '" + option + "' must be a lower_snake identifier");
    }
    for (std::string_view common : kCommonOptions) {
      if (option == common) {
        return Status::InvalidArgument("option '" + option + "' is common to every strategy");
      }
    }
  }
  if (!strategy.delay)
    return Status::InvalidArgument("strategy '" + strategy.name + "' has no delay function");
  Registry& r = TheRegistry();
  std::unique_lock lock(r.mu);
  if (r.by_name.count(strategy.name)) {
    return Status::Conflict("strategy '" + strategy.name + "' is already registered");
  }
  std::string name = strategy.name;
  r.by_name.emplace(std::move(name), std::make_unique<CustomStrategy>(std::move(strategy)));
  return Status::Ok();
}

const CustomStrategy* FindStrategy(std::string_view name) {
  Registry& r = TheRegistry();
  std::shared_lock lock(r.mu);
  auto it = r.by_name.find(name);
  return it == r.by_name.end() ? nullptr : it->second.get();
}

int RetryPolicy::TotalRetries() const {
  int total = 0;
  for (const Strategy& s : phases) total += s.retries;
  return total;
}

const RetryPolicy& DefaultPolicy() {
  static const RetryPolicy policy = *ParsePolicy(kDefaultPolicyText);
  return policy;
}

std::string FormatPolicy(const RetryPolicy& p) {
  if (p.phases.empty()) return "none";
  if (p.phases.size() == 1) {
    const Strategy& s = p.phases.front();
    return std::string(StrategyName(s)) + "(" + FormatStrategyArgs(s) + FormatOptions(p) + ")";
  }
  std::string out = "phases(";
  for (size_t i = 0; i < p.phases.size(); ++i) {
    const Strategy& s = p.phases[i];
    out += (i ? ", " : "") + std::string(StrategyName(s)) + "(" + FormatStrategyArgs(s) + ")";
  }
  return out + FormatOptions(p) + ")";
}

Status ValidatePolicy(const RetryPolicy& p) {
  if (p.phases.size() > kMaxPolicyPhases) {
    return Status::InvalidArgument("policy has " + std::to_string(p.phases.size()) +
                                   " phases; the limit is " + std::to_string(kMaxPolicyPhases));
  }
  if (p.phases.empty() && (p.deadline || !p.retry_on.empty() || !p.dead_on.empty())) {
    return Status::InvalidArgument("policy 'none' takes no deadline, retry_on or dead_on");
  }
  int total = 0;
  for (size_t i = 0; i < p.phases.size(); ++i) {
    const Strategy& s = p.phases[i];
    int n = static_cast<int>(i) + 1;
    if (s.retries < 0 || s.retries > kMaxPolicyRetries) {
      return Status::InvalidArgument("phase " + std::to_string(n) +
                                     ": retries must be from 0 to 10000, got " +
                                     std::to_string(s.retries));
    }
    total += s.retries;
    RETRACED_RETURN_IF_ERROR(CheckDelay("delay", s.base, n));
    RETRACED_RETURN_IF_ERROR(CheckDelay("step", s.step, n));
    if (s.max) {
      RETRACED_RETURN_IF_ERROR(CheckDelay("max", *s.max, n));
      if (*s.max < s.base) {
        return Status::InvalidArgument("phase " + std::to_string(n) + ": max " +
                                       FormatDuration(*s.max) + " is below the delay " +
                                       FormatDuration(s.base));
      }
    }
    if (!(s.factor >= 1.0 && s.factor <= kMaxPolicyFactor)) {
      return Status::InvalidArgument("phase " + std::to_string(n) +
                                     ": factor must be from 1 to 100");
    }
    if (s.kind == Strategy::Kind::kExponential && s.base.count() <= 0) {
      return Status::InvalidArgument("phase " + std::to_string(n) +
                                     ": the base delay of exponential must be above 0ms");
    }
    if (s.kind != Strategy::Kind::kLinear && s.step.count() != 0) {
      return Status::InvalidArgument("phase " + std::to_string(n) +
                                     ": step applies to linear only");
    }
    if (s.max && s.kind != Strategy::Kind::kLinear && s.kind != Strategy::Kind::kExponential &&
        s.kind != Strategy::Kind::kCustom) {
      return Status::InvalidArgument("phase " + std::to_string(n) +
                                     ": max applies to linear and exponential only");
    }
    if (s.jitter == Jitter::kDecorrelated && !s.max) {
      return Status::InvalidArgument("phase " + std::to_string(n) +
                                     ": jitter=decorrelated needs max= to bound its growth");
    }
    if (s.kind == Strategy::Kind::kCustom) {
      if (!IsLowerSnake(s.custom_name)) {
        return Status::InvalidArgument("phase " + std::to_string(n) + ": custom strategy name '" +
                                       s.custom_name + "' must be a lower_snake identifier");
      }
      for (const auto& [key, value] : s.custom_options) {
        if (!IsLowerSnake(key) || value.empty()) {
          return Status::InvalidArgument("phase " + std::to_string(n) + ": bad option '" + key +
                                         "'");
        }
      }
    } else if (!s.custom_name.empty() || !s.custom_options.empty()) {
      return Status::InvalidArgument("phase " + std::to_string(n) +
                                     ": only custom strategies have a name and options");
    }
    if (s.kind == Strategy::Kind::kImmediate &&
        (s.base.count() != 0 || s.step.count() != 0 || s.max || s.jitter != Jitter::kNone)) {
      return Status::InvalidArgument("phase " + std::to_string(n) +
                                     ": immediate takes only a number of retries");
    }
  }
  if (total > kMaxPolicyRetries) {
    return Status::InvalidArgument("the phases add up to " + std::to_string(total) +
                                   " retries; the limit is 10000");
  }
  if (p.deadline && (p.deadline->count() <= 0 || *p.deadline > kMaxPolicyDelay)) {
    return Status::InvalidArgument("deadline must be from 1ms to 365d");
  }
  for (const auto* codes : {&p.retry_on, &p.dead_on}) {
    for (const std::string& c : *codes) RETRACED_RETURN_IF_ERROR(ValidateName("error code", c));
  }
  return Status::Ok();
}

}  // namespace retraced
