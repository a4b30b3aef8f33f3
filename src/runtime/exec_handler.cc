#include "retraced/exec_handler.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>

extern char** environ;

namespace retraced {
namespace {

constexpr size_t kKeepStdout = 64 * 1024;  // enough for the last line
constexpr size_t kKeepStderr = 16 * 1024;  // MakeError keeps the last 4 KiB

void KeepTail(std::string& buf, const char* data, size_t n, size_t keep) {
  buf.append(data, n);
  if (buf.size() > 2 * keep) buf.erase(0, buf.size() - keep);
}

class Pipe {
 public:
  Pipe() {
    if (pipe2(fd_, O_CLOEXEC) != 0) fd_[0] = fd_[1] = -1;
  }
  ~Pipe() {
    Close(0);
    Close(1);
  }
  bool ok() const { return fd_[0] >= 0; }
  int operator[](int i) const { return fd_[i]; }
  void Close(int i) {
    if (fd_[i] >= 0) close(fd_[i]);
    fd_[i] = -1;
  }

 private:
  int fd_[2];
};

// The path of `program`: itself when it contains a '/', else the first
// executable file of that name in PATH. Empty when there is none.
std::string Resolve(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// Sends SIGTERM to the program's process group when a stop is requested, and
// SIGKILL `kill_grace` later.
class Stopper {
 public:
  Stopper(pid_t pid, const std::stop_token& stop, Millis grace)
      : pid_(pid), stop_(stop), grace_(grace) {}
  void Check() {
    if (!term_sent_ && stop_.stop_requested()) {
      kill(-pid_, SIGTERM);
      term_sent_ = true;
      term_at_ = std::chrono::steady_clock::now();
    }
    if (term_sent_ && !kill_sent_ && std::chrono::steady_clock::now() - term_at_ >= grace_) {
      kill(-pid_, SIGKILL);
      kill_sent_ = true;
    }
  }

 private:
  pid_t pid_;
  std::stop_token stop_;
  Millis grace_;
  bool term_sent_ = false, kill_sent_ = false;
  std::chrono::steady_clock::time_point term_at_;
};

HandlerResult RunProgram(const std::vector<std::string>& argv, const ExecOptions& options,
                         const JobContext& ctx) {
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls are allowed (execve, not execvpe).
  std::string program = Resolve(argv[0]);
  if (program.empty()) {
    return HandlerResult::Permanent("EXEC_FAILED",
                                    "cannot run '" + argv[0] + "': not found in PATH");
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "RETRACED_", 9) != 0) env_strings.emplace_back(*e);
  }
  env_strings.push_back("RETRACED_JOB_ID=" + ctx.job.id);
  env_strings.push_back("RETRACED_ATTEMPT=" + std::to_string(ctx.attempt.n));
  env_strings.push_back("RETRACED_TRIGGER=" + std::string(Name(ctx.attempt.trigger)));
  env_strings.push_back("RETRACED_QUEUE=" + ctx.job.queue);
  env_strings.push_back("RETRACED_JOB_TYPE=" + ctx.job.type);
  std::vector<char*> envp, args;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (std::string& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  Pipe in, out, err, exec_error;
  if (!in.ok() || !out.ok() || !err.ok() || !exec_error.ok()) {
    return HandlerResult::Temporary("EXEC_FAILED", std::string("pipe: ") + std::strerror(errno));
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    return HandlerResult::Temporary("EXEC_FAILED", std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // The child: its own process group, killed if the worker dies, default
    // signal handling and mask, then the program.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execve(program.c_str(), args.data(), envp.data());
    int e = errno;
    ssize_t ignored = write(exec_error[1], &e, sizeof e);
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also from here, so that killing the group works at once
  in.Close(0);
  out.Close(1);
  err.Close(1);
  exec_error.Close(1);
  int exec_errno = 0;
  if (read(exec_error[0], &exec_errno, sizeof exec_errno) == sizeof exec_errno) {
    waitpid(pid, nullptr, 0);
    return HandlerResult::Permanent("EXEC_FAILED",
                                    "cannot run '" + argv[0] + "': " + std::strerror(exec_errno));
  }

  // Feed stdin without blocking, collect both outputs, watch for a stop
  // request, and notice when the program exits even if something it started
  // keeps the pipes open.
  fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
  const std::string& payload = ctx.job.payload;
  size_t written = 0;
  if (payload.empty()) in.Close(1);
  std::string stdout_tail, stderr_tail;
  bool out_open = true, err_open = true;
  Stopper stopper(pid, ctx.stop, options.kill_grace);
  std::optional<int> status;
  std::optional<std::chrono::steady_clock::time_point> exited_at;
  char buf[16384];
  while (true) {
    stopper.Check();
    if (!status) {
      int st = 0;
      pid_t r = waitpid(pid, &st, WNOHANG);
      if (r == pid) {
        status = st;
        exited_at = std::chrono::steady_clock::now();
        in.Close(1);
      } else if (r < 0 && errno != EINTR) {
        return HandlerResult::Temporary("EXEC_FAILED",
                                        std::string("waitpid: ") + std::strerror(errno));
      }
    }
    if (!out_open && !err_open && status) break;
    // Once the program has exited, what it left in the pipes is read for a
    // moment; a process it started may hold them open forever.
    if (exited_at &&
        std::chrono::steady_clock::now() - *exited_at > std::chrono::milliseconds(200)) {
      break;
    }
    pollfd fds[3] = {{out_open ? out[0] : -1, POLLIN, 0},
                     {err_open ? err[0] : -1, POLLIN, 0},
                     {in[1], POLLOUT, 0}};
    if (poll(fds, 3, 10) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        (i == 0 ? out_open : err_open) = false;
      } else if (i == 0) {
        KeepTail(stdout_tail, buf, static_cast<size_t>(n), kKeepStdout);
      } else {
        KeepTail(stderr_tail, buf, static_cast<size_t>(n), kKeepStderr);
      }
    }
    if (in[1] >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      // A program that does not read its stdin closes the pipe: the write
      // fails with EPIPE, as executor threads block SIGPIPE (worker.cc).
      ssize_t n = write(in[1], payload.data() + written, payload.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == payload.size()) in.Close(1);
    }
  }
  in.Close(1);
  while (!status) {  // poll failed before the program was reaped
    stopper.Check();
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      status = st;
    } else if (r < 0 && errno != EINTR) {
      return HandlerResult::Temporary("EXEC_FAILED",
                                      std::string("waitpid: ") + std::strerror(errno));
    } else {
      usleep(2000);
    }
  }
  ExecExit exit;
  exit.signaled = WIFSIGNALED(*status);
  exit.status = exit.signaled ? WTERMSIG(*status) : WEXITSTATUS(*status);
  exit.stdout_text = std::move(stdout_tail);
  exit.stderr_text = std::move(stderr_tail);
  std::optional<HandlerFailure> failure = FromExecExit(exit);
  if (!failure) return HandlerResult::Success();
  return HandlerResult::Failure(std::move(*failure));
}

}  // namespace

Handler ExecHandler(std::vector<std::string> argv, ExecOptions options) {
  return [argv = std::move(argv), options](const JobContext& ctx) {
    return RunProgram(argv, options, ctx);
  };
}

Result<std::vector<std::string>> SplitCommand(std::string_view line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  size_t i = 0;
  while (i < line.size()) {
    char c = line[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      ++i;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      size_t end = line.find('\'', i + 1);
      if (end == std::string_view::npos) {
        return Status::InvalidArgument("unterminated single quote at column " +
                                       std::to_string(i + 1));
      }
      word.append(line.substr(i + 1, end - i - 1));
      i = end + 1;
    } else if (c == '"') {
      size_t j = i + 1;
      while (j < line.size() && line[j] != '"') {
        if (line[j] == '\\' && j + 1 < line.size() &&
            (line[j + 1] == '"' || line[j + 1] == '\\' || line[j + 1] == '$' ||
             line[j + 1] == '`')) {
          ++j;
        }
        word += line[j++];
      }
      if (j >= line.size()) {
        return Status::InvalidArgument("unterminated double quote at column " +
                                       std::to_string(i + 1));
      }
      i = j + 1;
    } else if (c == '\\' && i + 1 < line.size()) {
      word += line[i + 1];
      i += 2;
    } else {
      word += c;
      ++i;
    }
  }
  if (in_word) words.push_back(std::move(word));
  if (words.empty()) return Status::InvalidArgument("the command is empty");
  return words;
}

}  // namespace retraced
