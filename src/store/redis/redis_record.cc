// Decoding the Redis job records and specs: text with a MessagePack rest,
// and MessagePack maps (docs/redis-schema.md). Internal to the Redis backend.
#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "retraced/id.h"
#include "retraced/json.h"
#include "store/redis/redis_fields.h"

namespace retraced::redis {

namespace {

// A record's short names (docs/redis-schema.md) and the field names the
// store reads them as.
const std::map<std::string, std::string, std::less<>>& LongNames() {
  static const auto* names =
      new std::map<std::string, std::string, std::less<>>{{"s", "state"},
                                                          {"t", "type"},
                                                          {"p", "policy"},
                                                          {"c", "created"},
                                                          {"u", "updated"},
                                                          {"r", "run_at"},
                                                          {"n", "n"},
                                                          {"pr", "prio"},
                                                          {"k", "unique"},
                                                          {"to", "timeout"},
                                                          {"dl", "deadline"},
                                                          {"w", "worker"},
                                                          {"l", "lease"},
                                                          {"tr", "trigger"},
                                                          {"ss", "seq_start"},
                                                          {"ld", "last_delay"},
                                                          {"e", "error"},
                                                          {"st", "streak"},
                                                          {"b", "budget"},
                                                          {"dr", "dead_reason"},
                                                          {"da", "dead_at"},
                                                          {"de", "dead_evidence"},
                                                          {"rb", "rep_by"},
                                                          {"rn", "rep_note"},
                                                          {"ra", "rep_at"},
                                                          {"rm", "rep_mode"},
                                                          {"a", "start_written"},
                                                          {"d", "payload"},
                                                          {"sa", "started"},
                                                          {"m", "success_unwritten"},
                                                          {"xa", "end_actor"},
                                                          {"ea", "enq_actor"},
                                                          {"af", "all_first"}};
  return *names;
}

// A reader of the MessagePack the scripts write (Lua's cmsgpack): maps of
// short names to strings and integers. Other values are skipped, whatever
// their type, so that a record stays readable when a later version adds to
// it. Written for the hot path: a claim decodes two maps per job.
class MsgPack {
 public:
  explicit MsgPack(std::string_view in)
      : p_(reinterpret_cast<const uint8_t*>(in.data())), end_(p_ + in.size()) {}

  bool done() const { return p_ == end_; }

  // The size of the map that starts here; nullopt when it is not a map.
  std::optional<uint32_t> MapSize() {
    if (!Need(1)) return std::nullopt;
    uint8_t t = *p_++;
    if (t >= 0x80 && t <= 0x8f) return t & 0x0f;
    if (t == 0xde && Need(2)) return static_cast<uint32_t>(Be(2));
    if (t == 0xdf && Need(4)) return static_cast<uint32_t>(Be(4));
    return std::nullopt;
  }

