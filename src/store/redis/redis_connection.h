// One connection to a Redis server over hiredis, for the Redis store: plain
// commands, pipelines, and Lua scripts called by EVALSHA (by the SHA1
// computed when they were embedded; loaded when the server answers NOSCRIPT). When the server goes
// away the connection reconnects with back-off; until it can, calls fail at once with Unavailable
// naming the server, rather than hang.
//
// Not thread-safe: one connection per thread or behind a mutex.
#ifndef RETRACED_STORE_REDIS_REDIS_CONNECTION_H_
#define RETRACED_STORE_REDIS_REDIS_CONNECTION_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "retraced/status.h"
#include "retraced/time.h"
#include "store/redis/redis_url.h"

struct redisContext;

namespace retraced::redis {

// A reply, copied out of hiredis.
struct Reply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<Reply> elements;

  bool IsError() const { return type == Type::kError; }
  bool IsNil() const { return type == Type::kNil; }
};

struct ConnectionOptions {
  Millis connect_timeout{2'000};
  Millis io_timeout{5'000};
  Millis max_backoff{2'000};  // longest wait between reconnection attempts
};

// A Lua script: its name (for messages), its text, and its SHA1 once loaded.
struct Script {
  std::string name;
  std::string text;
  std::string sha;  // its SHA1, the same on every server; "" loads it first
};

class Connection {
 public:
  // Connects, authenticates and selects the db. InvalidArgument for a refused
  // password; Unavailable when the server cannot be reached.
  static Result<std::unique_ptr<Connection>> Open(const RedisAddress& address,
                                                  const ConnectionOptions& options = {});
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Sends one command and returns its reply (which may be an error reply).
  // Unavailable when the connection is lost or cannot be made.
  Result<Reply> Command(const std::vector<std::string>& args);
  // Sends every command before reading any reply: one round trip for all.
  Result<std::vector<Reply>> Pipeline(const std::vector<std::vector<std::string>>& commands);
  // SCRIPT LOAD, unless the script's SHA is known already.
  Status Load(Script& script);
  // EVALSHA, loading the script first when the server does not know it.
  Result<Reply> Eval(Script& script, const std::vector<std::string>& keys,
                     const std::vector<std::string>& args);
  // The same, with `before` sent ahead of the script in the same round trip
  // (it must be safe to send twice: it is, if the script has to be loaded).
  // An error reply to `before` is an error.
  Result<Reply> EvalAfter(const std::vector<std::string>& before, Script& script,
                          const std::vector<std::string>& keys,
                          const std::vector<std::string>& args);

  // MULTI, the commands `before`, EVAL of the script's text and EXEC, in one
  // round trip: all of them or, when the connection is lost before EXEC
  // arrives, none. An error reply to any command is an error (and if it came
  // when EXEC ran, the others have run); the script's own reply (maybe an
  // error reply) is returned.
  Result<Reply> EvalInTransaction(const std::vector<std::vector<std::string>>& before,
                                  const Script& script, const std::vector<std::string>& keys,
                                  const std::vector<std::string>& args);

  // The same transaction, sent while it is made: MULTI and each command go
  // out as they are added, so that the server reads and parses one command
  // while the caller makes the next (the producer packing a batch's specs);
  // Run adds the EVAL and EXEC and reads every reply. A transaction given up
  // before Run (or whose connection was lost) is discarded with the
  // connection: it never reconnects halfway.
  class Transaction {
   public:
    explicit Transaction(Connection& c) : c_(c) {}
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction();
    Status Add(const std::vector<std::string>& command);
    Result<Reply> Run(const Script& script, const std::vector<std::string>& keys,
                      const std::vector<std::string>& args);

   private:
    // Puts MULTI ahead of the first command. Returns the connection the
    // later writes must go on, or nothing for the first (which may connect).
    std::optional<uint64_t> Open(std::string& text);

    Connection& c_;
    std::vector<std::string> names_;  // of the commands sent, MULTI first
    uint64_t connection_ = 0;         // the connection MULTI went out on (Connection::made_)
    bool done_ = false;
  };

  // Many calls of one script in one round trip. The replies are in order; a
  // script that the server does not know is loaded and the calls sent again.
  Result<std::vector<Reply>> EvalMany(
      Script& script,
      const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>& calls);

  const RedisAddress& address() const { return address_; }

  // Makes a call blocked in another thread (XREAD BLOCK) fail at once, by
  // shutting the socket down; the connection then reconnects as after any
  // loss. The only method that may be called from another thread.
  void Interrupt();

 private:
  Connection(RedisAddress address, ConnectionOptions options)
      : address_(std::move(address)), options_(options) {}
  Status Connect();
  Status EnsureConnected();
  Status Lost(std::string_view what);  // drops the context, schedules the reconnect
  // Sends `text`, commands in the protocol, and reads one reply per name (the
  // commands' names, for errors).
  Result<std::vector<Reply>> Send(const std::string& text,
                                  const std::vector<std::string_view>& names);
  // Writes `text` out now. With `on`, only on that connection (a count of
  // made_): fails if it is gone or another was made since; else connects
  // first if needed.
  Status Write(const std::string& text, std::string_view what, std::optional<uint64_t> on);
  // Reads one reply per name.
  Result<std::vector<Reply>> ReadReplies(const std::vector<std::string_view>& names);
  void Drop();  // frees the context (under ctx_mu_, for Interrupt)

  RedisAddress address_;
  ConnectionOptions options_;
  std::mutex ctx_mu_;  // held to replace ctx_, and by Interrupt()
  redisContext* ctx_ = nullptr;
  uint64_t made_ = 0;  // connections made so far: a transaction stays on one
  Millis backoff_{0};
  std::chrono::steady_clock::time_point next_try_{};
  std::string last_error_;
};

}  // namespace retraced::redis

#endif  // RETRACED_STORE_REDIS_REDIS_CONNECTION_H_
