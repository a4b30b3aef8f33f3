#include "support/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace retraced::testing {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

bool Listening(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

}  // namespace

bool RedisServer::Available() {
  return RunProcess({"sh", "-c", "command -v redis-server"}).exit_code == 0;
}

std::unique_ptr<RedisServer> RedisServer::Start(std::vector<std::string> extra,
                                                std::string* error) {
  std::unique_ptr<RedisServer> s(new RedisServer());
  static int counter = 0;
  s->dir_ = std::filesystem::temp_directory_path() /
            ("retraced-redis-" + std::to_string(getpid()) + "-" + std::to_string(++counter));
  std::filesystem::remove_all(s->dir_);
  std::filesystem::create_directories(s->dir_);
  s->port_ = FreePort();
  s->socket_ = (s->dir_ / "redis.sock").string();
  s->args_ = {"redis-server",
              "--port",
              std::to_string(s->port_),
              "--bind",
              "127.0.0.1",
              "--unixsocket",
              s->socket_,
              "--unixsocketperm",
              "700",
              "--dir",
              s->dir_.string(),
              "--save",
              "",
              "--daemonize",
              "no",
              "--logfile",
              ""};
  for (const std::string& e : extra) s->args_.push_back(e);
  if (!s->Launch(error)) return nullptr;
  return s;
}

bool RedisServer::Launch(std::string* error) {
  process_ = ChildProcess::Start(args_);
  for (int i = 0; i < 500; ++i) {
    if (Listening(port_) && std::filesystem::exists(socket_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  process_->Signal(SIGKILL);
  ProcessResult r = process_->Wait();
  *error = "redis-server did not start: " + r.out + r.err;
  return false;
}

RedisServer::~RedisServer() {
  Stop();
  std::filesystem::remove_all(dir_);
}

void RedisServer::Stop() {
  if (!process_) return;
  process_->Signal(SIGTERM);
  process_->Wait();
  process_.reset();
}

bool RedisServer::Restart(std::string* error) {
  Stop();
  return Launch(error);
}

}  // namespace retraced::testing
