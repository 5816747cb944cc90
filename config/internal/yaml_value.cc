#include "nmesh/config/internal/yaml_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/status_macros.h"

namespace nmesh::config::internal {
namespace {

constexpr size_t kMaxQuotedChars = 60;
// Deeper than any real recipe; keeps recursion over (possibly self-referencing) nodes bounded.
constexpr int kMaxDepth = 512;
// Bounds the work on alias-expanded trees (a few KiB of YAML can name billions of values).
constexpr int64_t kMaxValues = 100000;

bool OneOf(std::string_view text, std::initializer_list<std::string_view> options) {
  return std::find(options.begin(), options.end(), text) != options.end();
}

// PyYAML's YAML 1.1 booleans.
bool IsTrueText(std::string_view t) {
  return OneOf(t, {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"});
}
bool IsFalseText(std::string_view t) {
  return OneOf(t, {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"});
}

bool IsDigits(std::string_view t, bool hex) {
  if (t.empty()) return false;
  for (char c : t) {
    const bool ok = (c >= '0' && c <= '9') || c == '_' ||
                    (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
    if (!ok) return false;
  }
  return t.front() != '_';
}

enum class IntParse { kNotAnInteger, kOutOfRange, kOk };

// Decimal or 0x-hexadecimal integers with optional sign and `_` separators, as YAML 1.1 writes
// them.
IntParse ParseInteger(std::string_view text, int64_t& out) {
  std::string_view t = text;
  bool negative = false;
  if (!t.empty() && (t.front() == '+' || t.front() == '-')) {
    negative = t.front() == '-';
    t.remove_prefix(1);
  }
  int base = 10;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    base = 16;
    t.remove_prefix(2);
  }
  if (!IsDigits(t, base == 16)) return IntParse::kNotAnInteger;
  std::string digits = negative ? "-" : "";
  for (char c : t) {
    if (c != '_') digits.push_back(c);
  }
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out, base);
  if (ec == std::errc::result_out_of_range) return IntParse::kOutOfRange;
  if (ec != std::errc() || end != digits.data() + digits.size()) return IntParse::kNotAnInteger;
  return IntParse::kOk;
}

// [-+]? digits? (. digits?)? ([eE] [-+]? digits)? with at least one mantissa digit.
bool ParseFloat(std::string_view text, double& out) {
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '_')) ++i;
    return i - start;
  };
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  size_t mantissa = digits();
  if (i < text.size() && text[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return false;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  if (i != text.size()) return false;
  std::string cleaned;
  for (char c : text) {
    if (c != '_' && c != '+') cleaned.push_back(c);
  }
  const auto [end, ec] = std::from_chars(cleaned.data(), cleaned.data() + cleaned.size(), out);
  return ec == std::errc() && end == cleaned.data() + cleaned.size() && std::isfinite(out);
}

std::string Quote(std::string_view text) {
  std::string escaped = absl::CHexEscape(std::string(text.substr(0, kMaxQuotedChars)));
  if (text.size() > kMaxQuotedChars) escaped += "...";
  return absl::StrFormat("'%s'", escaped);
}

}  // namespace

std::string Printable(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, absl::StrFormat("\\x%02x", c));
    }
  }
  return out;
}

Position ToPosition(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return {};
  return {mark.line + 1, mark.column + 1};
}

std::string FormatWhere(std::string_view file, Position position) {
  if (position.line <= 0) return std::string(file);
  return absl::StrFormat("%s:%d:%d", file, position.line, position.column);
}

Value::Value(YAML::Node node, std::string key, std::string_view file, Position fallback)
    : node_(std::move(node)), key_(std::move(key)), file_(file), position_(fallback) {
  if (node_.IsDefined()) {
    const Position own = ToPosition(node_.Mark());
    // yaml-cpp marks an empty value (`tp_size:`) at the next token, often on a later line; the
    // key's position is the honest place to point at then.
    const bool empty_value = node_.IsNull() && own.line != fallback.line && fallback.line > 0;
    if (own.line > 0 && !empty_value) position_ = own;
  }
}

bool Value::IsNull() const {
  if (!node_.IsDefined() || node_.IsNull()) return true;
  if (!node_.IsScalar()) return false;
  const std::string& text = node_.Scalar();
  // NeMo's ConfigNode turns the strings none/None into None; a quoted "null" stays a string.
  if (OneOf(text, {"none", "None"})) return true;
  return IsPlain() && text == "~";
}

Value Value::Item(size_t i) const {
  return Value(node_[i], absl::StrFormat("%s[%d]", key_, i), file_, position_);
}

