#include "store/redis/redis_connection.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <memory>

namespace retraced::redis {
namespace {

timeval ToTimeval(Millis d) {
  return timeval{static_cast<time_t>(d.count() / 1000),
                 static_cast<suseconds_t>(d.count() % 1000 * 1000)};
}

// hiredis's reader builds each reply straight into a Reply (its reply
// object functions), instead of into its own objects that were copied, then
// freed: a claim's reply holds three strings a job, and that copy was a
// tenth of a worker's time. The reader calls back with the reply's root
// first, then each element in order, its place in its parent's array given;
// it frees only roots (FreeReply), as parents own their elements.
Reply* Place(const redisReadTask* task) {
  if (task->parent == nullptr) return new Reply();
  auto* parent = static_cast<Reply*>(task->parent->obj);
  return &parent->elements[static_cast<size_t>(task->idx)];
}

// A callback returns nullptr when out of memory (hiredis reports it): no
// exception crosses the C library.
template <typename Fill>
void* Build(const redisReadTask* task, Fill fill) {
  Reply* r = nullptr;
  try {
    r = Place(task);
    fill(*r);
    return r;
  } catch (...) {
    if (task->parent == nullptr) delete r;
    return nullptr;
  }
}

void* CreateString(const redisReadTask* task, char* text, size_t len) {
  return Build(task, [&](Reply& r) {
    r.type = task->type == REDIS_REPLY_ERROR    ? Reply::Type::kError
             : task->type == REDIS_REPLY_STATUS ? Reply::Type::kStatus
                                                : Reply::Type::kString;
    r.str.assign(text, len);
  });
}

// The count's type differs between hiredis versions.
template <typename Count>
void* CreateArray(const redisReadTask* task, Count n) {
  return Build(task, [&](Reply& r) {
    r.type = Reply::Type::kArray;
    r.elements.resize(static_cast<size_t>(n));
  });
}

void* CreateInteger(const redisReadTask* task, long long value) {
  return Build(task, [&](Reply& r) {
    r.type = Reply::Type::kInteger;
    r.integer = value;
  });
}

void* CreateNil(const redisReadTask* task) {
  return Build(task, [](Reply& r) { r.type = Reply::Type::kNil; });
}

void FreeReply(void* reply) { delete static_cast<Reply*>(reply); }

redisReplyObjectFunctions* ReplyFunctions() {
  static redisReplyObjectFunctions fns = [] {
    redisReplyObjectFunctions f{};  // RESP3's kinds (newer hiredis) are never asked for
    f.createString = CreateString;
    f.createArray = CreateArray;
    f.createInteger = CreateInteger;
    f.createNil = CreateNil;
    f.freeObject = FreeReply;
    return f;
  }();
  return &fns;
}

// The reply hiredis returned, built by the functions above.
Reply TakeReply(void* raw) {
  std::unique_ptr<Reply> r(static_cast<Reply*>(raw));
  return std::move(*r);
}

// Commands are written in the protocol (RESP) here, each argument copied
// once, and handed to hiredis whole, instead of copied into a vector of
// arguments that hiredis then formats one by one (bench/README.md has what
// that saved: a few percent of a batched enqueue).
// "<mark><n>\r\n"
void RespHeader(std::string& out, char mark, size_t n) {
  char text[24];
  text[0] = mark;
  char* end = std::to_chars(text + 1, text + sizeof text - 2, n).ptr;
  *end++ = '\r';
  *end++ = '\n';
  out.append(text, end);
}

void RespArray(std::string& out, size_t n) { RespHeader(out, '*', n); }

void RespBulk(std::string& out, std::string_view arg) {
  RespHeader(out, '$', arg.size());
  out.append(arg);
  out += "\r\n";
}

void RespCommand(std::string& out, const std::vector<std::string>& args) {
  RespArray(out, args.size());
  for (const std::string& a : args) RespBulk(out, a);
}

}  // namespace

Result<std::unique_ptr<Connection>> Connection::Open(const RedisAddress& address,
                                                     const ConnectionOptions& options) {
  std::unique_ptr<Connection> c(new Connection(address, options));
  RETRACED_RETURN_IF_ERROR(c->Connect());
  return c;
}

namespace {

// hiredis writes with write(): on a socket the server closed (or Interrupt()
// shut down) that raises SIGPIPE, which would kill the process. The signal
// is blocked on this thread for the call and, if it came, taken off.
class NoSigpipe {
 public:
  NoSigpipe() {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe, &old_);
  }
  ~NoSigpipe() {
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      timespec now{0, 0};
      sigtimedwait(&pipe, nullptr, &now);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  NoSigpipe(const NoSigpipe&) = delete;
  NoSigpipe& operator=(const NoSigpipe&) = delete;

 private:
  sigset_t old_;
  bool was_pending_ = false;
};

}  // namespace

Connection::~Connection() { Drop(); }

void Connection::Drop() {
  std::lock_guard lock(ctx_mu_);
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
}

void Connection::Interrupt() {
  std::lock_guard lock(ctx_mu_);
  if (ctx_) shutdown(ctx_->fd, SHUT_RDWR);
}

Status Connection::Connect() {
  NoSigpipe no_sigpipe;
  timeval tv = ToTimeval(options_.connect_timeout);
  redisContext* c = address_.socket_path.empty()
                        ? redisConnectWithTimeout(address_.host.c_str(), address_.port, tv)
                        : redisConnectUnixWithTimeout(address_.socket_path.c_str(), tv);
  if (c == nullptr || c->err) {
    std::string why = c ? c->errstr : "out of memory";
    if (c) redisFree(c);
    return Status::Unavailable("redis at " + address_.Describe() + " is unavailable: " + why);
  }
  timeval io = ToTimeval(options_.io_timeout);
  redisSetTimeout(c, io);
  c->reader->fn = ReplyFunctions();
  {
    std::lock_guard lock(ctx_mu_);
    ctx_ = c;
  }
  ++made_;
  auto setup = [&](const std::vector<std::string>& args, std::string_view what) -> Status {
    std::string text;
    RespCommand(text, args);
    redisAppendFormattedCommand(ctx_, text.data(), text.size());
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK) return Lost(what);
    Reply r = TakeReply(raw);
    if (!r.IsError()) return Status::Ok();
    Status s = (r.str.rfind("WRONGPASS", 0) == 0 || r.str.rfind("NOAUTH", 0) == 0 ||
                r.str.find("invalid password") != std::string::npos ||
                r.str.find("no password is set") != std::string::npos)
                   ? Status::InvalidArgument("redis at " + address_.Describe() +
                                             " refused the credentials: " + r.str)
                   : Status::InvalidArgument("redis at " + address_.Describe() + ": " +
                                             std::string(what) + " failed: " + r.str);
    Drop();
    return s;
  };
  if (address_.password) {
    std::vector<std::string> auth = {"AUTH"};
    if (address_.user) auth.push_back(*address_.user);
    auth.push_back(*address_.password);
    RETRACED_RETURN_IF_ERROR(setup(auth, "AUTH"));
  }
  if (address_.db != 0)
    RETRACED_RETURN_IF_ERROR(setup({"SELECT", std::to_string(address_.db)}, "SELECT"));
  backoff_ = Millis(0);
  return Status::Ok();
}

