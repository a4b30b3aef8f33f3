// The policy text parser: text -> a small syntax tree of calls -> RetryPolicy.
// Every error names the 1-based column, what stood there and what was expected.
#include <charconv>
#include <cmath>
#include <set>

#include "retraced/id.h"
#include "retraced/retry_policy.h"

namespace retraced {
namespace {

// ---- Syntax ---------------------------------------------------------------

struct Call;

struct Value {
  enum class Kind { kWord, kCall, kList } kind = Kind::kWord;
  std::string word;               // kWord; also the name of a kCall
  std::vector<Call> call;         // kCall: exactly one element
  std::vector<std::string> list;  // kList
  size_t col = 0;
};

struct Arg {
  std::string key;  // empty for a positional argument
  Value value;
  size_t col = 0;
};

struct Call {
  std::string name;
  std::vector<Arg> args;
  size_t col = 0;
};

class ParseError {
 public:
  ParseError(size_t col, std::string message) : col_(col), message_(std::move(message)) {}
  Status ToStatus() const {
    return Status::InvalidArgument("invalid retry policy: column " + std::to_string(col_) + ": " +
                                   message_);
  }

 private:
  size_t col_;
  std::string message_;
};

bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-' || c == ':' || c == '@' || c == '/' || c == '+';
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Call ParseAll() {
    SkipSpace();
    if (pos_ == text_.size())
      throw ParseError(1, "empty policy; expected e.g. " + std::string(kDefaultPolicyText));
    Value v = ParseValue();
    if (v.kind != Value::Kind::kWord && v.kind != Value::Kind::kCall) {
      throw ParseError(v.col, "expected a strategy such as exponential(...) or phases(...)");
    }
    SkipSpace();
    if (pos_ < text_.size()) {
      if (text_[pos_] == ')') throw ParseError(Col(), "unexpected ')' with no '(' to close");
      throw ParseError(Col(), "unexpected '" + Rest() + "' after the end of the policy");
    }
    if (v.kind == Value::Kind::kWord) return Call{v.word, {}, v.col};
    return std::move(v.call.front());
  }

 private:
  size_t Col() const { return pos_ + 1; }
  std::string Rest() const {
    std::string_view r = text_.substr(pos_, 12);
    return std::string(r) + (pos_ + 12 < text_.size() ? "..." : "");
  }
  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Peek(char c) {
    SkipSpace();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  std::string Found() {
    SkipSpace();
    if (pos_ >= text_.size()) return "the end of the text";
    return "'" + std::string(1, text_[pos_]) + "'";
  }

  std::string ParseWord(std::string_view expected) {
    SkipSpace();
    size_t start = pos_;
    while (pos_ < text_.size() && IsWordChar(text_[pos_])) ++pos_;
    if (pos_ == start)
      throw ParseError(Col(), "expected " + std::string(expected) + ", found " + Found());
    return std::string(text_.substr(start, pos_ - start));
  }

  Value ParseValue() {
    SkipSpace();
    Value v;
    v.col = Col();
    if (Peek('[')) {
      size_t open = Col();
      ++pos_;
      v.kind = Value::Kind::kList;
      if (Peek(']')) {
        ++pos_;
        return v;
      }
      while (true) {
        v.list.push_back(ParseWord("an error code"));
        if (Peek(',')) {
          ++pos_;
          continue;
        }
        if (Peek(']')) {
          ++pos_;
          return v;
        }
        throw ParseError(Col(), "expected ',' or ']' to close the list opened at column " +
                                    std::to_string(open) + ", found " + Found());
      }
    }
    v.word = ParseWord("a value");
    if (Peek('(')) {
      if (++depth_ > kMaxDepth) {
        throw ParseError(Col(), "calls nested more than " + std::to_string(kMaxDepth) + " deep");
      }
      v.kind = Value::Kind::kCall;
      Call c{v.word, {}, v.col};
      size_t open = Col();
      ++pos_;
      if (Peek(')')) {
        ++pos_;
      } else {
        while (true) {
          c.args.push_back(ParseArg());
          if (Peek(',')) {
            ++pos_;
            continue;
          }
          if (Peek(')')) {
            ++pos_;
            break;
          }
          throw ParseError(Col(), "expected ',' or ')' to close '" + c.name +
                                      "(' opened at column " + std::to_string(open) + ", found " +
                                      Found());
        }
      }
      v.call.push_back(std::move(c));
      --depth_;
    }
    return v;
  }

  Arg ParseArg() {
    SkipSpace();
    Arg a;
    a.col = Col();
    size_t save = pos_;
    // key=value, or a positional value.
    size_t start = pos_;
    while (pos_ < text_.size() && IsWordChar(text_[pos_])) ++pos_;
    size_t end = pos_;
    if (end > start && Peek('=')) {
      a.key = std::string(text_.substr(start, end - start));
      ++pos_;
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] == ',' || text_[pos_] == ')') {
        throw ParseError(Col(), "expected a value after '" + a.key + "='");
      }
      a.value = ParseValue();
      return a;
    }
    pos_ = save;
    a.value = ParseValue();
    return a;
  }

