// Shortens user input quoted in a message, so that a 1 MB value gives a short error line, and
// escapes what a terminal would act on (base/printable.h: ESC becomes the four characters \x1b):
//
//   Abbreviate("fsdp2");                            // "fsdp2"
//   Abbreviate(std::string(1048576, 'a'));          // "aaaa...a... (1048576 bytes)": 80 kept
//   Abbreviate("/some/path", kMaxQuotedPathBytes);  // a path: up to 256 bytes kept
#ifndef NMESH_BASE_ABBREVIATE_H_
#define NMESH_BASE_ABBREVIATE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "nmesh/base/printable.h"

namespace nmesh {

// Values longer than this are cut in messages.
inline constexpr size_t kMaxQuotedBytes = 80;
// Paths longer than this are cut in messages (a real path is rarely longer; PATH_MAX is 4096).
inline constexpr size_t kMaxQuotedPathBytes = 256;

// Printable(text) when `text` has at most `max_bytes` bytes; otherwise Printable() of its first
// `max_bytes` bytes (fewer where that would split a UTF-8 character), "..." and the total length.
inline std::string Abbreviate(std::string_view text, size_t max_bytes = kMaxQuotedBytes) {
  if (text.size() <= max_bytes) return Printable(text);
  size_t cut = max_bytes;
  // Back up over at most 3 continuation bytes (10xxxxxx) to the start of the character.
  for (int i = 0; i < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80; ++i)
    --cut;
  return Printable(text.substr(0, cut)) + "... (" + std::to_string(text.size()) + " bytes)";
}

}  // namespace nmesh

#endif  // NMESH_BASE_ABBREVIATE_H_