  // A string's text; nullopt (and nothing read) when the value is not a string.
  std::optional<std::string_view> Text() {
    if (!Need(1)) return std::nullopt;
    uint8_t t = *p_;
    size_t header = 1, n = 0;
    if (t >= 0xa0 && t <= 0xbf) {
      n = t & 0x1f;
    } else if (t == 0xd9 || t == 0xc4) {
      header = 2;
    } else if (t == 0xda || t == 0xc5) {
      header = 3;
    } else if (t == 0xdb || t == 0xc6) {
      header = 5;
    } else {
      return std::nullopt;
    }
    if (!Need(header)) return std::nullopt;
    const uint8_t* start = p_;
    ++p_;
    if (header > 1) n = Be(static_cast<int>(header - 1));
    if (!Need(n)) {
      p_ = start;  // cut short: read nothing, so that Skip() refuses it too
      return std::nullopt;
    }
    std::string_view text(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return text;
  }

  // An integer; nullopt (and nothing read) when the value is not one.
  std::optional<int64_t> Integer() {
    if (!Need(1)) return std::nullopt;
    uint8_t t = *p_;
    if (t <= 0x7f || t >= 0xe0) {
      ++p_;
      return static_cast<int8_t>(t);
    }
    int bytes = 0;
    bool is_signed = false;
    if (t >= 0xcc && t <= 0xcf) {
      bytes = 1 << (t - 0xcc);
    } else if (t >= 0xd0 && t <= 0xd3) {
      bytes = 1 << (t - 0xd0);
      is_signed = true;
    } else {
      return std::nullopt;
    }
    if (!Need(1 + static_cast<size_t>(bytes))) return std::nullopt;
    ++p_;
    uint64_t v = Be(bytes);
    if (!is_signed) return static_cast<int64_t>(v);
    if (bytes < 8 && (v >> (bytes * 8 - 1)) & 1) v |= ~uint64_t{0} << (bytes * 8);
    return static_cast<int64_t>(v);
  }

  // Skips one value of any type; false when the input ends inside it.
  bool Skip() {
    if (!Need(1)) return false;
    uint8_t t = *p_++;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) return true;
    if (t >= 0x80 && t <= 0x8f) return SkipMany(2 * (t & 0x0f));
    if (t >= 0x90 && t <= 0x9f) return SkipMany(t & 0x0f);
    if (t >= 0xa0 && t <= 0xbf) return Advance(t & 0x1f);
    switch (t) {
      case 0xc4:
      case 0xd9:
        return Need(1) && Advance(Be(1));
      case 0xc5:
      case 0xda:
        return Need(2) && Advance(Be(2));
      case 0xc6:
      case 0xdb:
        return Need(4) && Advance(Be(4));
      case 0xc7:
        return Need(1) && Advance(Be(1) + 1);
      case 0xc8:
        return Need(2) && Advance(Be(2) + 1);
      case 0xc9:
        return Need(4) && Advance(Be(4) + 1);
      case 0xca:
        return Advance(4);
      case 0xcb:
        return Advance(8);
      case 0xcc:
      case 0xd0:
        return Advance(1);
      case 0xcd:
      case 0xd1:
        return Advance(2);
      case 0xce:
      case 0xd2:
        return Advance(4);
      case 0xcf:
      case 0xd3:
        return Advance(8);
      case 0xd4:
        return Advance(2);
      case 0xd5:
        return Advance(3);
      case 0xd6:
        return Advance(5);
      case 0xd7:
        return Advance(9);
      case 0xd8:
        return Advance(17);
      case 0xdc:
        return Need(2) && SkipMany(Be(2));
      case 0xdd:
        return Need(4) && SkipMany(Be(4));
      case 0xde:
        return Need(2) && SkipMany(2 * Be(2));
      case 0xdf:
        return Need(4) && SkipMany(2 * Be(4));
      default:
        return false;  // 0xc1: never used
    }
  }

