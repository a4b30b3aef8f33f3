// Test support: a real redis-server on a free loopback port (and a Unix
// socket) in a temporary directory, started and stopped by the test.
#ifndef RETRACED_TESTS_SUPPORT_REDIS_SERVER_H_
#define RETRACED_TESTS_SUPPORT_REDIS_SERVER_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/subprocess.h"

namespace retraced::testing {

class RedisServer {
 public:
  // Whether a redis-server binary is on PATH (tests skip, saying so, when not).
  static bool Available();

  // Starts one with the extra config directives (e.g. {"requirepass", "x"}).
  // Returns nullptr, with `*error` set, when it does not come up.
  static std::unique_ptr<RedisServer> Start(std::vector<std::string> extra, std::string* error);
  ~RedisServer();

  int port() const { return port_; }
  const std::string& socket() const { return socket_; }
  std::string Url(int db = 0) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }
  std::string UnixUrl() const { return "redis+unix://" + socket_; }

  // Stops the server (SIGTERM, so it saves what it must).
  void Stop();
  // Starts it again on the same port, directory and data.
  bool Restart(std::string* error);

 private:
  RedisServer() = default;
  bool Launch(std::string* error);
  std::filesystem::path dir_;
  std::vector<std::string> args_;
  int port_ = 0;
  std::string socket_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace retraced::testing

#endif  // RETRACED_TESTS_SUPPORT_REDIS_SERVER_H_
