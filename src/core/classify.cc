#include "retraced/classify.h"

#include <algorithm>

#include "retraced/json.h"

namespace retraced {
namespace {

constexpr std::string_view kSysexits[] = {
    "EX_USAGE",       "EX_DATAERR",  "EX_NOINPUT",  "EX_NOUSER", "EX_NOHOST",
    "EX_UNAVAILABLE", "EX_SOFTWARE", "EX_OSERR",    "EX_OSFILE", "EX_CANTCREAT",
    "EX_IOERR",       "EX_TEMPFAIL", "EX_PROTOCOL", "EX_NOPERM", "EX_CONFIG",
};
constexpr int kExTempfail = 75;

std::string SignalName(int sig) {
  switch (sig) {
    case 1:
      return "SIGHUP";
    case 2:
      return "SIGINT";
    case 3:
      return "SIGQUIT";
    case 4:
      return "SIGILL";
    case 6:
      return "SIGABRT";
    case 7:
      return "SIGBUS";
    case 8:
      return "SIGFPE";
    case 9:
      return "SIGKILL";
    case 11:
      return "SIGSEGV";
    case 13:
      return "SIGPIPE";
    case 14:
      return "SIGALRM";
    case 15:
      return "SIGTERM";
    default:
      return "SIGNAL_" + std::to_string(sig);
  }
}

bool Contains(const std::vector<std::string>& codes, std::string_view code) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

std::string_view LastLine(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  size_t nl = text.rfind('\n');
  return nl == std::string_view::npos ? text : text.substr(nl + 1);
}

}  // namespace

std::string_view SysexitsName(int status) {
  if (status < 64 || status > 78) return {};
  return kSysexits[status - 64];
}

Classified Classify(const HandlerFailure& f, const ClassifierConfig& config,
                    const RetryPolicy& policy) {
  Classified c;
  // Classify by the code as it will be stored, so a decision can be re-derived from the record.
  c.error = MakeError(ErrorClass::kTemporary, f.code, f.message, f.detail);
  const std::string& code = c.error.code;
  ErrorClass cls;
  if (Contains(policy.dead_on, code)) {
    cls = ErrorClass::kPermanent;
    c.source = "dead_on in policy";
  } else if (Contains(policy.retry_on, code)) {
    cls = ErrorClass::kTemporary;
    c.source = "retry_on in policy";
  } else if (auto it = config.codes.find(code); it != config.codes.end()) {
    cls = it->second;
    c.source = "queue table";
  } else if (f.error_class) {
    cls = *f.error_class;
  } else {
    cls = config.unclassified;
    c.source = "unclassified, queue default";
  }
  if (f.error_class && *f.error_class != cls) {
    c.source += std::string(", handler said ") + std::string(Name(*f.error_class));
  }
  c.error.error_class = cls;
  return c;
}

Failure ToFailure(Outcome outcome, const Classified& c) {
  Failure f;
  f.outcome = outcome;
  f.error_class = c.error.error_class;
  f.code = c.error.code;
  f.class_source = c.source;
  return f;
}

std::optional<HandlerFailure> FromExecExit(const ExecExit& exit) {
  if (!exit.signaled && exit.status == 0) return std::nullopt;
  HandlerFailure f;
  if (exit.signaled) {
    f.code = SignalName(exit.status);
    f.message = "killed by signal " + std::to_string(exit.status) + " (" + f.code + ")";
  } else if (std::string_view name = SysexitsName(exit.status); !name.empty()) {
    f.code = std::string(name);
    f.error_class = exit.status == kExTempfail ? ErrorClass::kTemporary : ErrorClass::kPermanent;
    f.message = "exited with status " + std::to_string(exit.status) + " (" + f.code + ")";
  } else {
    f.code = "EXIT_" + std::to_string(exit.status);
    f.message = "exited with status " + std::to_string(exit.status);
  }
  // A JSON object on the last line of stdout refines the classification.
  std::string_view line = LastLine(exit.stdout_text);
  if (!line.empty() && line.front() == '{') {
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) {
      if (auto it = j.find("class"); it != j.end() && it->is_string()) {
        Result<ErrorClass> cls = ParseErrorClass(it->get<std::string>());
        if (cls.ok()) f.error_class = *cls;
      }
      if (auto it = j.find("code");
          it != j.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
        f.code = it->get<std::string>();
      }
      if (auto it = j.find("message"); it != j.end() && it->is_string()) {
        f.message = it->get<std::string>();
      }
    }
  }
  f.detail = exit.stderr_text;
  return f;
}

std::string ErrorSignature(std::string_view message) {
  auto is_alnum = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  };
  std::string out;
  size_t i = 0;
  while (i < message.size() && out.size() < 200) {
    char c = message[i];
    if (!is_alnum(c)) {
      out += c;
      ++i;
      continue;
    }
    size_t j = i;
    bool digit = false;
    while (j < message.size() && is_alnum(message[j])) {
      digit = digit || (message[j] >= '0' && message[j] <= '9');
      ++j;
    }
    std::string_view word = message.substr(i, j - i);
    bool all_digits =
        std::all_of(word.begin(), word.end(), [](char d) { return d >= '0' && d <= '9'; });
    if (all_digits) {
      out += '#';
    } else if (digit && word.size() >= 8) {
      out += '*';
    } else {
      // Digits inside a short word (units like "30s", "v2") still vary: blank them.
      bool in_digits = false;
      for (char d : word) {
        bool is_digit = d >= '0' && d <= '9';
        if (is_digit && !in_digits) out += '#';
        if (!is_digit) out += d;
        in_digits = is_digit;
      }
    }
    i = j;
  }
  return out.substr(0, 200);
}

}  // namespace retraced
