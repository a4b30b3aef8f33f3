// OpenStore: the store a URL names.
#include "retraced/store.h"
#include "store/redis/redis_store.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store_checks.h"

namespace retraced {

Result<std::unique_ptr<JobSignal>> Store::WatchQueues(std::span<const std::string>) {
  return std::unique_ptr<JobSignal>();
}

Result<std::vector<Result<FailResult>>> Store::FailMany(std::span<const FailRequest> reqs) {
  RETRACED_RETURN_IF_ERROR(internal::CheckFailures(reqs));
  std::vector<Result<FailResult>> out;
  for (const FailRequest& r : reqs) {
    Result<FailResult> one = Fail(r);
    if (!one.ok() && one.status().code() == StatusCode::kUnavailable) return one.status();
    out.push_back(std::move(one));
  }
  return out;
}

Result<std::unique_ptr<Store>> OpenStore(std::string_view url, const StoreOptions& options) {
  constexpr std::string_view kSqlite = "sqlite:";
  if (url.substr(0, kSqlite.size()) == kSqlite) {
    std::string_view path = url.substr(kSqlite.size());
    if (path.substr(0, 2) == "//") path.remove_prefix(2);
    if (path.empty()) {
      return Status::InvalidArgument("store URL '" + std::string(url) +
                                     "' names no file; expected sqlite:PATH");
    }
    RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<sqlite::SqliteStore> store,
                              sqlite::SqliteStore::Open(std::string(path), options));
    return std::unique_ptr<Store>(std::move(store));
  }
  if (url.substr(0, 8) == "redis://" || url.substr(0, 13) == "redis+unix://") {
    RETRACED_ASSIGN_OR_RETURN(std::unique_ptr<redis::RedisStore> store,
                              redis::RedisStore::Open(url, options));
    return std::unique_ptr<Store>(std::move(store));
  }
  size_t colon = url.find(':');
  std::string scheme(colon == std::string_view::npos ? url : url.substr(0, colon));
  return Status::InvalidArgument("unknown store URL scheme '" + scheme + "' in '" +
                                 std::string(url) +
                                 "'; expected sqlite:PATH, redis://HOST:PORT/DB or "
                                 "redis+unix:///PATH");
}

}  // namespace retraced
