// Shortens user input quoted in a message, so that a 1 MB value gives a short error line:
//
//   Abbreviate("fsdp2");                       // "fsdp2"
//   Abbreviate(std::string(1048576, 'a'));     // "aaaa...a... (1048576 bytes)": 80 bytes kept
#ifndef NMESH_BASE_ABBREVIATE_H_
#define NMESH_BASE_ABBREVIATE_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace nmesh {

// Values longer than this are cut in messages.
inline constexpr size_t kMaxQuotedBytes = 80;

// `text` when it has at most `max_bytes` bytes; otherwise its first `max_bytes` bytes, "..." and
// the total length.
inline std::string Abbreviate(std::string_view text, size_t max_bytes = kMaxQuotedBytes) {
  if (text.size() <= max_bytes) return std::string(text);
  return std::string(text.substr(0, max_bytes)) + "... (" + std::to_string(text.size()) + " bytes)";
}

}  // namespace nmesh

#endif  // NMESH_BASE_ABBREVIATE_H_