  static constexpr int kMaxDepth = 4;
  std::string_view text_;
  size_t pos_ = 0;
  int depth_ = 0;
};

// ---- Semantics ------------------------------------------------------------

Millis DurationArg(const Arg& a, std::string_view what) {
  if (a.value.kind != Value::Kind::kWord) {
    throw ParseError(a.value.col,
                     std::string(what) + " must be a duration such as 200ms, 2s or 1m");
  }
  Result<Millis> d = ParseDuration(a.value.word);
  if (!d.ok()) {
    throw ParseError(a.value.col, std::string(what) +
                                      " must be a duration such as 200ms, 2s or 1m, got '" +
                                      a.value.word + "'");
  }
  if (*d > kMaxPolicyDelay) {
    throw ParseError(a.value.col,
                     std::string(what) + " " + a.value.word + " is over the limit of 365 days");
  }
  return *d;
}

int RetriesArg(const Arg& a) {
  const std::string& w = a.value.word;
  int n = -1;
  if (a.value.kind == Value::Kind::kWord) {
    auto [ptr, ec] = std::from_chars(w.data(), w.data() + w.size(), n);
    if (ec != std::errc() || ptr != w.data() + w.size()) n = -1;
  }
  if (n < 0) {
    throw ParseError(a.value.col, "retries must be a whole number from 0 to " +
                                      std::to_string(kMaxPolicyRetries) + ", got '" +
                                      (a.value.kind == Value::Kind::kWord ? w : "(...)") + "'");
  }
  if (n > kMaxPolicyRetries) {
    throw ParseError(a.value.col,
                     "retries=" + w + " is over the limit of " + std::to_string(kMaxPolicyRetries));
  }
  return n;
}

double FactorArg(const Arg& a) {
  const std::string& w = a.value.word;
  double f = 0;
  bool ok = a.value.kind == Value::Kind::kWord && !w.empty();
  if (ok) {
    auto [ptr, ec] = std::from_chars(w.data(), w.data() + w.size(), f);
    ok = ec == std::errc() && ptr == w.data() + w.size() && std::isfinite(f);
  }
  if (!ok)
    throw ParseError(a.value.col, "factor must be a number such as 2 or 1.5, got '" + w + "'");
  if (f < 1.0 || f > kMaxPolicyFactor) {
    throw ParseError(a.value.col, "factor must be from 1 to 100, got " + w);
  }
  return f;
}

std::vector<std::string> CodeListArg(const Arg& a) {
  if (a.value.kind != Value::Kind::kList) {
    throw ParseError(a.value.col, a.key + " must be a list of error codes in brackets, e.g. " +
                                      a.key + "=[TIMEOUT,HTTP_503]");
  }
  for (const std::string& code : a.value.list) {
    Status s = ValidateName("error code", code);
    if (!s.ok()) throw ParseError(a.value.col, s.message());
  }
  return a.value.list;
}

struct PolicyOptions {
  std::optional<Millis> deadline;
  std::vector<std::string> retry_on, dead_on;
};

bool IsPolicyOption(const std::string& key) {
  return key == "deadline" || key == "retry_on" || key == "dead_on";
}

void ApplyPolicyOption(const Arg& a, PolicyOptions& o) {
  if (a.key == "deadline") {
    o.deadline = DurationArg(a, "deadline");
    if (o.deadline->count() <= 0) throw ParseError(a.value.col, "deadline must be positive");
  } else if (a.key == "retry_on") {
    o.retry_on = CodeListArg(a);
  } else {
    o.dead_on = CodeListArg(a);
  }
}

