// Reading a Redis job record: numbers and optional fields, for the store's
// implementation files. Internal to the Redis backend.
#ifndef RETRACED_STORE_REDIS_REDIS_FIELDS_H_
#define RETRACED_STORE_REDIS_REDIS_FIELDS_H_

#include <charconv>
#include <concepts>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "retraced/time.h"
#include "store/redis/redis_connection.h"
#include "store/store_checks.h"

namespace retraced::redis {

using internal::StoredPolicy;

inline int64_t Ms(TimePoint t) { return ToUnixMillis(t); }
inline std::string MsText(TimePoint t) { return std::to_string(ToUnixMillis(t)); }

// Numbers read back from Redis; a malformed one reads as `fallback` rather than throwing.
inline int64_t ToInt(std::string_view text, int64_t fallback = 0) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && p == text.data() + text.size() ? v : fallback;
}

inline int64_t IntField(const std::map<std::string, std::string>& f, const std::string& key,
                        int64_t fallback = 0) {
  auto it = f.find(key);
  if (it == f.end() || it->second.empty()) return fallback;
  return ToInt(it->second, fallback);
}

// A field's text, empty when absent.
inline std::string Get(const std::map<std::string, std::string>& f, const std::string& key) {
  auto it = f.find(key);
  return it == f.end() ? std::string() : it->second;
}

inline std::optional<std::string> OptField(const std::map<std::string, std::string>& f,
                                           const std::string& key) {
  auto it = f.find(key);
  if (it == f.end()) return std::nullopt;
  return it->second;
}

// Calls `visit` with each field of a record or spec (below) by its short
// name, with its text or, for an integer, its value; fields of other types
// are skipped. False when `packed` is malformed (some fields may have been
// visited).
// It refers to the caller's callable for the call only: a std::function
// would allocate for a lambda that captures much, twice per claimed job.
class FieldVisitor {
 public:
  template <typename F>
  requires(!std::same_as<std::remove_cvref_t<F>, FieldVisitor> &&
           std::invocable<F&, std::string_view, std::string_view, std::optional<int64_t>>)
      FieldVisitor(F&& f)  // implicit, so that a lambda is passed as it is
      : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* object, std::string_view name, std::string_view text,
                 std::optional<int64_t> integer) {
          (*static_cast<std::remove_reference_t<F>*>(object))(name, text, integer);
        }) {}
  void operator()(std::string_view short_name, std::string_view text,
                  std::optional<int64_t> integer) const {
    call_(object_, short_name, text, integer);
  }

 private:
  void* object_;
  void (*call_)(void*, std::string_view, std::string_view, std::optional<int64_t>);
};
bool ForEachField(std::string_view packed, const FieldVisitor& visit);

// A field's short name (one or two bytes) as a number, for a switch over
// names in a visitor: 0 for a longer one.
constexpr uint32_t NameCode(std::string_view name) {
  if (name.empty() || name.size() > 2) return 0;
  uint32_t code = static_cast<uint8_t>(name[0]);
  if (name.size() == 2) code |= static_cast<uint32_t>(static_cast<uint8_t>(name[1])) << 8;
  return code;
}

// The spec of a new job as enqueue.lua takes it: a MessagePack map of its
// type (t), policy (p), payload (d) and timeout (to, when set), its header
// counting the three fields the script adds at its end (c, the time it was
// created; ea, who enqueued it; af, the score of its entry in `all`).
std::string PackSpec(std::string_view type, std::string_view policy, std::string_view payload,
                     std::optional<int64_t> timeout_ms);

// Appends to a spec from PackSpec the three fields enqueue.lua would add,
// packed as it packs them: c (`created_ms`), ea (`enqueued_by`; nil for a
// scheduled job) and af (`entry`). For a producer that writes specs itself
// (enqueue.lua, written).
void AppendSpecEnd(std::string* spec, int64_t created_ms,
                   std::optional<std::string_view> enqueued_by, int64_t entry);

// A job's record or spec, as stored in PREFIX jobs (text with a MessagePack
// rest, or a MessagePack map written by an earlier version) or PREFIX specs
// (a MessagePack map; docs/redis-schema.md), into its fields; nullopt when
// malformed. The latest error (`error`, JSON) is also
// read into err_class, err_code, err_msg and err_sig unless `with_error` is
// false (a failure's decision has no use for them).
std::optional<std::map<std::string, std::string>> DecodeRecord(std::string_view packed,
                                                               bool with_error = true);

inline std::string Str(const Reply& r) {
  return r.type == Reply::Type::kInteger ? std::to_string(r.integer) : r.str;
}

}  // namespace retraced::redis

#endif  // RETRACED_STORE_REDIS_REDIS_FIELDS_H_
