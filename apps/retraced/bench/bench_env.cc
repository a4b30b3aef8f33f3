#include "bench/bench_env.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <thread>

extern char** environ;

namespace retraced::bench {
namespace {

Result<int> FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return Status::Unavailable("cannot open a socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc == 0) rc = getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  if (rc != 0) return Status::Unavailable("cannot find a free loopback port");
  return static_cast<int>(ntohs(addr.sin_port));
}

// Starts `argv` as a child that the kernel stops (SIGTERM) when this thread
// exits, however it exits: a benchmark interrupted with Ctrl-C or killed
// leaves no redis-server behind.
Result<pid_t> SpawnTied(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return Status::Unavailable("cannot make a pipe");
  pid_t pid = fork();
  if (pid < 0) {
    close(ready[0]);
    close(ready[1]);
    return Status::Unavailable(std::string("cannot fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);  // the parent is already gone
    execvp(args[0], args.data());
    int e = errno;
    (void)!write(ready[1], &e, sizeof e);  // tells the parent why exec failed
    _exit(127);
  }
  close(ready[1]);
  int exec_errno = 0;
  ssize_t n = read(ready[0], &exec_errno, sizeof exec_errno);  // 0 bytes: exec succeeded
  close(ready[0]);
  if (n == sizeof exec_errno) {
    waitpid(pid, nullptr, 0);
    return Status::Unavailable("cannot start " + argv[0] + ": " + std::strerror(exec_errno));
  }
  return pid;
}

}  // namespace

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("retraced-bench-" + std::to_string(getpid()) + "-" + std::to_string(rd() % 1'000'000));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

Result<pid_t> Spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ);
  if (rc != 0) {
    return Status::Unavailable("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  return pid;
}

Status WaitAll(const std::vector<pid_t>& pids) {
  Status first = Status::Ok();
  for (pid_t pid : pids) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
      if (first.ok()) first = Status::Internal("lost track of process " + std::to_string(pid));
      continue;
    }
    if (first.ok() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      first = Status::Internal("worker process " + std::to_string(pid) +
                               (WIFEXITED(status)
                                    ? " exited with " + std::to_string(WEXITSTATUS(status))
                                    : " was killed by signal " + std::to_string(WTERMSIG(status))));
    }
  }
  return first;
}

std::string SelfExe() {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("retraced") : p.string();
}

Result<std::unique_ptr<redis::Connection>> AdminConnection(const std::string& url) {
  RETRACED_ASSIGN_OR_RETURN(redis::RedisAddress address, redis::ParseRedisUrl(url));
  redis::ConnectionOptions options;
  options.io_timeout = Millis(60'000);  // FLUSHALL of a large benchmark database
  return redis::Connection::Open(address, options);
}

Result<int64_t> UsedMemory(redis::Connection& c) {
  RETRACED_ASSIGN_OR_RETURN(redis::Reply r, c.Command({"INFO", "memory"}));
  size_t p = r.str.find("used_memory:");
  if (p == std::string::npos) return Status::Internal("INFO memory has no used_memory");
  return static_cast<int64_t>(std::stoll(r.str.substr(p + 12)));
}

std::string RedisVersion(redis::Connection& c) {
  Result<redis::Reply> r = c.Command({"INFO", "server"});
  if (!r.ok()) return "?";
  size_t p = r->str.find("redis_version:");
  if (p == std::string::npos) return "?";
  size_t end = r->str.find_first_of("\r\n", p);
  return r->str.substr(p + 14, end - p - 14);
}

Result<std::unique_ptr<OwnRedis>> OwnRedis::Start() {
  std::unique_ptr<OwnRedis> s(new OwnRedis());
  std::random_device rd;
  s->dir_ =
      std::filesystem::temp_directory_path() /
      ("retraced-bench-redis-" + std::to_string(getpid()) + "-" + std::to_string(rd() % 1'000'000));
  std::filesystem::create_directories(s->dir_);
  RETRACED_ASSIGN_OR_RETURN(s->port_, FreePort());
  Result<pid_t> pid =
      SpawnTied({"redis-server", "--port", std::to_string(s->port_), "--bind", "127.0.0.1", "--dir",
                 s->dir_.string(), "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--logfile", (s->dir_ / "redis.log").string()});
  if (!pid.ok()) {
    return Status::Unavailable(
        "redis-server is needed for the Redis workloads (install the "
        "redis-server package, or give --store): " +
        pid.status().message());
  }
  s->pid_ = *pid;
  for (int i = 0; i < 500; ++i) {
    Result<std::unique_ptr<redis::Connection>> c = AdminConnection(s->url());
    if (c.ok() && (*c)->Command({"PING"}).ok()) return s;
    int status = 0;
    if (waitpid(s->pid_, &status, WNOHANG) == s->pid_) {
      s->pid_ = -1;
      return Status::Unavailable("redis-server exited at start; see its log in " +
                                 s->dir_.string());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Status::Unavailable("redis-server did not answer within 5 s");
}

OwnRedis::~OwnRedis() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

}  // namespace retraced::bench
