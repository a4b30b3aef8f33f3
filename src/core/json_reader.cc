#include "core/json_reader.h"

namespace retraced::internal {

JsonReader::JsonReader(const Json& j, std::string path) : j_(j), path_(std::move(path)) {
  if (!j_.is_object()) {
    throw JsonFieldError{path_.empty() ? "(top)" : path_,
                         std::string("expected an object, got ") + j_.type_name()};
  }
}

std::string JsonReader::Path(std::string_view field) const {
  return path_.empty() ? std::string(field) : path_ + "." + std::string(field);
}

void JsonReader::Fail(std::string_view field, std::string message) const {
  throw JsonFieldError{Path(field), std::move(message)};
}

bool JsonReader::Has(std::string_view field) const {
  auto it = j_.find(field);
  return it != j_.end() && !it->is_null();
}

const Json& JsonReader::Get(std::string_view field) const {
  auto it = j_.find(field);
  if (it == j_.end() || it->is_null()) Fail(field, "missing");
  return *it;
}

std::string JsonReader::String(std::string_view field) const {
  const Json& v = Get(field);
  if (!v.is_string()) Fail(field, std::string("expected a string, got ") + v.type_name());
  return v.get<std::string>();
}

std::optional<std::string> JsonReader::OptString(std::string_view field) const {
  if (!Has(field)) return std::nullopt;
  return String(field);
}

std::string JsonReader::StringOr(std::string_view field, std::string fallback) const {
  return Has(field) ? String(field) : std::move(fallback);
}

int64_t JsonReader::Int(std::string_view field) const {
  const Json& v = Get(field);
  if (!v.is_number_integer()) Fail(field, std::string("expected an integer, got ") + v.type_name());
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    Fail(field, "integer too large");
  }
  return v.get<int64_t>();
}

int64_t JsonReader::IntIn(std::string_view field, int64_t lo, int64_t hi) const {
  int64_t v = Int(field);
  if (v < lo || v > hi) {
    Fail(field, "must be from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got " +
                    std::to_string(v));
  }
  return v;
}

int64_t JsonReader::IntInOr(std::string_view field, int64_t lo, int64_t hi,
                            int64_t fallback) const {
  return Has(field) ? IntIn(field, lo, hi) : fallback;
}

std::optional<int64_t> JsonReader::OptInt(std::string_view field) const {
  if (!Has(field)) return std::nullopt;
  return Int(field);
}

int64_t JsonReader::IntOr(std::string_view field, int64_t fallback) const {
  return Has(field) ? Int(field) : fallback;
}

double JsonReader::Number(std::string_view field) const {
  const Json& v = Get(field);
  if (!v.is_number()) Fail(field, std::string("expected a number, got ") + v.type_name());
  return v.get<double>();
}

TimePoint JsonReader::Time(std::string_view field) const {
  Result<TimePoint> t = ParseTime(String(field));
  if (!t.ok()) Fail(field, t.status().message());
  return *t;
}

std::optional<TimePoint> JsonReader::OptTime(std::string_view field) const {
  if (!Has(field)) return std::nullopt;
  return Time(field);
}

std::vector<std::string> JsonReader::Strings(std::string_view field) const {
  std::vector<std::string> out;
  if (!Has(field)) return out;
  const Json& v = Get(field);
  if (!v.is_array()) Fail(field, std::string("expected an array, got ") + v.type_name());
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) {
      Fail(std::string(field) + "[" + std::to_string(i) + "]",
           std::string("expected a string, got ") + v[i].type_name());
    }
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

}  // namespace retraced::internal
