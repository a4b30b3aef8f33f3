// Internal: checked reading of JSON objects. Every accessor names the field by
// its path when the value is missing or of the wrong type, by throwing
// JsonFieldError, which the public *FromJson functions turn into a Status.
#ifndef RETRACED_CORE_JSON_READER_H_
#define RETRACED_CORE_JSON_READER_H_

#include <optional>
#include <string>
#include <vector>

#include "retraced/json.h"

namespace retraced::internal {

struct JsonFieldError {
  std::string path;
  std::string message;
};

class JsonReader {
 public:
  // Refuses a value that is not an object.
  JsonReader(const Json& j, std::string path);

  std::string Path(std::string_view field) const;
  bool Has(std::string_view field) const;         // present and not null
  const Json& Get(std::string_view field) const;  // required, may not be null

  std::string String(std::string_view field) const;
  std::optional<std::string> OptString(std::string_view field) const;
  std::string StringOr(std::string_view field, std::string fallback) const;
  int64_t Int(std::string_view field) const;
  std::optional<int64_t> OptInt(std::string_view field) const;
  int64_t IntOr(std::string_view field, int64_t fallback) const;
  // An integer from lo to hi inclusive; `fallback` when absent.
  int64_t IntIn(std::string_view field, int64_t lo, int64_t hi) const;
  int64_t IntInOr(std::string_view field, int64_t lo, int64_t hi, int64_t fallback) const;
  double Number(std::string_view field) const;
  TimePoint Time(std::string_view field) const;
  std::optional<TimePoint> OptTime(std::string_view field) const;
  std::vector<std::string> Strings(std::string_view field) const;  // absent: empty

  // A vocabulary value parsed with `parse` (ParseJobState and the like).
  template <typename E, typename F>
  E Enum(std::string_view field, F parse) const {
    Result<E> r = parse(String(field));
    if (!r.ok()) Fail(field, r.status().message());
    return *r;
  }
  template <typename E, typename F>
  std::optional<E> OptEnum(std::string_view field, F parse) const {
    if (!Has(field)) return std::nullopt;
    return Enum<E>(field, parse);
  }

  [[noreturn]] void Fail(std::string_view field, std::string message) const;

 private:
  const Json& j_;
  std::string path_;
};

// Runs `body`, turning a JsonFieldError into InvalidArgument.
template <typename T, typename F>
Result<T> ReadJson(F body) {
  try {
    return body();
  } catch (const JsonFieldError& e) {
    return Status::InvalidArgument(e.path + ": " + e.message);
  }
}

}  // namespace retraced::internal

#endif  // RETRACED_CORE_JSON_READER_H_
