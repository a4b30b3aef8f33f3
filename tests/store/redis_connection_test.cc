// The Redis connection layer against a real redis-server: URLs, AUTH (password
// and ACL user), db selection, pipelining, scripts and NOSCRIPT, and what the
// caller sees while the server is down and after it comes back.
#include "store/redis/redis_connection.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "support/redis_server.h"

namespace retraced::redis {
namespace {

using testing::RedisServer;

TEST(RedisUrl, ParsesEveryForm) {
  RedisAddress a = *ParseRedisUrl("redis://127.0.0.1:6380/2");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 6380);
  EXPECT_EQ(a.db, 2);
  EXPECT_FALSE(a.password);
  RedisAddress d = *ParseRedisUrl("redis://cache.internal");
  EXPECT_EQ(d.port, 6379);
  EXPECT_EQ(d.db, 0);
  RedisAddress p = *ParseRedisUrl("redis://:s%40cret@h:1/0");
  EXPECT_FALSE(p.user);
  EXPECT_EQ(p.password, "s@cret");
  RedisAddress u = *ParseRedisUrl("redis://app:pw@h:1");
  EXPECT_EQ(u.user, "app");
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(u.Describe(), "redis://app:***@h:1/0") << "no password in messages";
  RedisAddress v6 = *ParseRedisUrl("redis://[::1]:7000/1");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 7000);
  RedisAddress s = *ParseRedisUrl("redis+unix:///run/redis.sock?db=3");
  EXPECT_EQ(s.socket_path, "/run/redis.sock");
  EXPECT_EQ(s.db, 3);
}

TEST(RedisUrl, RefusesBadUrlsWithAReason) {
  struct Case {
    const char* url;
    const char* says;
  };
  for (const Case& c :
       {Case{"redis://", "no host"},
        Case{"redis://h:0", "the port must be a number from 1 to 65535"},
        Case{"redis://h:port", "the port must be"}, Case{"redis://h/x", "the db must be"},
        Case{"redis://h/5000", "the db must be a number from 0 to 1023"},
        Case{"redis+unix://relative.sock", "the socket path must be absolute"},
        Case{"redis+unix:///s?timeout=1", "the only option is ?db=N"},
        Case{"redis://user@h", "a user needs a password"},
        Case{"http://h", "expected redis://host:port/db"}}) {
    Result<RedisAddress> r = ParseRedisUrl(c.url);
    ASSERT_FALSE(r.ok()) << c.url;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().message();
  }
}

class RedisConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::Available()) GTEST_SKIP() << "redis-server is not installed";
    std::string error;
    server_ = RedisServer::Start({}, &error);
    ASSERT_TRUE(server_) << error;
  }
  std::unique_ptr<Connection> Connect(const std::string& url) {
    Result<std::unique_ptr<Connection>> c = Connection::Open(*ParseRedisUrl(url));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }
  std::unique_ptr<RedisServer> server_;
};

TEST_F(RedisConnectionTest, TalksOverTcpAndUnixSocketsToTheChosenDb) {
  std::unique_ptr<Connection> tcp = Connect(server_->Url(3));
  std::unique_ptr<Connection> unix_socket = Connect(server_->UnixUrl());
  EXPECT_EQ(tcp->Command({"PING"})->str, "PONG");
  EXPECT_EQ(tcp->Command({"SET", "k", "in db 3"})->str, "OK");
  EXPECT_TRUE(unix_socket->Command({"GET", "k"})->IsNil()) << "db 0 does not see db 3";
  EXPECT_EQ(Connect("redis+unix://" + server_->socket() + "?db=3")->Command({"GET", "k"})->str,
            "in db 3");
  // Binary-safe arguments and replies.
  std::string bytes;
  for (int b = 0; b < 256; ++b) bytes += static_cast<char>(b);
  ASSERT_FALSE(tcp->Command({"SET", "bin", bytes})->IsError());
  EXPECT_EQ(tcp->Command({"GET", "bin"})->str, bytes);
}

