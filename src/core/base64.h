// Standard base64 (RFC 4648, with padding) for payloads that are not JSON.
#ifndef RETRACED_CORE_BASE64_H_
#define RETRACED_CORE_BASE64_H_

#include <optional>
#include <string>
#include <string_view>

namespace retraced::internal {

std::string Base64Encode(std::string_view bytes);
// nullopt when `text` is not valid padded base64.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace retraced::internal

#endif  // RETRACED_CORE_BASE64_H_