std::string Value::Text() const { return node_.IsScalar() ? node_.Scalar() : std::string(); }

bool Value::IsPlain() const {
  const std::string& tag = node_.Tag();
  return tag == "?" || tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
         tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null";
}

std::string Value::Describe() const {
  if (IsNull()) return "null";
  if (node_.IsSequence()) {
    return absl::StrFormat("a list of %d item%s", node_.size(), node_.size() == 1 ? "" : "s");
  }
  if (node_.IsMap()) {
    return absl::StrFormat("a map of %d key%s", node_.size(), node_.size() == 1 ? "" : "s");
  }
  const std::string text = Text();
  int64_t integer = 0;
  double number = 0;
  if (IsPlain() &&
      (IsTrueText(text) || IsFalseText(text) ||
       ParseInteger(text, integer) != IntParse::kNotAnInteger || ParseFloat(text, number))) {
    return text.size() <= kMaxQuotedChars ? text : text.substr(0, kMaxQuotedChars) + "...";
  }
  return Quote(text);
}

absl::Status Value::Invalid(std::string_view expected) const {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s must be %s, got %s (%s)", key_, expected, Describe(), Where()));
}

absl::Status Value::Error(std::string_view message) const {
  return absl::InvalidArgumentError(absl::StrFormat("%s: %s (%s)", key_, message, Where()));
}

absl::StatusOr<bool> Value::Bool() const {
  if (IsScalar() && IsPlain()) {
    if (IsTrueText(Text())) return true;
    if (IsFalseText(Text())) return false;
  }
  return Invalid("a boolean");
}

absl::StatusOr<int64_t> Value::Int(IntRule rule) const {
  std::string_view expected = "an integer";
  if (rule == IntRule::kNonNegative) expected = "a non-negative integer";
  if (rule == IntRule::kPositive) expected = "a positive integer";
  int64_t value = 0;
  const IntParse parsed =
      IsScalar() && IsPlain() ? ParseInteger(Text(), value) : IntParse::kNotAnInteger;
  if (parsed == IntParse::kOutOfRange) {
    return absl::InvalidArgumentError(absl::StrFormat("%s must be %s, got %s (out of range) (%s)",
                                                      key_, expected, Describe(), Where()));
  }
  if (parsed != IntParse::kOk || (rule == IntRule::kNonNegative && value < 0) ||
      (rule == IntRule::kPositive && value <= 0)) {
    return Invalid(expected);
  }
  return value;
}

absl::StatusOr<double> Value::Number() const {
  int64_t integer = 0;
  double number = 0;
  if (IsScalar() && IsPlain()) {
    if (ParseInteger(Text(), integer) == IntParse::kOk) return static_cast<double>(integer);
    if (ParseFloat(Text(), number)) return number;
  }
  return Invalid("a number");
}

absl::StatusOr<std::string> Value::String() const {
  if (IsScalar()) return Text();
  return Invalid("a string");
}

absl::StatusOr<std::vector<std::string>> Value::StringList() const {
  if (!node_.IsSequence()) return Invalid("a list of strings");
  std::vector<std::string> items;
  for (size_t i = 0; i < node_.size(); ++i) {
    const Value item = Item(i);
    if (!item.IsScalar()) return item.Invalid("a string");
    items.push_back(item.Text());
  }
  return items;
}

absl::StatusOr<Dtype> Value::DtypeValue() const {
  if (IsScalar()) {
    absl::StatusOr<Dtype> dtype = ParseDtype(Text());
    if (dtype.ok()) return dtype;
    if (!Bool().ok() && !Number().ok()) {  // a string, as dtype_from_str sees it
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: %s (%s)", key_, dtype.status().message(), Where()));
    }
  }
  return Invalid(
      "a dtype (bf16, bfloat16, fp16, float16, half, fp32, float32 or float, optionally prefixed "
      "'torch.')");
}

absl::StatusOr<nlohmann::json> Value::Json(int64_t max_nodes) const {
  int64_t budget = max_nodes;
  absl::StatusOr<nlohmann::json> json = JsonImpl(budget, /*depth=*/0);
  // Report limits against this key: the nested keys of a self-referencing alias grow without end.
  if (json.status().code() == absl::StatusCode::kResourceExhausted) {
    return Error(
        absl::StrFormat("more than %d values or %d levels of nesting after expanding aliases",
                        max_nodes, kMaxDepth));
  }
  return json;
}