Status Connection::Lost(std::string_view what) {
  std::string why = ctx_ && ctx_->errstr[0] ? ctx_->errstr : "connection lost";
  Drop();
  backoff_ = std::min(options_.max_backoff, backoff_.count() == 0 ? Millis(50) : backoff_ * 2);
  next_try_ = std::chrono::steady_clock::now() + backoff_;
  last_error_ = why;
  return Status::Unavailable("redis at " + address_.Describe() + " is unavailable (" +
                             std::string(what) + "): " + why);
}

Status Connection::EnsureConnected() {
  if (ctx_) return Status::Ok();
  if (std::chrono::steady_clock::now() < next_try_) {
    return Status::Unavailable("redis at " + address_.Describe() +
                               " is unavailable: " + last_error_ + "; reconnecting");
  }
  Status s = Connect();
  if (s.code() == StatusCode::kUnavailable) {
    backoff_ = std::min(options_.max_backoff, backoff_.count() == 0 ? Millis(50) : backoff_ * 2);
    next_try_ = std::chrono::steady_clock::now() + backoff_;
    last_error_ = s.message();
  }
  return s;
}

Result<Reply> Connection::Command(const std::vector<std::string>& args) {
  RETRACED_ASSIGN_OR_RETURN(std::vector<Reply> replies, Pipeline({args}));
  return std::move(replies.front());
}

