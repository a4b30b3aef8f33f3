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

}  // namespace

Error MakeError(ErrorClass cls, std::string_view code, std::string_view message,
                std::string_view detail) {
  Error e;
  e.error_class = cls;
  e.code = std::string(Head(code, Error::kMaxCodeBytes));
  std::string_view m = Head(message, Error::kMaxMessageBytes);
  e.message = std::string(m);
  e.message_cut_bytes = message.size() - m.size();
  std::string_view d = Tail(detail, Error::kMaxDetailBytes);
  e.detail = std::string(d);
  e.detail_cut_bytes = detail.size() - d.size();
  return e;
}

}  // namespace retraced
