// Test support: runs a program as a real child process (no shell), feeding
// stdin and capturing stdout, stderr and how it ended.
#ifndef RETRACED_TESTS_SUPPORT_SUBPROCESS_H_
#define RETRACED_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace retraced::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in PATH when it has no '/') with the given stdin and
// extra environment variables, and waits for it.
ProcessResult RunProcess(const std::vector<std::string>& argv, const std::string& stdin_data = "",
                         const std::map<std::string, std::string>& env = {});

// A child process running in the background, its output collected as it
// comes. Killed with SIGKILL if still running when destroyed.
class ChildProcess {
 public:
  static std::unique_ptr<ChildProcess> Start(const std::vector<std::string>& argv,
                                             const std::map<std::string, std::string>& env = {});
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits for it to exit and returns everything it printed.
  ProcessResult Wait();
  std::string OutputSoFar();
  // Waits up to `seconds` until stdout contains `text`.
  bool WaitForOutput(const std::string& text, double seconds);

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  bool waited_ = false;
  int out_fd_ = -1, err_fd_ = -1;
  std::mutex mu_;
  std::string out_, err_;
  std::thread reader_;
  ProcessResult result_;
};

}  // namespace retraced::testing

#endif  // RETRACED_TESTS_SUPPORT_SUBPROCESS_H_
