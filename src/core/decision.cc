// The retry decision: a failed attempt in, retry-or-dead out, with the numbers
// and the reason in words.
#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "retraced/classify.h"
#include "retraced/decide.h"
#include "retraced/job.h"

namespace retraced {
namespace {

struct Position {
  int phase = 0;  // 1-based
  int index = 0;  // 1-based retry number within the phase
  const Strategy* strategy = nullptr;
};

// Where retry number k (1-based, over all phases) falls. Past the last phase
// the last phase continues (a replay with more=N may go beyond the policy).
Position Locate(const RetryPolicy& p, int k) {
  Position pos;
  int before = 0;
  for (size_t i = 0; i < p.phases.size(); ++i) {
    const Strategy& s = p.phases[i];
    bool last = i + 1 == p.phases.size();
    if (k <= before + s.retries || last) {
      pos.phase = static_cast<int>(i) + 1;
      pos.index = k - before;
      pos.strategy = &s;
      return pos;
    }
    before += s.retries;
  }
  return pos;
}

Millis Cap(const Strategy& s) {
  return s.max ? std::min(*s.max, kMaxPolicyDelay) : kMaxPolicyDelay;
}

// The strategy's delay for its `index`-th retry, before jitter.
Millis BaseDelay(const Strategy& s, int index) {
  using K = Strategy::Kind;
  double ms = 0;
  switch (s.kind) {
    case K::kImmediate:
      return Millis(0);
    case K::kFixed:
      ms = static_cast<double>(s.base.count());
      break;
    case K::kLinear:
      ms = static_cast<double>(s.base.count()) + static_cast<double>(s.step.count()) * (index - 1);
      break;
    case K::kExponential:
      ms = static_cast<double>(s.base.count()) * std::pow(s.factor, index - 1);
      break;
    case K::kCustom:
      if (const CustomStrategy* custom = FindStrategy(s.custom_name)) {
        ms = static_cast<double>(custom->delay(s, index).count());
      } else {
        ms = static_cast<double>(s.base.count());  // not registered here: see Decide
      }
      if (ms < 0) ms = 0;
      break;
  }
  double cap = static_cast<double>(Cap(s).count());
  if (!(ms < cap)) ms = cap;  // also catches inf
  return Millis(std::llround(ms));
}

std::string Describe(ErrorClass cls, std::string_view code, std::string_view source) {
  std::string out(Name(cls));
  out.append(" error");
  if (!code.empty()) out.append(" ").append(code);
  if (!source.empty()) out.append(" (").append(source).append(")");
  return out;
}

Decision Dead(DeadReason reason, std::string text) {
  Decision d;
  d.action = Action::kDead;
  d.dead_reason = reason;
  d.reason = std::move(text);
  return d;
}

}  // namespace

Decision SuccessDecision() {
  Decision d;
  d.action = Action::kNone;
  d.reason = "succeeded";
  return d;
}

Decision Decide(const RetryPolicy& policy, const RetryContext& ctx, const Failure& failure) {
  if (failure.outcome == Outcome::kLeaseExpired && ctx.poison_after > 0 &&
      ctx.lease_expired_in_row >= ctx.poison_after) {
    return Dead(DeadReason::kPoison,
                "lease expired " + std::to_string(ctx.lease_expired_in_row) +
                    " times in a row: each time, the worker running it died or stopped "
                    "heartbeating (poison after " +
                    std::to_string(ctx.poison_after) + ")");
  }
  std::string what = Describe(failure.error_class, failure.code, failure.class_source);
  if (failure.error_class == ErrorClass::kPermanent) {
    return Dead(DeadReason::kPermanentError, what + ": not retried");
  }

  int k = ctx.run_in_sequence;  // the retry that would come next
  int allowed = ctx.budget ? *ctx.budget - 1 : policy.TotalRetries();
  if (policy.phases.empty() && !ctx.budget) {
    return Dead(DeadReason::kAttemptsExhausted, what + "; policy 'none' allows no retry");
  }
  if (k > allowed) {
    if (ctx.budget) {
      return Dead(DeadReason::kAttemptsExhausted,
                  what + "; the replay allowed " + std::to_string(*ctx.budget) +
                      (*ctx.budget == 1 ? " run" : " runs") + " and all were used");
    }
    return Dead(DeadReason::kAttemptsExhausted,
                what + "; all " + std::to_string(allowed) + " retries used (the policy allows " +
                    std::to_string(allowed) + " after the first run)");
  }

  if (policy.phases.empty()) {
    // A replay gave runs to a job whose policy has no delays: run again at once.
    Decision d;
    d.action = Action::kRetry;
    d.next_run_at = ctx.now;
    d.reason = what + "; retry " + std::to_string(k) + " of " + std::to_string(allowed) +
               " allowed by the replay, at once (policy 'none' has no delays); next run " +
               FormatTimeOfDay(ctx.now);
    return d;
  }
  Position pos = Locate(policy, k);
  const Strategy& s = *pos.strategy;
  Decision d;
  d.phase = pos.phase;
  d.base_delay = BaseDelay(s, pos.index);
  internal::JitterRng rng(ctx.job_id, ctx.attempt);
  std::string jitter_words;
  int64_t b = d.base_delay.count();
  switch (s.jitter) {
    case Jitter::kNone:
      d.delay = d.base_delay;
      break;
    case Jitter::kFull:
      d.delay = Millis(rng.Between(0, b));
      jitter_words = ", full jitter drew " + FormatDuration(d.delay);
      break;
    case Jitter::kEqual:
      d.delay = Millis(b / 2 + rng.Between(0, b - b / 2));
      jitter_words = ", equal jitter drew " + FormatDuration(d.delay);
      break;
    case Jitter::kDecorrelated: {
      // Draws from [D, 3 x previous delay], capped; the strategy's own growth
      // is replaced by the draw's, so the range's top is the delay before jitter.
      int64_t lo = s.base.count();
      int64_t cap = Cap(s).count();
      int64_t prev = ctx.previous_delay.count() > 0 ? ctx.previous_delay.count() : lo;
      int64_t hi = std::max(lo, std::min(std::min(prev, cap) * 3, cap));
      d.base_delay = Millis(hi);
      d.delay = Millis(rng.Between(lo, hi));
      jitter_words = ", decorrelated jitter drew " + FormatDuration(d.delay) + " from " +
                     FormatDuration(Millis(lo)) + ".." + FormatDuration(Millis(hi));
      break;
    }
  }
  d.jitter = d.delay - d.base_delay;

  std::string where;
  if (policy.phases.size() > 1) {
    where = "phase " + std::to_string(pos.phase) + "/" + std::to_string(policy.phases.size()) +
            " " + std::string(StrategyName(s)) + ", retry " + std::to_string(pos.index) + " of " +
            std::to_string(s.retries) + " (" + std::to_string(k) + " of " +
            std::to_string(allowed) + " overall)";
  } else {
    where = std::string(StrategyName(s)) + ", retry " + std::to_string(k) + " of " +
            std::to_string(allowed);
  }
  if (s.kind == Strategy::Kind::kCustom && !FindStrategy(s.custom_name)) {
    where += " (strategy '" + s.custom_name +
             "' is not registered in this process: its base delay was used)";
  }
  if (ctx.budget) where += " allowed by the replay";
  TimePoint next = ctx.now + d.delay;
  std::string numbers = FormatDuration(d.base_delay) + jitter_words;

  if (ctx.deadline_at && next > *ctx.deadline_at) {
    Decision dead = d;
    dead.action = Action::kDead;
    dead.dead_reason = DeadReason::kDeadlineExceeded;
    dead.reason = what + "; " + where + ": " + numbers + "; next run " + FormatTimeOfDay(next) +
                  " would be past the deadline " + FormatTime(*ctx.deadline_at);
    return dead;
  }
  d.action = Action::kRetry;
  d.next_run_at = next;
  d.reason = what + "; " + where + ": " + numbers + "; next run " + FormatTimeOfDay(next);
  return d;
}

std::optional<TimePoint> DeadlineAt(const RetryPolicy& policy, TimePoint from) {
  if (!policy.deadline) return std::nullopt;
  return from + *policy.deadline;
}

RetryContext ContextFor(const Job& job, const Attempt& failed, TimePoint now, int poison_after) {
  RetryContext ctx;
  ctx.job_id = job.id;
  ctx.attempt = failed.n;
  ctx.now = now;
  ctx.deadline_at = job.deadline_at;
  ctx.poison_after = poison_after;

  // Earlier attempts by number, then the failed one.
  std::vector<const Attempt*> history;
  for (const Attempt& a : job.attempts) {
    if (a.n < failed.n) history.push_back(&a);
  }
  std::sort(history.begin(), history.end(),
            [](const Attempt* x, const Attempt* y) { return x->n < y->n; });
  history.push_back(&failed);

  size_t start = 0;  // index in `history` of the attempt that began this sequence
  for (size_t i = 0; i < history.size(); ++i) {
    if (history[i]->trigger == Trigger::kManual) start = i;
  }
  ctx.run_in_sequence = static_cast<int>(history.size() - start);
  if (history[start]->trigger == Trigger::kManual && job.replay &&
      job.replay->mode == Replay::Mode::kMore) {
    ctx.budget = job.replay->more;
  }
  if (history.size() - start >= 2) {
    const Attempt& prev = *history[history.size() - 2];
    if (prev.decision && prev.decision->action == Action::kRetry) {
      ctx.previous_delay = prev.decision->delay;
    }
  }
  // Graceful releases (WORKER_STOPPED) neither count nor break the streak;
  // the release itself is never poison.
  auto released = [](const Attempt& a) {
    return a.outcome == Outcome::kLeaseExpired && a.error && a.error->code == kCodeWorkerStopped;
  };
  if (!released(failed)) {
    for (size_t i = history.size(); i-- > start;) {
      const Attempt& a = *history[i];
      if (released(a)) continue;
      if (a.outcome != Outcome::kLeaseExpired) break;
      ++ctx.lease_expired_in_row;
    }
  }
  return ctx;
}

std::vector<std::string> DeadEvidence(const std::vector<Attempt>& attempts,
                                      const Decision& decision) {
  constexpr size_t kMaxLines = 20;
  size_t start = 0;
  for (size_t i = 0; i < attempts.size(); ++i) {
    if (attempts[i].trigger == Trigger::kManual) start = i;
  }
  std::vector<std::string> lines;
  size_t first = attempts.size() - start > kMaxLines ? attempts.size() - kMaxLines : start;
  if (first > start) {
    lines.push_back(std::to_string(first - start) + " earlier attempts left out");
  }
  for (size_t i = first; i < attempts.size(); ++i) {
    const Attempt& a = attempts[i];
    std::string line = "attempt " + std::to_string(a.n) + " (" + std::string(Name(a.trigger)) +
                       ") on " + (a.worker.empty() ? "?" : a.worker) + " at " +
                       FormatTime(a.started_at) + ": ";
    line += a.outcome ? std::string(Name(*a.outcome)) : "running";
    if (a.error) {
      line += ", " + std::string(Name(a.error->error_class)) + " error " + a.error->code;
      if (!a.error->message.empty()) line += ": " + a.error->message;
    }
    lines.push_back(std::move(line));
  }
  lines.push_back(decision.reason);
  return lines;
}

}  // namespace retraced
