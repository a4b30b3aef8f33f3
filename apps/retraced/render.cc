#include "render.h"

#include <sstream>

#include "retraced/json.h"
#include "table.h"

namespace retraced::cli {
namespace {

std::string ErrorLine(const Error& e) {
  std::string line = std::string(Name(e.error_class)) + " error " + e.code;
  if (!e.message.empty()) line += ": " + OneLine(e.message, 120);
  return line;
}

std::string PayloadPreview(const Job& job) {
  Json j = Json::object();
  PutPayload(j, job.payload);
  if (!j["payload"].is_null() || !j.contains("payload_base64"))
    return OneLine(j["payload"].dump(), 100);
  return std::to_string(job.payload.size()) + " bytes, not JSON";
}

int64_t Count(const std::map<std::string, int64_t>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

}  // namespace

std::string OneLine(std::string_view s, size_t max) {
  std::string out;
  for (char c : s) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (out.size() <= max) return out;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  return out.substr(0, cut) + "...";
}

void PrintJobTable(const JobPage& page, std::ostream& out) {
  if (page.jobs.empty()) {
    out << "no jobs\n";
    return;
  }
  Table t({"ID", "QUEUE", "TYPE", "STATE", ">ATTEMPTS", "RUN AT", "LAST ERROR"});
  for (const JobSummary& s : page.jobs) {
    const Job& j = s.job;
    std::string last = s.last_error ? ErrorLine(*s.last_error) : "";
    if (j.dead) last = std::string(Name(j.dead->reason)) + (last.empty() ? "" : ": " + last);
    t.AddRow({j.id, j.queue, j.type, std::string(Name(j.state)), std::to_string(j.attempt_count),
              FormatTime(j.run_at), OneLine(last, 80)});
  }
  t.Print(out);
  if (!page.next_cursor.empty()) out << "more: --cursor " << page.next_cursor << "\n";
}

void PrintTimeline(const Job& job, std::ostream& out) {
  out << "job " << job.id << "  " << job.queue << "/" << job.type << "  " << Name(job.state)
      << "\n";
  out << "  policy    " << FormatPolicy(job.policy) << "\n";
  out << "  created   " << FormatTime(job.created_at);
  if (job.state == JobState::kScheduled || job.state == JobState::kRetryWait ||
      job.state == JobState::kReady) {
    out << "   next run " << FormatTime(job.run_at);
  }
  out << "\n";
  out << "  payload   " << PayloadPreview(job) << "\n";
  std::string extra;
  if (job.unique_key) extra += "unique key " + *job.unique_key + "   ";
  if (job.timeout) extra += "timeout " + FormatDuration(*job.timeout) + "   ";
  if (job.deadline_at) extra += "deadline " + FormatTime(*job.deadline_at) + "   ";
  if (job.priority != 0) extra += "priority " + std::to_string(job.priority);
  if (!extra.empty()) out << "  " << extra << "\n";

  out << "\nattempts (" << job.attempts.size() << ")\n";
  if (job.attempts.empty()) out << "  none yet\n";
  for (const Attempt& a : job.attempts) {
    TimePoint planned = a.started_at - a.lateness;
    out << "  #" << a.n << " " << Name(a.trigger) << " on " << a.worker << "\n";
    out << "     planned " << FormatTime(planned) << ", started " << FormatTime(a.started_at)
        << " (" << HumanDuration(a.lateness) << " late)";
    if (a.ended_at) {
      out << ", ended " << FormatTimeOfDay(*a.ended_at) << " after "
          << HumanDuration(*a.ended_at - a.started_at);
    }
    out << "\n";
    if (!a.ended_at) {
      out << "     running\n";
      continue;
    }
    out << "     " << (a.outcome ? std::string(Name(*a.outcome)) : std::string("ended"));
    if (a.error) out << ": " << ErrorLine(*a.error);
    out << "\n";
    if (a.error && !a.error->detail.empty()) {
      out << "     detail: " << OneLine(a.error->detail, 160) << "\n";
    }
    if (a.decision && a.decision->action != Action::kNone) {
      out << "     -> " << Name(a.decision->action) << ": " << a.decision->reason << "\n";
    }
  }

  out << "\nevents (" << job.events.size() << ")\n";
  Table t({"AT", "FROM", "TO", "REASON", "ACTOR", "NOTE"});
  for (const Event& e : job.events) {
    t.AddRow({FormatTime(e.at), e.from ? std::string(Name(*e.from)) : "-",
              e.to ? std::string(Name(*e.to)) : "-", e.reason, e.actor, OneLine(e.note, 100)});
  }
  std::ostringstream table;
  t.Print(table);
  std::istringstream lines(table.str());
  for (std::string line; std::getline(lines, line);) out << "  " << line << "\n";

  if (job.dead) {
    out << "\nwhy retries stopped: " << Name(job.dead->reason) << " at " << FormatTime(job.dead->at)
        << "\n";
    for (const std::string& line : job.dead->evidence) out << "  " << line << "\n";
  }
  if (job.replay) {
    out << "\nlast replayed by " << job.replay->by << " at " << FormatTime(job.replay->at)
        << " (mode " << ReplayModeText(*job.replay) << ")";
    if (!job.replay->note.empty()) out << ": " << job.replay->note;
    out << "\n";
  }
}

void PrintStory(const Job& job, TimePoint start, std::ostream& out) {
  out << job.type << "  " << job.id << "  (" << job.queue << ", " << FormatPolicy(job.policy)
      << ")\n";
  for (const Attempt& a : job.attempts) {
    std::string when = "+" + HumanDuration(a.started_at - start);
    out << "  #" << a.n << " " << Name(a.trigger) << std::string(10 - Name(a.trigger).size(), ' ')
        << when << std::string(when.size() < 8 ? 8 - when.size() : 1, ' ');
    if (!a.outcome) {
      out << "running\n";
      continue;
    }
    out << Name(*a.outcome);
    if (a.error) out << "  " << ErrorLine(*a.error);
    out << "\n";
    if (a.decision && a.decision->action != Action::kNone) {
      out << "      -> " << Name(a.decision->action) << ": " << a.decision->reason << "\n";
    }
  }
  out << "  now " << Name(job.state);
  if (job.dead) out << " (" << Name(job.dead->reason) << ")";
  if (job.replay) {
    out << "; replayed by " << job.replay->by << " (" << ReplayModeText(*job.replay)
        << "): " << job.replay->note;
  }
  out << "\n\n";
}

void PrintDeadGroups(const std::vector<DeadGroup>& groups, std::ostream& out) {
  if (groups.empty()) {
    out << "the dead letter queue is empty\n";
    return;
  }
  Table t({">COUNT", "QUEUE", "CLASS", "CODE", "REASONS", "LAST DEAD", "SIGNATURE", "SAMPLE JOB"});
  for (const DeadGroup& g : groups) {
    std::string reasons;
    for (const auto& [r, n] : g.reasons) {
      reasons += (reasons.empty() ? "" : ",") + std::string(Name(r)) + "=" + std::to_string(n);
    }
    t.AddRow({std::to_string(g.count), g.queue,
              g.error_class ? std::string(Name(*g.error_class)) : "-",
              g.code.empty() ? "-" : g.code, reasons, FormatTime(g.last_dead_at),
              OneLine(g.signature, 60), g.sample_job_id});
  }
  t.Print(out);
}

void PrintStats(const std::vector<QueueStats>& stats, std::ostream& out) {
  if (stats.empty()) {
    out << "no queues\n";
    return;
  }
  Table states({"QUEUE", ">SCHEDULED", ">READY", ">ACTIVE", ">RETRY_WAIT", ">COMPLETED", ">DEAD",
                ">CANCELLED"});
  Table flow({"QUEUE", ">ENQUEUED", ">ATTEMPTS", ">INITIAL", ">AUTO", ">MANUAL", ">RECOVERY",
              ">COMPLETED", ">FAILED", ">LEASE_EXPIRED", ">STALE_ACKS"});
  Table ends({"QUEUE", ">PERMANENT", ">EXHAUSTED", ">DEADLINE", ">POISON", ">CANCELLED",
              ">REPLAYED", ">PURGED", ">TRIMMED"});
  for (const QueueStats& s : stats) {
    auto st = [&](JobState x) {
      auto it = s.states.find(x);
      return std::to_string(it == s.states.end() ? 0 : it->second);
    };
    auto c = [&](const char* name) { return std::to_string(Count(s.counters, name)); };
    states.AddRow({s.queue, st(JobState::kScheduled), st(JobState::kReady), st(JobState::kActive),
                   st(JobState::kRetryWait), st(JobState::kCompleted), st(JobState::kDead),
                   st(JobState::kCancelled)});
    flow.AddRow({s.queue, c("enqueued"), c("attempts"), c("attempts_initial"), c("attempts_auto"),
                 c("attempts_manual"), c("attempts_recovery"), c("completed"), c("failed"),
                 c("lease_expired"), c("stale_refused")});
    ends.AddRow({s.queue, c("dead_permanent_error"), c("dead_attempts_exhausted"),
                 c("dead_deadline_exceeded"), c("dead_poison"), c("cancelled"), c("replayed"),
                 c("purged"), c("trimmed")});
  }
  out << "jobs now, by state\n";
  states.Print(out);
  out << "\nsince the store was created\n";
  flow.Print(out);
  out << "\nhow jobs ended, and what operators did\n";
  ends.Print(out);
}

}  // namespace retraced::cli
