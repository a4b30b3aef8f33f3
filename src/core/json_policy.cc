// JSON form of retry policies.
#include <algorithm>
#include <cmath>

#include "core/json_reader.h"
#include "retraced/json.h"

namespace retraced {
namespace {

using internal::JsonReader;

Json StrategyToJson(const Strategy& s) {
  Json j = {{"strategy", StrategyName(s)}, {"retries", s.retries}};
  if (s.kind == Strategy::Kind::kImmediate) return j;
  j["base_ms"] = s.base.count();
  if (s.kind == Strategy::Kind::kLinear) j["step_ms"] = s.step.count();
  if (s.kind == Strategy::Kind::kExponential) j["factor"] = s.factor;
  if (s.max) j["max_ms"] = s.max->count();
  j["jitter"] = Name(s.jitter);
  if (s.kind == Strategy::Kind::kCustom) {
    Json options = Json::object();
    for (const auto& [key, value] : s.custom_options) options[key] = value;
    j["options"] = std::move(options);
  }
  return j;
}

Strategy StrategyFromJson(const Json& j, const std::string& path) {
  JsonReader r(j, path);
  Strategy s;
  std::string kind = r.String("strategy");
  if (kind == "immediate") {
    s.kind = Strategy::Kind::kImmediate;
  } else if (kind == "fixed") {
    s.kind = Strategy::Kind::kFixed;
  } else if (kind == "linear") {
    s.kind = Strategy::Kind::kLinear;
  } else if (kind == "exponential") {
    s.kind = Strategy::Kind::kExponential;
  } else if (const CustomStrategy* custom = FindStrategy(kind)) {
    s.kind = Strategy::Kind::kCustom;
    s.custom_name = kind;
    if (r.Has("options")) {
      const Json& options = r.Get("options");
      if (!options.is_object()) r.Fail("options", "expected an object of strings");
      for (const auto& [key, value] : options.items()) {
        if (!value.is_string()) r.Fail("options", "expected an object of strings");
        if (std::find(custom->options.begin(), custom->options.end(), key) ==
            custom->options.end()) {
          r.Fail("options", "strategy '" + kind + "' has no option '" + key + "'");
        }
        s.custom_options.emplace_back(key, value.get<std::string>());
      }
    }
  } else {
    r.Fail("strategy", "unknown strategy '" + kind +
                           "'; expected immediate, fixed, linear, exponential or a registered one");
  }
  constexpr int64_t kMaxDelay = kMaxPolicyDelay.count();
  s.retries = static_cast<int>(r.IntIn("retries", 0, kMaxPolicyRetries));
  if (s.kind != Strategy::Kind::kImmediate) {
    s.base = Millis(r.IntIn("base_ms", 0, kMaxDelay));
    s.step = Millis(
        r.IntInOr("step_ms", 0, kMaxDelay, s.kind == Strategy::Kind::kLinear ? s.base.count() : 0));
    if (r.Has("factor")) s.factor = r.Number("factor");
    if (r.Has("max_ms")) s.max = Millis(r.IntIn("max_ms", 0, kMaxDelay));
    if (r.Has("jitter")) s.jitter = r.Enum<Jitter>("jitter", ParseJitter);
  }
  return s;
}

RetryPolicy ReadPolicy(const Json& j) {
  JsonReader r(j, "policy");
  RetryPolicy p;
  if (r.Has("phases")) {
    const Json& arr = r.Get("phases");
    if (!arr.is_array()) r.Fail("phases", "expected an array of strategies");
    for (size_t i = 0; i < arr.size(); ++i) {
      p.phases.push_back(StrategyFromJson(arr[i], "policy.phases[" + std::to_string(i) + "]"));
    }
    if (p.phases.empty()) r.Fail("phases", "needs at least one phase");
  } else if (r.String("strategy") != "none") {
    p.phases.push_back(StrategyFromJson(j, "policy"));
  }
  if (r.Has("deadline_ms")) p.deadline = Millis(r.IntIn("deadline_ms", 1, kMaxPolicyDelay.count()));
  p.retry_on = r.Strings("retry_on");
  p.dead_on = r.Strings("dead_on");
  if (r.Has("text")) {
    // Both forms given: they must agree, or the caller is confused about which wins.
    Result<RetryPolicy> parsed = ParsePolicy(r.String("text"));
    if (!parsed.ok()) r.Fail("text", parsed.status().message());
    if (!(*parsed == p)) r.Fail("text", "does not match the structured fields");
  }
  return p;
}

}  // namespace

Json PolicyToJson(const RetryPolicy& p) {
  Json j;
  if (p.phases.empty()) {
    j = {{"strategy", "none"}};
  } else if (p.phases.size() == 1) {
    j = StrategyToJson(p.phases.front());
  } else {
    Json phases = Json::array();
    for (const Strategy& s : p.phases) phases.push_back(StrategyToJson(s));
    j = {{"phases", std::move(phases)}};
  }
  if (p.deadline) j["deadline_ms"] = p.deadline->count();
  if (!p.retry_on.empty()) j["retry_on"] = p.retry_on;
  if (!p.dead_on.empty()) j["dead_on"] = p.dead_on;
  j["text"] = FormatPolicy(p);
  return j;
}

Result<RetryPolicy> PolicyFromJson(const Json& j) {
  Result<RetryPolicy> p = j.is_string()
                              ? ParsePolicy(j.get<std::string>())
                              : internal::ReadJson<RetryPolicy>([&] { return ReadPolicy(j); });
  if (!p.ok()) return p;
  RETRACED_RETURN_IF_ERROR(ValidatePolicy(*p));
  return p;
}

}  // namespace retraced
