// What `retraced bench` runs its workloads on: a redis-server of its own,
// fresh stores for each run, and worker processes.
#ifndef RETRACED_APPS_BENCH_BENCH_ENV_H_
#define RETRACED_APPS_BENCH_BENCH_ENV_H_

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "retraced/status.h"
#include "store/redis/redis_connection.h"

namespace retraced::bench {

// A redis-server started for the benchmark: no persistence (no RDB, no AOF),
// listening on a free loopback port, its files in a temporary directory.
// Stopped, and the directory removed, when destroyed.
class OwnRedis {
 public:
  // Unavailable when redis-server is not on PATH or does not come up.
  static Result<std::unique_ptr<OwnRedis>> Start();
  OwnRedis(const OwnRedis&) = delete;
  OwnRedis& operator=(const OwnRedis&) = delete;
  ~OwnRedis();

  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

 private:
  OwnRedis() = default;
  pid_t pid_ = -1;
  int port_ = 0;
  std::filesystem::path dir_;
};

// A connection of the benchmark's own to the server `url` names: for
// FLUSHALL between runs, INFO memory and the server's version.
Result<std::unique_ptr<redis::Connection>> AdminConnection(const std::string& url);
Result<int64_t> UsedMemory(redis::Connection& c);
std::string RedisVersion(redis::Connection& c);

// This program's own path, to start worker processes from.
std::string SelfExe();

// Starts argv as a child process (stdout and stderr kept) and returns its pid.
Result<pid_t> Spawn(const std::vector<std::string>& argv);
// Waits for every process; Internal naming the first that did not exit 0.
Status WaitAll(const std::vector<pid_t>& pids);

// A directory of its own under the system's temporary directory, removed when destroyed.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace retraced::bench

#endif  // RETRACED_APPS_BENCH_BENCH_ENV_H_