absl::StatusOr<nlohmann::json> Value::JsonImpl(int64_t& budget, int depth) const {
  // yaml-cpp bounds the nesting it parses, but an alias can refer to an enclosing node.
  if (depth > kMaxDepth || --budget < 0) return absl::ResourceExhaustedError("too large");
  if (IsNull()) return nlohmann::json(nullptr);
  if (node_.IsSequence()) {
    nlohmann::json array = nlohmann::json::array();
    for (size_t i = 0; i < node_.size(); ++i) {
      NMESH_ASSIGN_OR_RETURN(nlohmann::json converted, Item(i).JsonImpl(budget, depth + 1));
      array.push_back(std::move(converted));
    }
    return array;
  }
  if (node_.IsMap()) {
    NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries, EntriesImpl(budget));
    nlohmann::json object = nlohmann::json::object();
    for (const Entry& entry : entries) {
      NMESH_ASSIGN_OR_RETURN(object[entry.name], entry.value.JsonImpl(budget, depth + 1));
    }
    return object;
  }
  const std::string text = Text();
  if (IsPlain()) {
    if (IsTrueText(text)) return nlohmann::json(true);
    if (IsFalseText(text)) return nlohmann::json(false);
    int64_t integer = 0;
    if (ParseInteger(text, integer) == IntParse::kOk) return nlohmann::json(integer);
    double number = 0;
    if (ParseFloat(text, number)) return nlohmann::json(number);
  }
  return nlohmann::json(text);
}

absl::StatusOr<std::vector<Entry>> Value::Entries() const {
  int64_t budget = kMaxValues;
  absl::StatusOr<std::vector<Entry>> entries = EntriesImpl(budget);
  if (entries.status().code() == absl::StatusCode::kResourceExhausted) {
    return Error(
        absl::StrFormat("more than %d keys or %d levels of merge keys (<<) after expanding aliases",
                        kMaxValues, kMaxDepth));
  }
  return entries;
}

absl::StatusOr<std::vector<Entry>> Value::EntriesImpl(int64_t& budget) const {
  if (!node_.IsMap()) return Invalid("a map");
  std::vector<Entry> entries;
  NMESH_RETURN_IF_ERROR(AppendEntries(entries, /*merge_depth=*/0, budget));
  return entries;
}

absl::Status Value::AppendEntries(std::vector<Entry>& out, int merge_depth, int64_t& budget) const {
  // Aliases can make a map merge itself, or fan out exponentially; real recipes nest merges a
  // level or two.
  budget -= static_cast<int64_t>(node_.size());
  if (merge_depth > kMaxDepth || budget < 0) return absl::ResourceExhaustedError("too large");
  auto find = [&out](std::string_view name) {
    return std::find_if(out.begin(), out.end(), [&](const Entry& e) { return e.name == name; });
  };
  std::vector<Value> merges;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const Position key_position = ToPosition(it->first.Mark());
    if (!it->first.IsScalar() && !it->first.IsNull()) {
      return absl::InvalidArgumentError(absl::StrFormat("%s has a key that is not a string (%s)",
                                                        key_, FormatWhere(file_, key_position)));
    }
    const std::string name = it->first.IsNull() ? "null" : it->first.Scalar();
    const std::string child_key = absl::StrFormat("%s.%s", key_, name);
    Value value(it->second, child_key, file_, key_position);
    if (name == "<<" && it->first.Tag() == "?") {
      merges.push_back(std::move(value));
      continue;
    }
    const auto existing = find(name);
    if (existing != out.end()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("duplicate key %s (%s); first defined at line %d", child_key,
                          FormatWhere(file_, key_position), existing->key_position.line));
    }
    out.push_back(Entry{name, key_position, std::move(value)});
  }
  for (const Value& merge : merges) {
    std::vector<Value> sources;
    if (merge.IsList()) {
      for (size_t i = 0; i < merge.node_.size(); ++i) {
        sources.emplace_back(merge.node_[i], merge.key_, file_, merge.position_);
      }
    } else {
      sources.push_back(merge);
    }
    for (const Value& source : sources) {
      if (!source.IsMap()) return source.Invalid("a map (or a list of maps) to merge");
      std::vector<Entry> merged;
      NMESH_RETURN_IF_ERROR(source.AppendEntries(merged, merge_depth + 1, budget));
      for (Entry& entry : merged) {
        // Keys written in this map, or merged from an earlier source, win.
        if (find(entry.name) != out.end()) continue;
        entry.value = Value(entry.value.node_, absl::StrFormat("%s.%s", key_, entry.name), file_,
                            entry.value.position_);
        out.push_back(std::move(entry));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace nmesh::config::internal
