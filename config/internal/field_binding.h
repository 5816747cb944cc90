// Internal: binds the keys of a YAML map to the fields of a config struct. A table lists one
// Field per key, each with the function that reads a (non-null) value into the struct; ReadStruct
// reads a map through a table, refusing keys the table does not have.
//
//   const Fields<OffloadPolicy>& OffloadFieldTable() {
//     using C = OffloadPolicy;
//     static const auto* fields = new Fields<C>{NMESH_FIELD(pin_memory)};
//     return *fields;
//   }
//   OffloadPolicy policy;
//   NMESH_RETURN_IF_ERROR(ReadStruct(value, OffloadFieldTable(), policy));
//   // "Unknown options for distributed.offload_policy: ['pin'] (recipe.yaml:5:5)"
//
// Read(value, member, ...) overloads read one field type; tables for other config types add
// their own overloads in this namespace (found through the Value argument). Thread-safe once the
// tables are built (function-local statics).
#ifndef NMESH_CONFIG_INTERNAL_FIELD_BINDING_H_
#define NMESH_CONFIG_INTERNAL_FIELD_BINDING_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/config/dtype.h"
#include "nmesh/config/internal/yaml_value.h"

namespace nmesh::config::internal {

// One config field: its YAML key and how a value is read into a `C`.
template <typename C>
struct Field {
  std::string_view name;
  std::function<absl::Status(const Value&, C&)> read;
};
template <typename C>
using Fields = std::vector<Field<C>>;

// `_target_`, `_recursive_` and `_convert_`: keys every map may have, dropped silently.
bool IsMetaKey(std::string_view name);

// The entry named `name`, or nullptr.
const Entry* Find(const std::vector<Entry>& entries, std::string_view name);

// Whether a YAML value is a string as Python sees it after loading (not null, bool or number).
bool IsString(const Value& v);

// The Python type name of a loaded YAML value, as the reference's messages print it ("NoneType",
// "list", "dict", "bool", "int", "float", "str").
std::string PyTypeName(const Value& v);

// InvalidArgument "<key><message> (<where>)": the reference's text follows the key directly.
absl::Status KeyError(const Value& v, std::string_view message);

// InvalidArgument "<prefix>: ['a', 'b'] (<file:line:col of the first unknown key>)<suffix>", the
// names sorted, each abbreviated, at most 20 of them. `unknown` is in document order, not empty.
absl::Status UnknownOptionsError(std::string_view prefix, const std::vector<const Entry*>& unknown,
                                 std::string_view file, std::string_view suffix = "");

// The entries of the map `v` that are in `known` (meta keys dropped); any other key fails with
// "Unknown options for <key>: [...]".
absl::StatusOr<std::vector<Entry>> KnownEntries(const Value& v,
                                                const std::vector<std::string_view>& known);

// Reads of the plain field types. Each fails with the value's Invalid(<expected>) message.
absl::Status Read(const Value& v, bool& out);
absl::Status Read(const Value& v, std::optional<bool>& out);
absl::Status Read(const Value& v, int64_t& out, IntRule rule);
absl::Status Read(const Value& v, std::optional<int64_t>& out, IntRule rule);
// A positive number.
absl::Status Read(const Value& v, std::optional<double>& out);
absl::Status Read(const Value& v, std::optional<std::string>& out);
absl::Status Read(const Value& v, std::optional<Dtype>& out);
absl::Status Read(const Value& v, std::optional<std::vector<std::string>>& out);
absl::Status Read(const Value& v, std::optional<std::vector<std::vector<std::string>>>& out);

// A field stored in `C::*member`, read by the Read overload for its type (with `extra`, e.g. an
// IntRule); a null value keeps the default.
template <typename C, typename T, typename... Extra>
Field<C> Member(std::string_view name, T C::*member, Extra... extra) {
  return {name, [member, extra...](const Value& v, C& config) -> absl::Status {
            if (v.IsNull()) return absl::OkStatus();
            return Read(v, config.*member, extra...);
          }};
}

// A field whose YAML key is its C++ name, in a table where `C` names the config type.
#define NMESH_FIELD(name, ...) Member(#name, &C::name __VA_OPT__(, ) __VA_ARGS__)

template <typename C>
const Field<C>* FindField(const Fields<C>& fields, std::string_view name) {
  for (const Field<C>& field : fields) {
    if (field.name == name) return &field;
  }
  return nullptr;
}

// Entries that are neither fields nor meta keys nor `also_known`, in document order.
template <typename C>
std::vector<const Entry*> UnknownEntries(const std::vector<Entry>& entries, const Fields<C>& fields,
                                         const std::vector<std::string_view>& also_known = {}) {
  std::vector<const Entry*> unknown;
  for (const Entry& entry : entries) {
    if (IsMetaKey(entry.name) || FindField(fields, entry.name) != nullptr) continue;
    bool known = false;
    for (std::string_view name : also_known) known = known || name == entry.name;
    if (!known) unknown.push_back(&entry);
  }
  return unknown;
}

// Reads every entry that is a field into `out`, in document order; other entries are skipped.
template <typename C>
absl::Status ReadFields(const std::vector<Entry>& entries, const Fields<C>& fields, C& out) {
  for (const Entry& entry : entries) {
    if (const Field<C>* field = FindField(fields, entry.name)) {
      NMESH_RETURN_IF_ERROR(field->read(entry.value, out));
    }
  }
  return absl::OkStatus();
}

// A nested map (mp_policy, offload_policy, ...): unknown keys are errors ("Unknown options for
// <key>: [...]"), then the fields are read into `out`.
template <typename C>
absl::Status ReadStruct(const Value& v, const Fields<C>& fields, C& out) {
  NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries, v.Entries());
  std::vector<const Entry*> unknown = UnknownEntries(entries, fields);
  if (!unknown.empty()) {
    return UnknownOptionsError(absl::StrFormat("Unknown options for %s", v.key()), unknown,
                               v.file());
  }
  return ReadFields(entries, fields, out);
}

}  // namespace nmesh::config::internal

#endif  // NMESH_CONFIG_INTERNAL_FIELD_BINDING_H_
