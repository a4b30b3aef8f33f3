// JSON form of the job records.
#include <nlohmann/json.hpp>

#include "core/base64.h"
#include "core/json_reader.h"
#include "retraced/json.h"

namespace retraced {
namespace {

using internal::JsonFieldError;
using internal::JsonReader;
using internal::ReadJson;

Json TimeOrNull(const std::optional<TimePoint>& t) { return t ? Json(FormatTime(*t)) : Json(); }

template <typename T>
Json OrNull(const std::optional<T>& v) {
  return v ? ToJson(*v) : Json();
}

std::string Index(std::string_view path, std::string_view field, size_t i) {
  return std::string(path.empty() ? "" : std::string(path) + ".") + std::string(field) + "[" +
         std::to_string(i) + "]";
}

std::string Child(std::string_view path, std::string_view field) {
  return path.empty() ? std::string(field) : std::string(path) + "." + std::string(field);
}

Error ReadError(const Json& j, const std::string& path) {
  JsonReader r(j, path);
  Error e;
  e.error_class = r.Enum<ErrorClass>("class", ParseErrorClass);
  e.code = r.StringOr("code", "");
  e.message = r.StringOr("message", "");
  e.detail = r.StringOr("detail", "");
  e.code_cut_bytes = static_cast<size_t>(r.IntInOr("code_cut_bytes", 0, kMaxPayloadBytes, 0));
  e.message_cut_bytes = static_cast<size_t>(r.IntInOr("message_cut_bytes", 0, kMaxPayloadBytes, 0));
  e.detail_cut_bytes = static_cast<size_t>(r.IntInOr("detail_cut_bytes", 0, kMaxPayloadBytes, 0));
  return e;
}

Decision ReadDecision(const Json& j, const std::string& path) {
  JsonReader r(j, path);
  Decision d;
  d.action = r.Enum<Action>("action", ParseAction);
  d.reason = r.StringOr("reason", "");
  d.dead_reason = r.OptEnum<DeadReason>("dead_reason", ParseDeadReason);
  constexpr int64_t kMaxDelay = kMaxPolicyDelay.count();
  d.phase = static_cast<int>(r.IntInOr("phase", 1, kMaxPolicyPhases, 0));
  d.base_delay = Millis(r.IntInOr("base_delay_ms", 0, kMaxDelay, 0));
  d.jitter = Millis(r.IntInOr("jitter_ms", -kMaxDelay, kMaxDelay, 0));
  d.delay = Millis(r.IntInOr("delay_ms", 0, kMaxDelay, 0));
  d.next_run_at = r.OptTime("next_run_at");
  return d;
}

Attempt ReadAttempt(const Json& j, const std::string& path) {
  JsonReader r(j, path);
  Attempt a;
  a.n = static_cast<int>(r.IntIn("n", 1, INT32_MAX));
  a.trigger = r.Enum<Trigger>("trigger", ParseTrigger);
  a.worker = r.StringOr("worker", "");
  a.started_at = r.Time("started_at");
  a.ended_at = r.OptTime("ended_at");
  a.outcome = r.OptEnum<Outcome>("outcome", ParseOutcome);
  if (r.Has("error")) a.error = ReadError(r.Get("error"), Child(path, "error"));
  if (r.Has("decision")) a.decision = ReadDecision(r.Get("decision"), Child(path, "decision"));
  a.lateness = Millis(
      r.IntInOr("lateness_ms", -kMaxPolicyDelay.count() * 100, kMaxPolicyDelay.count() * 100, 0));
  return a;
}

Event ReadEvent(const Json& j, const std::string& path) {
  JsonReader r(j, path);
  Event e;
  e.at = r.Time("at");
  e.from = r.OptEnum<JobState>("from", ParseJobState);
  e.to = r.OptEnum<JobState>("to", ParseJobState);
  e.reason = r.StringOr("reason", "");
  e.actor = r.StringOr("actor", "");
  e.note = r.StringOr("note", "");
  return e;
}

DeadInfo ReadDeadInfo(const Json& j, const std::string& path) {
  JsonReader r(j, path);
  DeadInfo d;
  d.reason = r.Enum<DeadReason>("reason", ParseDeadReason);
  d.at = r.Time("at");
  d.evidence = r.Strings("evidence");
  return d;
}

Replay ReadReplay(const Json& j, const std::string& path) {
  JsonReader r(j, path);
  Replay rep;
  rep.by = r.String("by");
  rep.note = r.StringOr("note", "");
  rep.at = r.Time("at");
  Status s = ParseReplayMode(r.StringOr("mode", "fresh"), rep);
  if (!s.ok()) r.Fail("mode", s.message());
  return rep;
}

Job ReadJob(const Json& j) {
  JsonReader r(j, "");
  Job job;
  job.id = r.String("id");
  job.queue = r.String("queue");
  job.type = r.String("type");
  job.state = r.Enum<JobState>("state", ParseJobState);
  Result<std::string> payload = GetPayload(j);
  if (!payload.ok()) r.Fail("payload", payload.status().message());
  job.payload = std::move(*payload);
  if (r.Has("policy")) {
    Result<RetryPolicy> p = PolicyFromJson(r.Get("policy"));
    if (!p.ok()) r.Fail("policy", p.status().message());
    job.policy = std::move(*p);
  } else {
    job.policy = DefaultPolicy();
  }
  job.attempt_count = static_cast<int>(r.IntInOr("attempt_count", 0, INT32_MAX, 0));
  job.created_at = r.Time("created_at");
  job.run_at = r.Has("run_at") ? r.Time("run_at") : job.created_at;
  job.unique_key = r.OptString("unique_key");
  if (r.Has("timeout_ms")) job.timeout = Millis(r.IntIn("timeout_ms", 1, kMaxTimeout.count()));
  job.deadline_at = r.OptTime("deadline_at");
  job.priority = static_cast<int>(r.IntInOr("priority", INT32_MIN, INT32_MAX, 0));
  for (const char* list : {"attempts", "events"}) {
    if (!r.Has(list)) continue;
    const Json& arr = r.Get(list);
    if (!arr.is_array()) r.Fail(list, std::string("expected an array, got ") + arr.type_name());
    for (size_t i = 0; i < arr.size(); ++i) {
      if (list[0] == 'a') {
        job.attempts.push_back(ReadAttempt(arr[i], Index("", list, i)));
      } else {
        job.events.push_back(ReadEvent(arr[i], Index("", list, i)));
      }
    }
  }
  if (r.Has("dead")) job.dead = ReadDeadInfo(r.Get("dead"), "dead");
  if (r.Has("replay")) job.replay = ReadReplay(r.Get("replay"), "replay");
  return job;
}

}  // namespace

Json ToJson(const Error& e) {
  Json j = {{"class", Name(e.error_class)},
            {"code", e.code},
            {"message", e.message},
            {"detail", e.detail}};
  if (e.code_cut_bytes) j["code_cut_bytes"] = e.code_cut_bytes;
  if (e.message_cut_bytes) j["message_cut_bytes"] = e.message_cut_bytes;
  if (e.detail_cut_bytes) j["detail_cut_bytes"] = e.detail_cut_bytes;
  return j;
}

Json ToJson(const Decision& d) {
  Json j = {{"action", Name(d.action)},
            {"reason", d.reason},
            {"phase", d.phase > 0 ? Json(d.phase) : Json()},
            {"base_delay_ms", d.base_delay.count()},
            {"jitter_ms", d.jitter.count()},
            {"delay_ms", d.delay.count()},
            {"next_run_at", TimeOrNull(d.next_run_at)}};
  if (d.dead_reason) j["dead_reason"] = Name(*d.dead_reason);
  return j;
}

Json ToJson(const Attempt& a) {
  return {{"n", a.n},
          {"trigger", Name(a.trigger)},
          {"worker", a.worker},
          {"started_at", FormatTime(a.started_at)},
          {"ended_at", TimeOrNull(a.ended_at)},
          {"outcome", a.outcome ? Json(Name(*a.outcome)) : Json()},
          {"error", OrNull(a.error)},
          {"decision", OrNull(a.decision)},
          {"lateness_ms", a.lateness.count()}};
}

Json ToJson(const Event& e) {
  return {{"at", FormatTime(e.at)},
          {"from", e.from ? Json(Name(*e.from)) : Json()},
          {"to", e.to ? Json(Name(*e.to)) : Json()},
          {"reason", e.reason},
          {"actor", e.actor},
          {"note", e.note}};
}

Json ToJson(const DeadInfo& d) {
  return {{"reason", Name(d.reason)}, {"at", FormatTime(d.at)}, {"evidence", d.evidence}};
}

Json ToJson(const Replay& r) {
  return {{"by", r.by}, {"note", r.note}, {"at", FormatTime(r.at)}, {"mode", ReplayModeText(r)}};
}

Json ToJson(const Job& job) {
  Json j = {{"id", job.id}, {"queue", job.queue}, {"type", job.type}, {"state", Name(job.state)}};
  PutPayload(j, job.payload);
  j["policy"] = FormatPolicy(job.policy);
  j["attempt_count"] = job.attempt_count;
  j["created_at"] = FormatTime(job.created_at);
  j["run_at"] = FormatTime(job.run_at);
  j["unique_key"] = job.unique_key ? Json(*job.unique_key) : Json();
  j["timeout_ms"] = job.timeout ? Json(job.timeout->count()) : Json();
  j["deadline_at"] = TimeOrNull(job.deadline_at);
  j["priority"] = job.priority;
  Json attempts = Json::array();
  for (const Attempt& a : job.attempts) attempts.push_back(ToJson(a));
  j["attempts"] = std::move(attempts);
  Json events = Json::array();
  for (const Event& e : job.events) events.push_back(ToJson(e));
  j["events"] = std::move(events);
  j["dead"] = OrNull(job.dead);
  j["replay"] = OrNull(job.replay);
  return j;
}

Result<Error> ErrorFromJson(const Json& j) {
  return ReadJson<Error>([&] { return ReadError(j, "error"); });
}
Result<Decision> DecisionFromJson(const Json& j) {
  return ReadJson<Decision>([&] { return ReadDecision(j, "decision"); });
}
Result<Attempt> AttemptFromJson(const Json& j) {
  return ReadJson<Attempt>([&] { return ReadAttempt(j, "attempt"); });
}
Result<Event> EventFromJson(const Json& j) {
  return ReadJson<Event>([&] { return ReadEvent(j, "event"); });
}
Result<DeadInfo> DeadInfoFromJson(const Json& j) {
  return ReadJson<DeadInfo>([&] { return ReadDeadInfo(j, "dead"); });
}
Result<Replay> ReplayFromJson(const Json& j) {
  return ReadJson<Replay>([&] { return ReadReplay(j, "replay"); });
}
Result<Job> JobFromJson(const Json& j) {
  return ReadJson<Job>([&] { return ReadJob(j); });
}

void PutPayload(Json& job_json, std::string_view payload) {
  // The JSON value only when re-serializing it gives back the very same bytes,
  // so that decoding is exact; anything else travels as base64.
  Json value = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!value.is_discarded() && value.dump() == payload) {
    job_json["payload"] = std::move(value);
    return;
  }
  job_json["payload"] = nullptr;
  job_json["payload_base64"] = internal::Base64Encode(payload);
}