TEST_F(RedisConnectionTest, EveryKindOfReplyIsReadWhereItStands) {
  std::unique_ptr<Connection> c = Connect(server_->Url());
  // Nested arrays, empty ones, nils (Lua's false), an error and a status
  // inside an array, integers, and a string too long for one read.
  Script shapes{"shapes",
                "return {1, 'a', {}, {2, false, {'deep', -7}}, false, "
                "redis.error_reply('E inner'), redis.status_reply('FINE'), "
                "string.rep('x', 200000), ''}",
                ""};
  Result<Reply> r = c->Eval(shapes, {}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->type, Reply::Type::kArray);
  const std::vector<Reply>& e = r->elements;
  ASSERT_EQ(e.size(), 9u);
  EXPECT_EQ(e[0].type, Reply::Type::kInteger);
  EXPECT_EQ(e[0].integer, 1);
  EXPECT_EQ(e[1].type, Reply::Type::kString);
  EXPECT_EQ(e[1].str, "a");
  EXPECT_EQ(e[2].type, Reply::Type::kArray);
  EXPECT_TRUE(e[2].elements.empty());
  ASSERT_EQ(e[3].elements.size(), 3u);
  EXPECT_EQ(e[3].elements[0].integer, 2);
  EXPECT_TRUE(e[3].elements[1].IsNil());
  ASSERT_EQ(e[3].elements[2].elements.size(), 2u);
  EXPECT_EQ(e[3].elements[2].elements[0].str, "deep");
  EXPECT_EQ(e[3].elements[2].elements[1].integer, -7);
  EXPECT_TRUE(e[4].IsNil());
  EXPECT_TRUE(e[5].IsError());
  EXPECT_EQ(e[5].str, "E inner");
  EXPECT_EQ(e[6].type, Reply::Type::kStatus);
  EXPECT_EQ(e[6].str, "FINE");
  EXPECT_EQ(e[7].str, std::string(200000, 'x'));
  EXPECT_EQ(e[8].type, Reply::Type::kString);
  EXPECT_EQ(e[8].str, "");
  // A nil reply at the top, and the connection still in step afterwards.
  EXPECT_TRUE(c->Command({"GET", "missing"})->IsNil());
  EXPECT_EQ(c->Command({"ECHO", "after"})->str, "after");
}

TEST_F(RedisConnectionTest, PipelinesSendEverythingBeforeReading) {
  std::unique_ptr<Connection> c = Connect(server_->Url());
  std::vector<std::vector<std::string>> incrs(1000, {"INCR", "counter"});
  Result<std::vector<Reply>> r = c->Pipeline(incrs);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1000u);
  EXPECT_EQ(r->back().integer, 1000);
  EXPECT_TRUE(c->Command({"NO_SUCH_COMMAND"})->IsError());
}

TEST_F(RedisConnectionTest, ScriptsAreLoadedOnceAndReloadedAfterAFlush) {
  std::unique_ptr<Connection> c = Connect(server_->Url());
  Script add{"add", "return tonumber(ARGV[1]) + redis.call('INCR', KEYS[1])", ""};
  EXPECT_EQ(c->Eval(add, {"n"}, {"10"})->integer, 11);
  std::string sha = add.sha;
  EXPECT_EQ(sha.size(), 40u);
  EXPECT_EQ(c->Command({"SCRIPT", "FLUSH"})->str, "OK");
  EXPECT_EQ(c->Eval(add, {"n"}, {"10"})->integer, 12) << "NOSCRIPT made it load the script again";
  EXPECT_EQ(add.sha, sha);
  Script broken{"broken", "return (", ""};
  EXPECT_EQ(c->Eval(broken, {}, {}).status().code(), StatusCode::kInternal);
}

TEST_F(RedisConnectionTest, ManyCallsOfAScriptGoInOneRoundTripAndSurviveAFlush) {
  std::unique_ptr<Connection> c = Connect(server_->Url());
  Script add{"add", "return redis.call('INCRBY', KEYS[1], ARGV[1])", ""};
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> calls;
  for (int i = 1; i <= 100; ++i) calls.push_back({{"sum"}, {std::to_string(i)}});
  Result<std::vector<Reply>> r = c->EvalMany(add, calls);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->back().integer, 5050);
  EXPECT_EQ(c->Command({"SCRIPT", "FLUSH"})->str, "OK");
  r = c->EvalMany(add, {{{"sum"}, {"1"}}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->front().integer, 5051) << "reloaded after NOSCRIPT, and run once";
}

