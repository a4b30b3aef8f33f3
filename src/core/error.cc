// Building capped error records from handler text.
#include "retraced/job.h"

namespace retraced {
namespace {

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The longest prefix of `s` of at most `cap` bytes that does not split a UTF-8 character.
std::string_view Head(std::string_view s, size_t cap) {
  if (s.size() <= cap) return s;
  size_t end = cap;
  while (end > 0 && IsContinuation(static_cast<unsigned char>(s[end]))) --end;
  return s.substr(0, end);
}

// The longest suffix of `s` of at most `cap` bytes that does not split a UTF-8 character.
std::string_view Tail(std::string_view s, size_t cap) {
  if (s.size() <= cap) return s;
  size_t begin = s.size() - cap;
  while (begin < s.size() && IsContinuation(static_cast<unsigned char>(s[begin]))) ++begin;
  return s.substr(begin);
}

// `s` with every invalid UTF-8 sequence replaced by U+FFFD, so that stored
// text is always valid and serializes to JSON without loss.
std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k)
      ok = IsContinuation(static_cast<unsigned char>(s[i + k]));
    if (ok && len > 1) {
      // Refuse overlong forms, surrogates and code points past U+10FFFF.
      uint32_t cp = c & (0xFF >> (len + 1));
      for (size_t k = 1; k < len; ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

}  // namespace

Error MakeError(ErrorClass cls, std::string_view code, std::string_view message,
                std::string_view detail) {
  Error e;
  e.error_class = cls;
  std::string valid = ValidUtf8(code);
  e.code = std::string(Head(valid, Error::kMaxCodeBytes));
  e.code_cut_bytes = valid.size() - e.code.size();
  valid = ValidUtf8(message);
  e.message = std::string(Head(valid, Error::kMaxMessageBytes));
  e.message_cut_bytes = valid.size() - e.message.size();
  valid = ValidUtf8(detail);
  e.detail = std::string(Tail(valid, Error::kMaxDetailBytes));
  e.detail_cut_bytes = valid.size() - e.detail.size();
  return e;
}

}  // namespace retraced