Result<std::vector<Reply>> Connection::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  std::string text;
  std::vector<std::string_view> names;
  for (const auto& args : commands) {
    if (args.empty()) return Status::InvalidArgument("an empty command");
    RespCommand(text, args);
    names.push_back(args.front());
  }
  return Send(text, names);
}

Result<std::vector<Reply>> Connection::Send(const std::string& text,
                                            const std::vector<std::string_view>& names) {
  if (names.empty()) return std::vector<Reply>();
  NoSigpipe no_sigpipe;
  RETRACED_RETURN_IF_ERROR(EnsureConnected());
  if (redisAppendFormattedCommand(ctx_, text.data(), text.size()) != REDIS_OK) {
    return Lost(names.front());
  }
  return ReadReplies(names);
}

Status Connection::Write(const std::string& text, std::string_view what,
                         std::optional<uint64_t> on) {
  NoSigpipe no_sigpipe;
  if (!on) {
    RETRACED_RETURN_IF_ERROR(EnsureConnected());
  } else if (!ctx_ || made_ != *on) {
    return Status::Unavailable("redis at " + address_.Describe() + " is unavailable (" +
                               std::string(what) + "): the connection was lost in a transaction");
  }
  if (redisAppendFormattedCommand(ctx_, text.data(), text.size()) != REDIS_OK) return Lost(what);
  for (int done = 0; !done;) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return Lost(what);
  }
  return Status::Ok();
}

Result<std::vector<Reply>> Connection::ReadReplies(const std::vector<std::string_view>& names) {
  NoSigpipe no_sigpipe;
  if (!ctx_) return Lost(names.empty() ? "read" : names.front());
  std::vector<Reply> replies;
  replies.reserve(names.size());
  for (std::string_view name : names) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK) return Lost(name);
    replies.push_back(TakeReply(raw));
  }
  return replies;
}

namespace {

bool IsNoScript(const Reply& r) { return r.IsError() && r.str.rfind("NOSCRIPT", 0) == 0; }

// EVALSHA SHA or EVAL TEXT (`command`, `script`), then the keys and arguments.
void RespScript(std::string& out, std::string_view command, std::string_view script,
                const std::vector<std::string>& keys, const std::vector<std::string>& args) {
  RespArray(out, 3 + keys.size() + args.size());
  RespBulk(out, command);
  RespBulk(out, script);
  RespBulk(out, std::to_string(keys.size()));
  for (const std::string& k : keys) RespBulk(out, k);
  for (const std::string& a : args) RespBulk(out, a);
}

void RespEvalsha(std::string& out, const Script& script, const std::vector<std::string>& keys,
                 const std::vector<std::string>& args) {
  RespScript(out, "EVALSHA", script.sha, keys, args);
}

}  // namespace

Status Connection::Load(Script& script) {
  if (!script.sha.empty()) return Status::Ok();
  RETRACED_ASSIGN_OR_RETURN(Reply loaded, Command({"SCRIPT", "LOAD", script.text}));
  if (loaded.IsError())
    return Status::Internal("loading script " + script.name + ": " + loaded.str);
  script.sha = loaded.str;
  return Status::Ok();
}

Result<Reply> Connection::Eval(Script& script, const std::vector<std::string>& keys,
                               const std::vector<std::string>& args) {
  return EvalAfter({}, script, keys, args);
}

Result<Reply> Connection::EvalAfter(const std::vector<std::string>& before, Script& script,
                                    const std::vector<std::string>& keys,
                                    const std::vector<std::string>& args) {
  for (int round = 0; round < 2; ++round) {
    RETRACED_RETURN_IF_ERROR(Load(script));
    std::string text;
    std::vector<std::string_view> names;
    if (!before.empty()) {
      RespCommand(text, before);
      names.push_back(before.front());
    }
    RespEvalsha(text, script, keys, args);
    names.push_back("EVALSHA");
    RETRACED_ASSIGN_OR_RETURN(std::vector<Reply> r, Send(text, names));
    if (!before.empty() && r[0].IsError()) {
      return Status::Internal(before.front() + ": " + r[0].str);
    }
    if (IsNoScript(r.back())) {
      script.sha.clear();  // the server restarted or flushed its scripts: load again
      continue;
    }
    return std::move(r.back());
  }
  return Status::Internal("script " + script.name + " could not be loaded");
}

