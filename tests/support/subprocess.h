// Test support: runs a program as a real child process (no shell), feeding
// stdin and capturing stdout, stderr and how it ended.
#ifndef RETRACED_TESTS_SUPPORT_SUBPROCESS_H_
#define RETRACED_TESTS_SUPPORT_SUBPROCESS_H_

#include <map>
#include <string>
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

}  // namespace retraced::testing

#endif  // RETRACED_TESTS_SUPPORT_SUBPROCESS_H_