TEST_F(RedisConnectionTest, ATransactionRunsItsCommandsThenTheScriptEvenOnAServerWithoutIt) {
  std::unique_ptr<Connection> c = Connect(server_->Url());
  Script read{"read", "return redis.call('HGET', KEYS[1], ARGV[1]) .. redis.call('INCR', KEYS[2])",
              ""};
  Result<Reply> r = c->EvalInTransaction({{"HSET", "h", "f", "a"}}, read, {"h", "runs"}, {"f"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->str, "a1") << "the script sees what the commands before it wrote";
  EXPECT_EQ(c->Command({"SCRIPT", "FLUSH"})->str, "OK");
  r = c->EvalInTransaction({{"HSET", "h", "f", "b"}, {"SET", "x", "1"}}, read, {"h", "runs"},
                           {"f"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->str, "b2") << "sent whole (EVAL), so run once on a server without it";
  // A command refused when queued: nothing runs.
  r = c->EvalInTransaction({{"HSET", "h", "f"}}, read, {"h", "runs"}, {"f"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("HSET"), std::string::npos) << r.status().message();
  EXPECT_EQ(c->Command({"GET", "runs"})->str, "2");
  // A command that fails when run is an error too.
  r = c->EvalInTransaction({{"INCR", "h"}}, read, {"h", "runs"}, {"f"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("INCR: WRONGTYPE"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(c->Command({"PING"})->str, "PONG") << "the connection is still in step";
}

TEST_F(RedisConnectionTest, ATransactionSentWhileMadeRunsWholeOnlyAtTheEnd) {
  std::unique_ptr<Connection> c = Connect(server_->Url());
  std::unique_ptr<Connection> observer = Connect(server_->Url());
  Script count{"count", "return redis.call('HLEN', KEYS[1])", ""};
  {
    Connection::Transaction t(*c);
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(t.Add({"HSET", "h", "f" + std::to_string(i), std::string(1000, 'x')}).ok());
    }
    // Sent: the server comes to hold the 50 commands queued (it reads them
    // in its own time), and nothing is visible until the end.
    std::string clients;
    for (int i = 0; i < 100 && clients.find(" multi=50 ") == std::string::npos; ++i) {
      if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      clients = observer->Command({"CLIENT", "LIST"})->str;
    }
    EXPECT_NE(clients.find(" multi=50 "), std::string::npos) << clients;
    EXPECT_EQ(observer->Command({"HLEN", "h"})->integer, 0);
    Result<Reply> r = t.Run(count, {"h"}, {});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->integer, 50) << "the script runs after every command added";
  }
  EXPECT_EQ(observer->Command({"HLEN", "h"})->integer, 50);
  {
    // Given up before it ran: discarded with the connection.
    Connection::Transaction t(*c);
    ASSERT_TRUE(t.Add({"DEL", "h"}).ok());
    ASSERT_TRUE(t.Add({"SET", "given-up", "1"}).ok());
  }
  EXPECT_EQ(observer->Command({"HLEN", "h"})->integer, 50);
  EXPECT_TRUE(observer->Command({"GET", "given-up"})->IsNil());
  EXPECT_EQ(c->Command({"GET", "given-up"}).status().code(), StatusCode::kOk)
      << "the connection is made again for the next call";
  EXPECT_TRUE(c->Command({"GET", "given-up"})->IsNil());
  {
    // The connection lost and made again halfway: the rest is refused, not
    // sent outside the transaction.
    Connection::Transaction t(*c);
    ASSERT_TRUE(t.Add({"SET", "halfway", "1"}).ok());
    c->Interrupt();
    EXPECT_FALSE(c->Command({"PING"}).ok());
    Result<Reply> again = Status::Unavailable("");
    for (int i = 0; i < 50 && !again.ok(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      again = c->Command({"PING"});
    }
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(t.Add({"SET", "after", "1"}).code(), StatusCode::kUnavailable);
    EXPECT_EQ(t.Run(count, {"h"}, {}).status().code(), StatusCode::kUnavailable);
  }
  EXPECT_TRUE(observer->Command({"GET", "halfway"})->IsNil());
  EXPECT_TRUE(observer->Command({"GET", "after"})->IsNil());
}

TEST(RedisAuthTest, PasswordsAndAclUsersAreChecked) {
  if (!RedisServer::Available()) GTEST_SKIP() << "redis-server is not installed";
  std::string error;
  std::unique_ptr<RedisServer> server = RedisServer::Start({"--requirepass", "s3cret"}, &error);
  ASSERT_TRUE(server) << error;
  std::string base = "127.0.0.1:" + std::to_string(server->port());
  Result<std::unique_ptr<Connection>> wrong =
      Connection::Open(*ParseRedisUrl("redis://:nope@" + base));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("refused the credentials"), std::string::npos)
      << wrong.status().message();
  EXPECT_EQ(wrong.status().message().find("nope"), std::string::npos)
      << "the password is not shown";
  Result<std::unique_ptr<Connection>> none = Connection::Open(*ParseRedisUrl("redis://" + base));
  ASSERT_TRUE(none.ok()) << "connecting works; commands are refused";
  EXPECT_TRUE((*none)->Command({"PING"})->IsError());
  Result<std::unique_ptr<Connection>> right =
      Connection::Open(*ParseRedisUrl("redis://:s3cret@" + base));
  ASSERT_TRUE(right.ok()) << right.status().ToString();
  EXPECT_EQ((*right)->Command({"ACL", "SETUSER", "app", "on", ">apppw", "~*", "+@all"})->str, "OK");
  Result<std::unique_ptr<Connection>> acl =
      Connection::Open(*ParseRedisUrl("redis://app:apppw@" + base));
  ASSERT_TRUE(acl.ok()) << acl.status().ToString();
  EXPECT_EQ((*acl)->Command({"PING"})->str, "PONG");
}

TEST_F(RedisConnectionTest, WhileTheServerIsDownCallsFailFastAndThenReconnect) {
  std::unique_ptr<Connection> c = Connect(server_->Url());
  ASSERT_EQ(c->Command({"SET", "k", "v"})->str, "OK");
  server_->Stop();
  auto started = std::chrono::steady_clock::now();
  Result<Reply> down = c->Command({"GET", "k"});
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(down.status().message().find("redis at redis://127.0.0.1:"), std::string::npos)
      << down.status().message();
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(c->Command({"PING"}).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3)) << "no hang";
  std::string error;
  ASSERT_TRUE(server_->Restart(&error)) << error;
  bool back = false;
  for (int i = 0; i < 100 && !back; ++i) {
    Result<Reply> r = c->Command({"PING"});
    back = r.ok() && r->str == "PONG";
    if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(back) << "the connection came back by itself";
}

}  // namespace
}  // namespace retraced::redis
