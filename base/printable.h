// Makes untrusted text safe to print on a terminal: control characters and invisible Unicode
// format characters (bidirectional overrides such as U+202E, zero-width characters) are written
// as escapes, so that a recipe value or a flag cannot move the cursor, recolour the terminal or
// reorder what a person reads. Printable UTF-8 (accented letters, CJK) is kept as it is. ESC
// (0x1b) becomes the four characters \x1b, U+202E the six characters \u202e.
//
//   const std::string value = "zero3";
//   const std::string shown = Printable(value);         // one quoted value
//   const std::string message = PrintableLines(value);  // a whole message, line breaks kept
//
// Thread-safe.
#ifndef NMESH_BASE_PRINTABLE_H_
#define NMESH_BASE_PRINTABLE_H_

#include <string>
#include <string_view>

namespace nmesh {

// `text` with every byte below 0x20, DEL (0x7f) and every byte that is not part of valid UTF-8
// written as \xNN (two lower-case hex digits), and every C1 control (U+0080 to U+009F), Unicode
// format character (bidirectional controls, zero-width characters, the BOM, tags), line or
// paragraph separator and noncharacter written as \uNNNN (\UNNNNNNNN above U+FFFF). A backslash
// is kept as it is. Applying it twice gives the same text as applying it once.
std::string Printable(std::string_view text);

// Printable(), except that line breaks ('\n') and tabs are kept: for a whole message that may
// span several lines.
std::string PrintableLines(std::string_view text);

}  // namespace nmesh

#endif  // NMESH_BASE_PRINTABLE_H_
