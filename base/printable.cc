#include "nmesh/base/printable.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace nmesh {
namespace {

// Code points that draw nothing and change how the text around them is shown or read: C1
// controls, the Unicode "Cf" (format) characters, line and paragraph separators, and
// noncharacters.
bool IsInvisible(char32_t c) {
  if (c >= 0x80 && c <= 0x9f) return true;  // C1 controls (CSI is U+009B)
  if ((c & 0xfffe) == 0xfffe || (c >= 0xfdd0 && c <= 0xfdef)) return true;  // noncharacters
  switch (c) {
    case 0x00ad:  // soft hyphen
    case 0x061c:  // Arabic letter mark
    case 0x070f:
    case 0x08e2:
    case 0x180e:  // Mongolian vowel separator
    case 0xfeff:  // zero-width no-break space (BOM)
    case 0x110bd:
    case 0x110cd:
    case 0xe0001:
      return true;
    default:
      break;
  }
  return (c >= 0x0600 && c <= 0x0605) || (c >= 0x200b && c <= 0x200f) ||  // zero width, LRM, RLM
         (c >= 0x2028 && c <= 0x202e) ||  // separators, LRE, RLE, PDF, LRO, RLO
         (c >= 0x2060 && c <= 0x206f) ||  // word joiner, invisible operators, LRI...PDI
         (c >= 0xfff9 && c <= 0xfffb) ||  // interlinear annotations
         (c >= 0x13430 && c <= 0x1343f) || (c >= 0x1bca0 && c <= 0x1bca3) ||
         (c >= 0x1d173 && c <= 0x1d17a) || (c >= 0xe0020 && c <= 0xe007f);  // tags
}

// The length of the valid UTF-8 sequence at the start of `text` (2 to 4 bytes) and its code
// point; 0 when it is not one (a stray continuation byte, a truncated or overlong sequence, a
// surrogate, beyond U+10FFFF).
size_t DecodeMultiByte(std::string_view text, char32_t& code_point) {
  const auto lead = static_cast<unsigned char>(text[0]);
  size_t length = 0;
  char32_t value = 0;
  char32_t minimum = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2, value = lead & 0x1f, minimum = 0x80;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3, value = lead & 0x0f, minimum = 0x800;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4, value = lead & 0x07, minimum = 0x10000;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    const auto next = static_cast<unsigned char>(text[i]);
    if ((next & 0xc0) != 0x80) return 0;
    value = (value << 6) | (next & 0x3f);
  }
  if (value < minimum || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return 0;
  code_point = value;
  return length;
}

std::string Escape(std::string_view text, bool keep_lines) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      if ((byte >= 0x20 && byte < 0x7f) || (keep_lines && (byte == '\n' || byte == '\t'))) {
        out.push_back(static_cast<char>(byte));
      } else {
        absl::StrAppendFormat(&out, "\\x%02x", byte);
      }
      ++i;
      continue;
    }
    char32_t code_point = 0;
    const size_t length = DecodeMultiByte(text.substr(i), code_point);
    if (length == 0) {
      absl::StrAppendFormat(&out, "\\x%02x", byte);
      ++i;
    } else if (IsInvisible(code_point)) {
      // Two calls: absl checks a format string at compile time only when it is a constant.
      if (code_point > 0xffff) {
        absl::StrAppendFormat(&out, "\\U%08x", static_cast<uint32_t>(code_point));
      } else {
        absl::StrAppendFormat(&out, "\\u%04x", static_cast<uint32_t>(code_point));
      }
      i += length;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

}  // namespace

std::string Printable(std::string_view text) { return Escape(text, /*keep_lines=*/false); }

std::string PrintableLines(std::string_view text) { return Escape(text, /*keep_lines=*/true); }

}  // namespace nmesh