// Builds one strategy from `c`. Policy-wide options are collected into `opts`
// when `opts` is not null (a single-strategy policy) and refused otherwise.
Strategy BuildStrategy(const Call& c, PolicyOptions* opts, const ParseOptions& po) {
  Strategy s;
  std::set<std::string> allowed;
  std::set<std::string> custom_options;  // a custom strategy's own option names
  bool any_custom_option = false;        // an unregistered strategy: keep every option
  std::string usage;
  if (c.name == "immediate") {
    s.kind = Strategy::Kind::kImmediate;
    allowed = {"retries"};
    usage = "immediate(RETRIES)";
  } else if (c.name == "fixed") {
    s.kind = Strategy::Kind::kFixed;
    allowed = {"retries", "jitter"};
    usage = "fixed(DELAY, retries=N)";
  } else if (c.name == "linear") {
    s.kind = Strategy::Kind::kLinear;
    allowed = {"retries", "jitter", "step", "max"};
    usage = "linear(DELAY, step=DELAY, retries=N)";
  } else if (c.name == "exponential") {
    s.kind = Strategy::Kind::kExponential;
    allowed = {"retries", "jitter", "factor", "max"};
    usage = "exponential(DELAY, factor=2, max=DELAY, retries=N, jitter=full)";
  } else if (c.name == "phases" || c.name == "none") {
    throw ParseError(
        c.col,
        "'" + c.name + "' cannot be a phase; expected immediate, fixed, linear or exponential");
  } else if (const CustomStrategy* custom = FindStrategy(c.name); custom || po.allow_unregistered) {
    s.kind = Strategy::Kind::kCustom;
    s.custom_name = c.name;
    allowed = {"retries", "jitter", "max"};
    if (custom) {
      custom_options = std::set<std::string>(custom->options.begin(), custom->options.end());
    } else {
      any_custom_option = true;
    }
    usage = c.name + "(DELAY, ..., retries=N)";
  } else {
    throw ParseError(c.col,
                     "unknown strategy '" + c.name +
                         "'; expected none, immediate, fixed, linear, exponential or phases");
  }

  std::set<std::string> seen;
  bool have_positional = false;
  bool step_given = false;
  s.retries = 3;
  for (const Arg& a : c.args) {
    if (a.key.empty()) {
      if (have_positional) {
        throw ParseError(a.col, "too many plain arguments to " + c.name + "; expected " + usage);
      }
      if (!seen.empty()) {
        throw ParseError(a.col, "the plain argument of " + c.name + " must come first: " + usage);
      }
      have_positional = true;
      if (s.kind == Strategy::Kind::kImmediate) {
        s.retries = RetriesArg(a);
        seen.insert("retries");
      } else {
        s.base = DurationArg(a, "the delay");
      }
      continue;
    }
    if (!seen.insert(a.key).second) throw ParseError(a.col, a.key + "= is given twice");
    if (IsPolicyOption(a.key)) {
      if (opts == nullptr) {
        throw ParseError(
            a.col,
            a.key + "= applies to the whole policy: write it in phases(...), not in a phase");
      }
      ApplyPolicyOption(a, *opts);
      continue;
    }
    if (s.kind == Strategy::Kind::kCustom && !allowed.count(a.key) &&
        (any_custom_option || custom_options.count(a.key))) {
      if (a.value.kind != Value::Kind::kWord) {
        throw ParseError(a.value.col, a.key + "= takes a plain value such as 3, 1.5 or 200ms");
      }
      s.custom_options.emplace_back(a.key, a.value.word);
      continue;
    }
    if (!allowed.count(a.key)) {
      for (const std::string& k : custom_options) allowed.insert(k);
      std::string list;
      for (const std::string& k : allowed) list += (list.empty() ? "" : ", ") + k + "=";
      throw ParseError(a.col, "unknown option '" + a.key + "' for " + c.name + "; expected " +
                                  list + (opts ? ", deadline=, retry_on= or dead_on=" : ""));
    }
    if (a.key == "retries") {
      s.retries = RetriesArg(a);
    } else if (a.key == "jitter") {
      Result<Jitter> j = a.value.kind == Value::Kind::kWord
                             ? ParseJitter(a.value.word)
                             : Result<Jitter>(Status::InvalidArgument(""));
      if (!j.ok()) {
        throw ParseError(a.value.col, "unknown jitter '" + a.value.word +
                                          "'; expected none, full, equal or decorrelated");
      }
      s.jitter = *j;
    } else if (a.key == "step") {
      s.step = DurationArg(a, "step");
      step_given = true;
    } else if (a.key == "max") {
      s.max = DurationArg(a, "max");
    } else if (a.key == "factor") {
      s.factor = FactorArg(a);
    }
  }
  if (!have_positional && s.kind != Strategy::Kind::kImmediate &&
      s.kind != Strategy::Kind::kCustom) {
    throw ParseError(c.col, c.name + " needs a delay as its first argument: " + usage);
  }
  if (!have_positional && s.kind == Strategy::Kind::kImmediate && !seen.count("retries")) {
    throw ParseError(c.col, "immediate needs a number of retries: immediate(2)");
  }
  if (s.kind == Strategy::Kind::kExponential && s.base.count() == 0) {
    throw ParseError(c.args.front().value.col, "the base delay of exponential must be above 0ms");
  }
  if (s.kind == Strategy::Kind::kLinear && !step_given) s.step = s.base;
  if (s.jitter == Jitter::kDecorrelated && !s.max) {
    throw ParseError(c.col, "jitter=decorrelated needs max= to bound its growth: " +
                                (s.kind == Strategy::Kind::kFixed
                                     ? std::string("use linear(...) or exponential(...) with max=")
                                     : c.name + "(..., max=DELAY, jitter=decorrelated)"));
  }
  if (s.max && *s.max < s.base) {
    throw ParseError(c.col, "max=" + FormatDuration(*s.max) + " is below the base delay " +
                                FormatDuration(s.base));
  }
  return s;
}