 private:
  bool Need(size_t n) const { return static_cast<size_t>(end_ - p_) >= n; }
  bool Advance(uint64_t n) {
    if (!Need(n)) return false;
    p_ += n;
    return true;
  }
  bool SkipMany(uint64_t n) {
    if (++depth_ > 64) return false;  // a malformed value, not a record
    for (uint64_t i = 0; i < n; ++i) {
      if (!Skip()) return false;
    }
    --depth_;
    return true;
  }
  // A big-endian number of `bytes` bytes; the caller checked they are there.
  uint64_t Be(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | *p_++;
    return v;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  int depth_ = 0;
};

// A MessagePack map's fields (above).
bool ForEachPackedField(std::string_view packed, const FieldVisitor& visit) {
  MsgPack in(packed);
  std::optional<uint32_t> size = in.MapSize();
  if (!size) return false;
  for (uint32_t i = 0; i < *size; ++i) {
    std::optional<std::string_view> key = in.Text();
    if (!key) return false;
    if (std::optional<std::string_view> text = in.Text()) {
      visit(*key, *text, std::nullopt);
    } else if (std::optional<int64_t> n = in.Integer()) {
      visit(*key, std::string_view(), n);
    } else if (!in.Skip()) {
      return false;
    }
  }
  return in.done();
}

// MessagePack as Lua's cmsgpack writes it (the smallest form of each value),
// so that a spec packed here and one packed by a script are the same bytes.
void PackText(std::string* out, std::string_view text) {
  const size_t n = text.size();
  if (n < 32) {
    out->push_back(static_cast<char>(0xa0 | n));
  } else if (n <= 0xff) {
    out->push_back(static_cast<char>(0xd9));
    out->push_back(static_cast<char>(n));
  } else if (n <= 0xffff) {
    out->push_back(static_cast<char>(0xda));
    for (int shift = 8; shift >= 0; shift -= 8) out->push_back(static_cast<char>(n >> shift));
  } else {
    out->push_back(static_cast<char>(0xdb));
    for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(n >> shift));
  }
  out->append(text);
}

void PackInteger(std::string* out, int64_t v) {
  auto big_endian = [out](uint8_t type, uint64_t bits, int bytes) {
    out->push_back(static_cast<char>(type));
    for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
      out->push_back(static_cast<char>(bits >> shift));
    }
  };
  if (v >= 0) {
    const uint64_t u = static_cast<uint64_t>(v);
    if (u <= 0x7f) {
      out->push_back(static_cast<char>(u));
    } else if (u <= 0xff) {
      big_endian(0xcc, u, 1);
    } else if (u <= 0xffff) {
      big_endian(0xcd, u, 2);
    } else if (u <= 0xffffffff) {
      big_endian(0xce, u, 4);
    } else {
      big_endian(0xcf, u, 8);
    }
  } else if (v >= -32) {
    out->push_back(static_cast<char>(v));
  } else if (v >= -128) {
    big_endian(0xd0, static_cast<uint64_t>(v), 1);
  } else if (v >= -32768) {
    big_endian(0xd1, static_cast<uint64_t>(v), 2);
  } else if (v >= INT32_MIN) {
    big_endian(0xd2, static_cast<uint64_t>(v), 4);
  } else {
    big_endian(0xd3, static_cast<uint64_t>(v), 8);
  }
}

// The worker as a record's text holds it: '%' and ',' written as %25 and
// %2C (lua/include/record.lua). False when an escape is malformed.
bool Unescape(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    unsigned value = 0;
    if (i + 2 >= in.size()) return false;
    auto [p, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16);
    if (ec != std::errc() || p != in.data() + i + 3) return false;
    out->push_back(static_cast<char>(value));
    i += 2;
  }
  return true;
}

}  // namespace

bool ForEachField(std::string_view packed, const FieldVisitor& visit) {
  if (packed.empty()) return false;
  // A MessagePack map: a spec, or a record written by an earlier version.
  if (static_cast<uint8_t>(packed[0]) >= 0x80) return ForEachPackedField(packed, visit);
  // A record's text (lua/include/record.lua): ten fields, each followed by
  // a comma, then the length of the latest error, a comma and the error,
  // then the rest as a MessagePack map or nothing. Empty fields are absent
  // ones; all but s, w and tr are integers.
  // Each field's kind is known by its place: no name is compared.
  enum Kind { kText, kWorker, kInteger, kStart };
  struct Head {
    std::string_view name;
    Kind kind;
  };
  static constexpr Head kHead[] = {
      {"s", kText},   {"n", kInteger}, {"u", kInteger}, {"l", kInteger},  {"sa", kStart},
      {"w", kWorker}, {"tr", kText},   {"r", kInteger}, {"pr", kInteger}, {"a", kInteger}};
  size_t pos = 0;
  std::string worker;
  auto next = [&](std::string_view* text) {
    size_t comma = packed.find(',', pos);
    if (comma == std::string_view::npos) return false;
    *text = packed.substr(pos, comma - pos);
    pos = comma + 1;
    return true;
  };
  auto integer = [](std::string_view text, int64_t* v) {
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), *v);
    return ec == std::errc() && p == text.data() + text.size();
  };
  for (const Head& head : kHead) {
    std::string_view text;
    if (!next(&text)) return false;
    if (text.empty()) continue;
    switch (head.kind) {
      case kText:
        visit(head.name, text, std::nullopt);
        break;
      case kWorker:
        if (text.find('%') == std::string_view::npos) {
          visit(head.name, text, std::nullopt);  // nothing escaped: no copy
        } else {
          if (!Unescape(text, &worker)) return false;
          visit(head.name, worker, std::nullopt);
        }
        break;
      case kInteger:
      case kStart: {
        int64_t v = 0;
        if (!integer(text, &v)) return false;
        visit(head.name, std::string_view(), v);
        // The success of attempt n is not written yet (m in a MessagePack record).
        if (head.kind == kStart) visit("m", std::string_view(), 1);
        break;
      }
    }
  }
  std::string_view error_length;
  if (!next(&error_length)) return false;
  if (!error_length.empty()) {
    int64_t length = 0;
    if (!integer(error_length, &length) || length < 0 ||
        static_cast<uint64_t>(length) > packed.size() - pos) {
      return false;
    }
    visit("e", packed.substr(pos, static_cast<size_t>(length)), std::nullopt);
    pos += static_cast<size_t>(length);
  }
  return pos == packed.size() || ForEachPackedField(packed.substr(pos), visit);
}

