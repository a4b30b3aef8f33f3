#include "store/store_json.h"

namespace retraced {

Json ToJson(const JobSummary& s) {
  Json j = ToJson(s.job);
  j.erase("attempts");
  j.erase("events");
  j["last_error"] = s.last_error ? ToJson(*s.last_error) : Json();
  j["updated_at"] = FormatTime(s.updated_at);
  return j;
}

Json ToJson(const JobPage& page) {
  Json jobs = Json::array();
  for (const JobSummary& s : page.jobs) jobs.push_back(ToJson(s));
  return {{"jobs", std::move(jobs)},
          {"next_cursor", page.next_cursor.empty() ? Json() : Json(page.next_cursor)}};
}

Json ToJson(const DeadGroup& g) {
  Json reasons = Json::object();
  for (const auto& [reason, n] : g.reasons) reasons[std::string(Name(reason))] = n;
  return {{"queue", g.queue},
          {"class", g.error_class ? Json(Name(*g.error_class)) : Json()},
          {"code", g.code},
          {"signature", g.signature},
          {"count", g.count},
          {"reasons", std::move(reasons)},
          {"first_dead_at", FormatTime(g.first_dead_at)},
          {"last_dead_at", FormatTime(g.last_dead_at)},
          {"sample_job_id", g.sample_job_id},
          {"sample_message", g.sample_message}};
}

Json ToJson(const QueueStats& s) {
  Json states = Json::object();
  for (JobState st :
       {JobState::kScheduled, JobState::kReady, JobState::kActive, JobState::kRetryWait,
        JobState::kCompleted, JobState::kDead, JobState::kCancelled}) {
    auto it = s.states.find(st);
    states[std::string(Name(st))] = it == s.states.end() ? 0 : it->second;
  }
  Json counters = Json::object();
  for (const auto& [name, n] : s.counters) counters[name] = n;
  return {{"queue", s.queue}, {"states", std::move(states)}, {"counters", std::move(counters)}};
}

}  // namespace retraced