RetryPolicy Build(const Call& top, const ParseOptions& po) {
  RetryPolicy p;
  PolicyOptions opts;
  if (top.name == "none") {
    for (const Arg& a : top.args) {
      throw ParseError(a.col, "none takes no arguments: a job with this policy is never retried");
    }
    return p;
  }
  if (top.name == "phases") {
    std::set<std::string> seen;
    for (const Arg& a : top.args) {
      if (a.key.empty()) {
        if (!seen.empty()) {
          throw ParseError(a.col,
                           "phases must come before the options deadline=, retry_on=, dead_on=");
        }
        if (a.value.kind != Value::Kind::kCall && a.value.kind != Value::Kind::kWord) {
          throw ParseError(a.col,
                           "expected a phase such as immediate(2) or exponential(1s, retries=5)");
        }
        Call phase = a.value.kind == Value::Kind::kCall ? a.value.call.front()
                                                        : Call{a.value.word, {}, a.value.col};
        p.phases.push_back(BuildStrategy(phase, nullptr, po));
        if (p.phases.size() > kMaxPolicyPhases) {
          throw ParseError(a.col, "more than " + std::to_string(kMaxPolicyPhases) + " phases");
        }
        continue;
      }
      if (!IsPolicyOption(a.key)) {
        throw ParseError(a.col, "unknown option '" + a.key +
                                    "' for phases; expected deadline=, retry_on= or dead_on=");
      }
      if (!seen.insert(a.key).second) throw ParseError(a.col, a.key + "= is given twice");
      ApplyPolicyOption(a, opts);
    }
    if (p.phases.empty()) {
      throw ParseError(
          top.col,
          "phases needs at least one phase, e.g. phases(immediate(2), fixed(5s, retries=3))");
    }
  } else {
    p.phases.push_back(BuildStrategy(top, &opts, po));
  }
  p.deadline = opts.deadline;
  p.retry_on = std::move(opts.retry_on);
  p.dead_on = std::move(opts.dead_on);
  if (p.TotalRetries() > kMaxPolicyRetries) {
    throw ParseError(top.col, "the phases add up to " + std::to_string(p.TotalRetries()) +
                                  " retries, over the limit of " +
                                  std::to_string(kMaxPolicyRetries));
  }
  return p;
}

}  // namespace

Result<RetryPolicy> ParsePolicy(std::string_view text, ParseOptions po) {
  if (text.size() > kMaxPolicyTextBytes) {
    return ParseError(kMaxPolicyTextBytes + 1, "policy text is longer than " +
                                                   std::to_string(kMaxPolicyTextBytes) + " bytes")
        .ToStatus();
  }
  try {
    RetryPolicy p = Build(Parser(text).ParseAll(), po);
    RETRACED_RETURN_IF_ERROR(ValidatePolicy(p).WithContext("invalid retry policy"));
    return p;
  } catch (const ParseError& e) {
    return e.ToStatus();
  }
}

}  // namespace retraced
