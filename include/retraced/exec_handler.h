// Exec handlers: run a program per job, in any language. The program gets the
// payload on stdin and RETRACED_JOB_ID, RETRACED_ATTEMPT, RETRACED_TRIGGER,
// RETRACED_QUEUE, RETRACED_JOB_TYPE in its environment; it is started
// directly (never through a shell), in its own process group, and dies with
// the worker. Its exit status is classified as classify.h describes (0
// success, 75 temporary, other sysexits permanent, a JSON object on the last
// line of stdout may say more); the tail of its stderr becomes the detail.
// When the attempt must stop (timeout, lost lease, shutdown) its process
// group gets SIGTERM, then SIGKILL after `kill_grace`.
#ifndef RETRACED_EXEC_HANDLER_H_
#define RETRACED_EXEC_HANDLER_H_

#include <string>
#include <string_view>
#include <vector>

#include "retraced/handler.h"

namespace retraced {

struct ExecOptions {
  Millis kill_grace{2'000};
};

// A handler that runs argv[0] (looked up in PATH when it has no '/') with argv.
Handler ExecHandler(std::vector<std::string> argv, ExecOptions options = {});

// Splits a command line into words the way a POSIX shell would for plain
// words, single quotes, double quotes and backslashes, and does nothing else:
// no variables, globs, pipes or redirections. InvalidArgument for an
// unterminated quote or an empty command.
Result<std::vector<std::string>> SplitCommand(std::string_view line);

}  // namespace retraced

#endif  // RETRACED_EXEC_HANDLER_H_