Result<std::string> GetPayload(const Json& job_json) {
  if (auto it = job_json.find("payload_base64"); it != job_json.end() && !it->is_null()) {
    if (!it->is_string()) return Status::InvalidArgument("payload_base64: expected a string");
    std::optional<std::string> bytes = internal::Base64Decode(it->get<std::string>());
    if (!bytes) return Status::InvalidArgument("payload_base64: not valid base64");
    return *bytes;
  }
  auto it = job_json.find("payload");
  if (it == job_json.end()) return std::string();
  return it->dump();
}

std::string DumpJson(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

void AppendJson(std::string& out, std::string_view text) {
  for (char ch : text) {
    if (static_cast<unsigned char>(ch) >= 0x80) {
      // Not ASCII: nlohmann's serializer checks the UTF-8 (and replaces what
      // is invalid), which this writer does not.
      out += DumpJson(Json(std::string(text)));
      return;
    }
  }
  out.push_back('"');
  for (char ch : text) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(kHex[(ch >> 4) & 0xf]);
          out.push_back(kHex[ch & 0xf]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

void AppendJson(std::string& out, const Error& e) {
  out += "{\"class\":";
  AppendJson(out, Name(e.error_class));
  out += ",\"code\":";
  AppendJson(out, e.code);
  out += ",\"message\":";
  AppendJson(out, e.message);
  out += ",\"detail\":";
  AppendJson(out, e.detail);
  if (e.code_cut_bytes) out += ",\"code_cut_bytes\":" + std::to_string(e.code_cut_bytes);
  if (e.message_cut_bytes) out += ",\"message_cut_bytes\":" + std::to_string(e.message_cut_bytes);
  if (e.detail_cut_bytes) out += ",\"detail_cut_bytes\":" + std::to_string(e.detail_cut_bytes);
  out.push_back('}');
}

void AppendJson(std::string& out, const Decision& d) {
  out += "{\"action\":";
  AppendJson(out, Name(d.action));
  out += ",\"reason\":";
  AppendJson(out, d.reason);
  out += ",\"phase\":" + (d.phase > 0 ? std::to_string(d.phase) : std::string("null"));
  out += ",\"base_delay_ms\":" + std::to_string(d.base_delay.count());
  out += ",\"jitter_ms\":" + std::to_string(d.jitter.count());
  out += ",\"delay_ms\":" + std::to_string(d.delay.count());
  out += ",\"next_run_at\":";
  if (d.next_run_at) {
    AppendJson(out, FormatTime(*d.next_run_at));
  } else {
    out += "null";
  }
  if (d.dead_reason) {
    out += ",\"dead_reason\":";
    AppendJson(out, Name(*d.dead_reason));
  }
  out.push_back('}');
}

Result<Json> ParseJson(std::string_view text) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    std::string what = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    if (size_t p = what.find("parse error"); p != std::string::npos) what = what.substr(p);
    return Status::InvalidArgument("invalid JSON: " + what);
  }
}

}  // namespace retraced
