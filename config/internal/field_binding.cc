#include "nmesh/config/internal/field_binding.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_join.h"
#include "nmesh/base/abbreviate.h"

namespace nmesh::config::internal {

bool IsMetaKey(std::string_view name) {
  return name == "_target_" || name == "_recursive_" || name == "_convert_";
}

const Entry* Find(const std::vector<Entry>& entries, std::string_view name) {
  for (const Entry& entry : entries) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

bool IsString(const Value& v) { return v.IsScalar() && !v.Bool().ok() && !v.Number().ok(); }

std::string PyTypeName(const Value& v) {
  if (v.IsNull()) return "NoneType";
  if (v.IsList()) return "list";
  if (v.IsMap()) return "dict";
  if (v.Bool().ok()) return "bool";
  if (v.Int(IntRule::kAny).ok()) return "int";
  if (v.Number().ok()) return "float";
  return "str";
}

absl::Status KeyError(const Value& v, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrFormat("%s%s (%s)", v.key(), message, v.Where()));
}

absl::Status UnknownOptionsError(std::string_view prefix, const std::vector<const Entry*>& unknown,
                                 std::string_view file, std::string_view suffix) {
  std::vector<std::string> names;
  for (const Entry* entry : unknown) {
    names.push_back(absl::StrFormat("'%s'", Abbreviate(entry->name)));
  }
  std::sort(names.begin(), names.end());
  // A long list is cut too (long names are above): the message stays a line.
  constexpr size_t kMaxNames = 20;
  const size_t total = names.size();
  if (total > kMaxNames) names.resize(kMaxNames);
  if (total > kMaxNames) names.push_back(absl::StrFormat("... (%d in all)", total));
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: [%s] (%s)%s", prefix, absl::StrJoin(names, ", "),
                      FormatWhere(file, unknown.front()->key_position), suffix));
}

absl::StatusOr<std::vector<Entry>> KnownEntries(const Value& v,
                                                const std::vector<std::string_view>& known) {
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries, v.Entries());
  std::vector<const Entry*> unknown;
  for (const Entry& entry : entries) {
    if (IsMetaKey(entry.name)) continue;
    if (std::find(known.begin(), known.end(), entry.name) == known.end()) unknown.push_back(&entry);
  }
  if (!unknown.empty()) {
    return UnknownOptionsError(absl::StrFormat("Unknown options for %s", v.key()), unknown,
                               v.file());
  }
  return entries;
}

absl::Status Read(const Value& v, bool& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.Bool());
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<bool>& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.Bool());
  return absl::OkStatus();
}
absl::Status Read(const Value& v, int64_t& out, IntRule rule) {
  NMESH_ASSIGN_OR_RETURN(out, v.Int(rule));
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<int64_t>& out, IntRule rule) {
  NMESH_ASSIGN_OR_RETURN(out, v.Int(rule));
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<double>& out) {
  NMESH_ASSIGN_OR_RETURN(double number, v.Number());
  if (number <= 0) return v.Invalid("a positive number");
  out = number;
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<std::string>& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.String());
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<Dtype>& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.DtypeValue());
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<std::vector<std::string>>& out) {
  NMESH_ASSIGN_OR_RETURN(out, v.StringList());
  return absl::OkStatus();
}
absl::Status Read(const Value& v, std::optional<std::vector<std::vector<std::string>>>& out) {
  if (!v.IsList()) return v.Invalid("a list of lists of strings");
  NMESH_RETURN_IF_ERROR(v.CheckBuilt());
  std::vector<std::vector<std::string>> parts;
  // Aliases can repeat a long list in every part: the strings are bounded as the nodes are.
  size_t strings = 0;
  for (size_t i = 0; i < v.Size(); ++i) {
    NMESH_ASSIGN_OR_RETURN(std::vector<std::string> part, v.Item(i).StringList());
    strings += part.size();
    if (strings > static_cast<size_t>(kMaxBuiltNodes)) return v.TooLarge();
    parts.push_back(std::move(part));
  }
  out = std::move(parts);
  return absl::OkStatus();
}

}  // namespace nmesh::config::internal
