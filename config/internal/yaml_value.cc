#include "nmesh/config/internal/yaml_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <unordered_map>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/status_macros.h"

namespace nmesh::config::internal {
namespace {

constexpr size_t kMaxQuotedChars = 60;
constexpr std::string_view kFloatTag = "tag:yaml.org,2002:float";
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

enum class IntParse { kNotAnInteger, kOutOfRange, kOk };

// Whether `t` is one or more of `allowed` digits and underscores.
bool AllOf(std::string_view t, std::string_view allowed) {
  if (t.empty()) return false;
  for (char c : t) {
    if (c != '_' && allowed.find(c) == std::string_view::npos) return false;
  }
  return true;
}

// Adds digit `d` in `base` to `value`; false on overflow past 2^63.
bool Accumulate(uint64_t& value, uint64_t base, uint64_t d) {
  constexpr uint64_t kLimit = uint64_t{1} << 63;  // |INT64_MIN|
  if (value > (kLimit - d) / base) return false;
  value = value * base + d;
  return true;
}

uint64_t DigitValue(char c) {
  if (c >= '0' && c <= '9') return static_cast<uint64_t>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<uint64_t>(c - 'a' + 10);
  return static_cast<uint64_t>(c - 'A' + 10);
}

// A YAML 1.1 integer as PyYAML resolves and constructs a plain scalar (resolver.py, int):
//   [-+]?0b[0-1_]+ | [-+]?0[0-7_]+ (octal: 010 is 8) | [-+]?(0|[1-9][0-9_]*) |
//   [-+]?0x[0-9a-fA-F_]+ | [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+ (base 60: 1:30 is 90),
// underscores ignored. Anything else (09, 0o10, 0X1F, 1e3) is not an integer.
IntParse ParseInteger(std::string_view text, int64_t& out) {
  std::string_view t = text;
  bool negative = false;
  if (!t.empty() && (t.front() == '+' || t.front() == '-')) {
    negative = t.front() == '-';
    t.remove_prefix(1);
  }
  if (t.empty()) return IntParse::kNotAnInteger;
  uint64_t magnitude = 0;
  auto digits = [&](std::string_view d, uint64_t base) {
    bool any = false;
    for (char c : d) {
      if (c == '_') continue;
      any = true;
      if (!Accumulate(magnitude, base, DigitValue(c))) return IntParse::kOutOfRange;
    }
    return any ? IntParse::kOk : IntParse::kNotAnInteger;  // "0b_" fails in PyYAML too
  };
  IntParse parsed = IntParse::kNotAnInteger;
  if (t == "0") {
    parsed = IntParse::kOk;
  } else if (t.substr(0, 2) == "0b" && AllOf(t.substr(2), "01")) {
    parsed = digits(t.substr(2), 2);
  } else if (t.substr(0, 2) == "0x" && AllOf(t.substr(2), "0123456789abcdefABCDEF")) {
    parsed = digits(t.substr(2), 16);
  } else if (t.front() == '0' && AllOf(t.substr(1), "01234567")) {
    parsed = digits(t, 8);
  } else if (t.front() >= '1' && t.front() <= '9') {
    const size_t colon = t.find(':');
    if (colon == std::string_view::npos) {
      if (AllOf(t, "0123456789")) parsed = digits(t, 10);
    } else if (AllOf(t.substr(0, colon), "0123456789")) {
      // Sexagesimal: the head in base 10, then each ":[0-5]?[0-9]" part as a base-60 digit.
      parsed = digits(t.substr(0, colon), 10);
      std::string_view rest = t.substr(colon);
      while (parsed == IntParse::kOk && !rest.empty()) {
        rest.remove_prefix(1);  // ':'
        const size_t next = std::min(rest.find(':'), rest.size());
        const std::string_view part = rest.substr(0, next);
        rest.remove_prefix(next);
        const bool ok = (part.size() == 1 && part[0] >= '0' && part[0] <= '9') ||
                        (part.size() == 2 && part[0] >= '0' && part[0] <= '5' && part[1] >= '0' &&
                         part[1] <= '9');
        if (!ok) return IntParse::kNotAnInteger;
        const uint64_t digit = static_cast<uint64_t>(std::stoi(std::string(part)));
        if (!Accumulate(magnitude, 60, digit)) parsed = IntParse::kOutOfRange;
      }
    }
  }
  if (parsed != IntParse::kOk) return parsed;
  if (!negative && magnitude > static_cast<uint64_t>(INT64_MAX)) return IntParse::kOutOfRange;
  out = negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
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

Value::Value(DocNode node, std::string key, std::string_view file, Position fallback)
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

absl::Status Value::CheckBuilt() const { return node_.partial() ? TooLarge() : absl::OkStatus(); }

absl::Status Value::TooLarge() const {
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s is too large to read: the parts of the recipe nmesh reads hold more than %d values (%s)",
      key_, kMaxBuiltNodes, Where()));
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
  if (node_.Tag() == kFloatTag) return "!!float " + Abbreviate(text, kMaxQuotedChars);
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
  // `!!float 2` is the float 2.0 (as PyYAML constructs it), rejected like `2.0`.
  const bool float_tagged = node_.Tag() == kFloatTag;
  const IntParse parsed = IsScalar() && IsPlain() && !float_tagged ? ParseInteger(Text(), value)
                                                                   : IntParse::kNotAnInteger;
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
  NMESH_RETURN_IF_ERROR(CheckBuilt());
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
    NMESH_RETURN_IF_ERROR(CheckBuilt());
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
    if (ParseInteger(text, integer) == IntParse::kOk) {
      if (node_.Tag() == kFloatTag) return nlohmann::json(static_cast<double>(integer));
      return nlohmann::json(integer);
    }
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
  NMESH_RETURN_IF_ERROR(CheckBuilt());
  // Names already in `out`, by index: a linear search per key made 100k keys take seconds.
  std::unordered_map<std::string, size_t> index;
  index.reserve(out.size() + node_.size());
  for (size_t i = 0; i < out.size(); ++i) index.emplace(out[i].name, i);
  auto find = [&](const std::string& name) {
    auto it = index.find(name);
    return it == index.end() ? out.end() : out.begin() + static_cast<std::ptrdiff_t>(it->second);
  };
  auto add = [&](Entry entry) {
    index.emplace(entry.name, out.size());
    out.push_back(std::move(entry));
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
    add(Entry{name, key_position, std::move(value)});
  }
  for (const Value& merge : merges) {
    std::vector<Value> sources;
    if (merge.IsList()) {
      NMESH_RETURN_IF_ERROR(merge.CheckBuilt());
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
        add(std::move(entry));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace nmesh::config::internal
