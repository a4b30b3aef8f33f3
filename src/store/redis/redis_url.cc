#include "store/redis/redis_url.h"

#include <charconv>

namespace retraced::redis {
namespace {

Result<int> Number(std::string_view text, std::string_view what, int lo, int hi) {
  int v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || v < lo || v > hi) {
    return Status::InvalidArgument(std::string(what) + " must be a number from " +
                                   std::to_string(lo) + " to " + std::to_string(hi) + ", got '" +
                                   std::string(text) + "'");
  }
  return v;
}

// Percent-decodes user info (passwords may need %40 for '@' and the like).
Result<std::string> Decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return Status::InvalidArgument("a '%' escape is cut short");
    int v = 0;
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || p != s.data() + i + 3) {
      return Status::InvalidArgument("bad '%' escape in the user or password");
    }
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

}  // namespace

std::string RedisAddress::Describe() const {
  std::string who = user ? *user + ":***@" : (password ? ":***@" : "");
  if (!socket_path.empty()) {
    return "redis+unix://" + who + socket_path + (db ? "?db=" + std::to_string(db) : "");
  }
  return "redis://" + who + host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

Result<RedisAddress> ParseRedisUrl(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("invalid store URL '" + std::string(url) + "': " + why);
  };
  RedisAddress a;
  std::string_view rest;
  bool unix_socket = false;
  if (url.substr(0, 8) == "redis://") {
    rest = url.substr(8);
  } else if (url.substr(0, 13) == "redis+unix://") {
    rest = url.substr(13);
    unix_socket = true;
  } else {
    return bad("expected redis://host:port/db or redis+unix:///path/to/socket");
  }
  // User info: everything before the last '@' of the authority.
  size_t at = unix_socket ? rest.find('@') : rest.substr(0, rest.find('/')).rfind('@');
  if (at != std::string_view::npos) {
    std::string_view info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = info.find(':');
    // user:password, :password, or (refused below) a user alone.
    std::string_view user = colon == std::string_view::npos ? info : info.substr(0, colon);
    std::string_view password =
        colon == std::string_view::npos ? std::string_view() : info.substr(colon + 1);
    Result<std::string> u = Decode(user), p = Decode(password);
    if (!u.ok()) return bad(u.status().message());
    if (!p.ok()) return bad(p.status().message());
    if (!u->empty()) a.user = *u;
    if (!p->empty()) a.password = *p;
    if (a.user && !a.password) return bad("a user needs a password: user:password@");
  }
  if (unix_socket) {
    std::string_view path = rest.substr(0, rest.find('?'));
    if (path.empty() || path[0] != '/') return bad("the socket path must be absolute");
    a.socket_path = std::string(path);
    if (size_t q = rest.find('?'); q != std::string_view::npos) {
      std::string_view query = rest.substr(q + 1);
      if (query.substr(0, 3) != "db=") return bad("the only option is ?db=N");
      Result<int> db = Number(query.substr(3), "db", 0, 1023);
      if (!db.ok()) return bad(db.status().message());
      a.db = *db;
    }
    return a;
  }
  std::string_view authority = rest.substr(0, rest.find('/'));
  std::string_view path = rest.size() > authority.size() ? rest.substr(authority.size() + 1) : "";
  if (authority.empty()) return bad("no host");
  size_t colon = authority.rfind(':');
  if (authority.front() == '[') {  // [IPv6]:port
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in the host");
    a.host = std::string(authority.substr(1, close - 1));
    colon = authority.size() > close + 1 && authority[close + 1] == ':' ? close + 1
                                                                        : std::string_view::npos;
  } else {
    a.host = std::string(authority.substr(0, colon));
  }
  if (colon != std::string_view::npos) {
    Result<int> port = Number(authority.substr(colon + 1), "the port", 1, 65535);
    if (!port.ok()) return bad(port.status().message());
    a.port = *port;
  }
  if (a.host.empty()) return bad("no host");
  if (!path.empty()) {
    Result<int> db = Number(path, "the db", 0, 1023);
    if (!db.ok()) return bad(db.status().message());
    a.db = *db;
  }
  return a;
}

}  // namespace retraced::redis
