#include "nmesh/config/internal/recipe_text.h"

#include <istream>
#include <optional>
#include <streambuf>
#include <string>

#include "absl/strings/str_format.h"
#include "nmesh/config/internal/yaml_value.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/exceptions.h"
#include "yaml-cpp/parser.h"

namespace nmesh::config::internal {
namespace {

// The 1-based line and column of byte `offset`; columns count characters (UTF-8 lead bytes), as
// the parser's positions do.
Position PositionOf(std::string_view text, size_t offset) {
  Position position{1, 1};
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++position.line;
      position.column = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) {
      ++position.column;
    }
  }
  return position;
}

absl::Status CheckEncoding(std::string_view text, std::string_view filename) {
  auto starts = [&](std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; };
  const char* bom =
      starts(std::string_view("\xff\xfe\0\0", 4)) || starts(std::string_view("\0\0\xfe\xff", 4))
          ? "UTF-32"
      : starts("\xff\xfe") || starts("\xfe\xff") ? "UTF-16"
                                                 : nullptr;
  if (bom != nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "recipe file '%s' is not UTF-8 text: it starts with a %s byte-order mark (save it as "
        "UTF-8)",
        filename, bom));
  }
  const size_t nul = text.find('\0');
  if (nul == std::string_view::npos) return absl::OkStatus();
  // UTF-16 or UTF-32 without a byte-order mark: ASCII text has a NUL in every 2nd or 4th byte.
  size_t nuls = 0;
  const size_t sample = std::min<size_t>(text.size(), 256);
  for (size_t i = 0; i < sample; ++i) nuls += text[i] == '\0' ? 1 : 0;
  const bool wide = sample >= 4 && nuls * 3 >= sample;
  return absl::InvalidArgumentError(
      absl::StrFormat("recipe file '%s' is not UTF-8 text: it has a NUL byte at %s%s", filename,
                      FormatWhere(filename, PositionOf(text, nul)),
                      wide ? " (it looks like UTF-16 or UTF-32 text: save it as UTF-8)" : ""));
}

// Records where each quoted scalar (tag "!") starts.
class QuotedScalars : public YAML::EventHandler {
 public:
  explicit QuotedScalars(std::string_view text) : text_(text) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t,
                const std::string&) override {
    if (tag == "!" && !unterminated_.has_value() && !Terminated(mark)) unterminated_ = mark;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  const std::optional<YAML::Mark>& unterminated() const { return unterminated_; }

 private:
  // Whether the quoted scalar opening at `mark` has its closing quote. A scalar that does not
  // start with a quote at the mark (a non-plain tag, a byte-order mark shifting positions) is not
  // judged.
  bool Terminated(const YAML::Mark& mark) const {
    if (mark.pos < 0 || static_cast<size_t>(mark.pos) >= text_.size()) return true;
    const char quote = text_[mark.pos];
    if (quote != '"' && quote != '\'') return true;
    for (size_t i = mark.pos + 1; i < text_.size(); ++i) {
      if (quote == '"' && text_[i] == '\\') {
        ++i;  // an escaped character, a quote included
      } else if (text_[i] == quote) {
        if (quote == '\'' && i + 1 < text_.size() && text_[i + 1] == '\'') {
          ++i;  // '' is a quote inside a single-quoted scalar
        } else {
          return true;
        }
      }
    }
    return false;
  }

  std::string_view text_;
  std::optional<YAML::Mark> unterminated_;
};

// Reads a string_view in place (an istringstream would copy the whole file).
class ViewBuffer : public std::streambuf {
 public:
  explicit ViewBuffer(std::string_view text) {
    char* begin = const_cast<char*>(text.data());  // only read
    setg(begin, begin, begin + text.size());
  }
};

absl::Status CheckQuotes(std::string_view text, std::string_view filename) {
  if (text.find_first_of("\"'") == std::string_view::npos) return absl::OkStatus();
  ViewBuffer buffer(text);
  std::istream in(&buffer);
  QuotedScalars scalars(text);
  try {
    // Two documents at most: the parse that follows refuses a second one, and on some broken
    // texts yaml-cpp 0.7 returns document after document without end (a 701-byte recipe ran for
    // minutes here: fuzz/corpus/job/timeout-many-documents).
    YAML::Parser parser(in);
    for (int documents = 0; documents < 2 && parser.HandleNextDocument(scalars); ++documents) {
    }
  } catch (const YAML::Exception&) {
    // Malformed YAML is reported by the parse that follows, with its own position.
  }
  if (!scalars.unterminated().has_value()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "invalid YAML in recipe: a quoted string is not closed before the end of the file (%s)",
      FormatWhere(filename, ToPosition(*scalars.unterminated()))));
}

}  // namespace

absl::Status CheckRecipeText(std::string_view text, std::string_view filename) {
  if (absl::Status encoding = CheckEncoding(text, filename); !encoding.ok()) return encoding;
  return CheckQuotes(text, filename);
}

}  // namespace nmesh::config::internal