std::string PackSpec(std::string_view type, std::string_view policy, std::string_view payload,
                     std::optional<int64_t> timeout_ms) {
  std::string out;
  // Room for the fields' names and lengths, and for the end a producer that
  // writes the spec itself adds (AppendSpecEnd: 3 names, 2 numbers and the
  // actor, usually short: a longer one costs a reallocation).
  out.reserve(payload.size() + type.size() + policy.size() + 64 + kMaxNameBytes);
  // A map of up to 7 fields (fixmap): these, and c, ea and af, which enqueue.lua adds.
  out.push_back(static_cast<char>(0x80 | ((timeout_ms ? 4 : 3) + 3)));
  PackText(&out, "t");
  PackText(&out, type);
  PackText(&out, "p");
  PackText(&out, policy);
  PackText(&out, "d");
  PackText(&out, payload);
  if (timeout_ms) {
    PackText(&out, "to");
    PackInteger(&out, *timeout_ms);
  }
  return out;
}

void AppendSpecEnd(std::string* spec, int64_t created_ms,
                   std::optional<std::string_view> enqueued_by, int64_t entry) {
  PackText(spec, "c");
  PackInteger(spec, created_ms);
  PackText(spec, "ea");
  if (enqueued_by) {
    PackText(spec, *enqueued_by);
  } else {
    spec->push_back(static_cast<char>(0xc0));  // nil
  }
  PackText(spec, "af");
  PackInteger(spec, entry);
}

std::optional<std::map<std::string, std::string>> DecodeRecord(std::string_view packed,
                                                               bool with_error) {
  std::map<std::string, std::string> f;
  // Names this version does not know, and values of other types, are left
  // out rather than refused (above).
  const bool ok = ForEachField(
      packed, [&](std::string_view key, std::string_view text, std::optional<int64_t> n) {
        auto name = LongNames().find(key);
        if (name == LongNames().end()) return;
        f[name->second] = n ? std::to_string(*n) : std::string(text);
      });
  if (!ok) return std::nullopt;
  auto e = f.find("error");
  if (with_error && e != f.end()) {
    // The latest error, as JSON [class, code, message, signature].
    Result<Json> parsed = ParseJson(e->second);
    if (parsed.ok() && parsed->is_array() && parsed->size() == 4) {
      const char* names[] = {"err_class", "err_code", "err_msg", "err_sig"};
      for (size_t i = 0; i < 4; ++i) {
        if ((*parsed)[i].is_string()) f[names[i]] = (*parsed)[i].get<std::string>();
      }
    }
  }
  return f;
}

}  // namespace retraced::redis
