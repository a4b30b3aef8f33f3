// Redis store URLs:
//   redis://[[user]:password@]host[:port][/db]
//   redis+unix://[[user]:password@]/path/to/socket[?db=N]
// Internal to the Redis backend.
#ifndef RETRACED_STORE_REDIS_REDIS_URL_H_
#define RETRACED_STORE_REDIS_REDIS_URL_H_

#include <optional>
#include <string>
#include <string_view>

#include "retraced/status.h"

namespace retraced::redis {

struct RedisAddress {
  std::string host;  // TCP host, empty for a Unix socket
  int port = 6379;
  std::string socket_path;          // Unix socket, empty for TCP
  std::optional<std::string> user;  // ACL user; unset: AUTH with the password alone
  std::optional<std::string> password;
  int db = 0;

  // The URL without the password, for messages and logs.
  std::string Describe() const;
};

// InvalidArgument naming what is wrong with the URL.
Result<RedisAddress> ParseRedisUrl(std::string_view url);

}  // namespace retraced::redis

#endif  // RETRACED_STORE_REDIS_REDIS_URL_H_