Result<Reply> Connection::EvalInTransaction(const std::vector<std::vector<std::string>>& before,
                                            const Script& script,
                                            const std::vector<std::string>& keys,
                                            const std::vector<std::string>& args) {
  Transaction t(*this);
  for (const std::vector<std::string>& c : before) RETRACED_RETURN_IF_ERROR(t.Add(c));
  return t.Run(script, keys, args);
}

Connection::Transaction::~Transaction() {
  // Sent but never run: the server drops the transaction with the connection.
  if (!names_.empty() && !done_) c_.Drop();
}

std::optional<uint64_t> Connection::Transaction::Open(std::string& text) {
  if (!names_.empty()) return connection_;
  RespCommand(text, {"MULTI"});
  names_.push_back("MULTI");
  return std::nullopt;
}

Status Connection::Transaction::Add(const std::vector<std::string>& command) {
  if (command.empty()) return Status::InvalidArgument("an empty command");
  if (done_) return Status::Internal("a command added to a transaction already run");
  std::string text;
  const std::optional<uint64_t> on = Open(text);
  RespCommand(text, command);
  names_.push_back(command.front());
  RETRACED_RETURN_IF_ERROR(c_.Write(text, names_.back(), on));
  if (!on) connection_ = c_.made_;
  return Status::Ok();
}

Result<Reply> Connection::Transaction::Run(const Script& script,
                                           const std::vector<std::string>& keys,
                                           const std::vector<std::string>& args) {
  if (done_) return Status::Internal("a transaction run twice");
  std::string text;
  const std::optional<uint64_t> on = Open(text);
  // EVAL, not EVALSHA: a script the server does not have would fail inside
  // EXEC, after the commands before it had run. Redis caches the script by
  // its SHA1 as EVALSHA would; only its text travels again.
  RespScript(text, "EVAL", script.text, keys, args);
  RespCommand(text, {"EXEC"});
  const size_t before = names_.size() - 1;  // the commands between MULTI and EVAL
  std::vector<std::string_view> names(names_.begin(), names_.end());
  names.push_back("EVAL");
  names.push_back("EXEC");
  RETRACED_RETURN_IF_ERROR(c_.Write(text, "EVAL", on));
  RETRACED_ASSIGN_OR_RETURN(std::vector<Reply> r, c_.ReadReplies(names));
  done_ = true;
  // OK, QUEUED for each command (an error here: nothing ran), then EXEC's
  // array of their replies.
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i].IsError()) return Status::Internal(std::string(names[i]) + ": " + r[i].str);
  }
  Reply& ran = r.back();
  if (ran.type != Reply::Type::kArray || ran.elements.size() != before + 1) {
    return Status::Internal("EXEC: the transaction did not run");
  }
  for (size_t i = 0; i < before; ++i) {
    if (ran.elements[i].IsError()) {
      return Status::Internal(std::string(names[i + 1]) + ": " + ran.elements[i].str);
    }
  }
  return std::move(ran.elements.back());
}

Result<std::vector<Reply>> Connection::EvalMany(
    Script& script,
    const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>& calls) {
  for (int round = 0; round < 2; ++round) {
    RETRACED_RETURN_IF_ERROR(Load(script));
    std::string text;
    for (const auto& [keys, args] : calls) RespEvalsha(text, script, keys, args);
    RETRACED_ASSIGN_OR_RETURN(std::vector<Reply> replies,
                              Send(text, std::vector<std::string_view>(calls.size(), "EVALSHA")));
    if (std::none_of(replies.begin(), replies.end(), IsNoScript)) return replies;
    // Nothing ran: NOSCRIPT means the server does not have the script at all.
    script.sha.clear();
  }
  return Status::Internal("script " + script.name + " could not be loaded");
}

}  // namespace retraced::redis
