// Internal: typed, position-aware reading of yaml-cpp nodes for the recipe layer. Not installed;
// public headers never include yaml-cpp.
//
//   Value section(distributed_node, "distributed", "recipe.yaml", key_position);
//   NMESH_ASSIGN_OR_RETURN(std::vector<Entry> entries, section.Entries());
//   NMESH_ASSIGN_OR_RETURN(bool sp, entries[0].value.Bool());
//   // errors read "distributed.sequence_parallel must be a boolean, got 'maybe'
//   (recipe.yaml:4:22)"
//
// Scalars are typed the way PyYAML (YAML 1.1) types plain scalars, so recipes read as they do in
// the reference: quoted scalars are always strings; `none`/`None`/`null`/`~`/empty are null.
// Nodes come from LoadDocument (yaml_document.h); reading the children of one that was too large
// to build fails with TooLarge, naming the file.
#ifndef NMESH_CONFIG_INTERNAL_YAML_VALUE_H_
#define NMESH_CONFIG_INTERNAL_YAML_VALUE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "nmesh/config/dtype.h"
#include "nmesh/config/internal/yaml_document.h"
#include "yaml-cpp/mark.h"

namespace nmesh::config::internal {

// A 1-based line and column.
struct Position {
  int line = 0;
  int column = 0;
};

// Converts a yaml-cpp Mark (0-based) to a Position; a null mark gives {0, 0}.
Position ToPosition(const YAML::Mark& mark);

// `text` with bytes outside printable ASCII written as \xNN (for messages about binary input).
std::string Printable(std::string_view text);

// "file:line:col", or just "file" when the position is unknown.
std::string FormatWhere(std::string_view file, Position position);

// Lower bounds for integer fields.
enum class IntRule { kAny, kNonNegative, kPositive };

struct Entry;

// A YAML value with the dotted key it was found under and where it is.
class Value {
 public:
  // `fallback` is used when the node has no usable mark (e.g. an empty value).
  Value(DocNode node, std::string key, std::string_view file, Position fallback);

  const std::string& key() const { return key_; }
  std::string_view file() const { return file_; }
  Position position() const { return position_; }
  // "file:line:col" of the value.
  std::string Where() const { return FormatWhere(file_, position_); }

  // Null: a missing node, YAML null (`~`, `null`, empty) or the strings none/None/NONE/null.
  bool IsNull() const;
  bool IsMap() const { return node_.IsMap(); }
  bool IsList() const { return node_.IsSequence(); }
  bool IsScalar() const { return node_.IsScalar() && !IsNull(); }
  // The number of items of a list (or keys of a map), as written.
  size_t Size() const { return node_.size(); }
  // OK, or TooLarge() when the list or map was too large to build (its size is known, its items
  // are not): call before reading items with Item().
  absl::Status CheckBuilt() const;
  // InvalidArgument "<key> is too large to read: ... (<where>)".
  absl::Status TooLarge() const;
  // Item `i` of a list, keyed "<key>[i]".
  Value Item(size_t i) const;
  // The scalar's text (empty for non-scalars).
  std::string Text() const;
  // Whether the scalar is plain (unquoted, untagged or tagged with a core non-string tag).
  bool IsPlain() const;

  // The value as messages quote it: 2, 2.5, true, 'two', null, "a list [...]", "a map {...}".
  std::string Describe() const;

  // InvalidArgument "<key> must be <expected>, got <value> (<where>)".
  absl::Status Invalid(std::string_view expected) const;
  // InvalidArgument "<key>: <message> (<where>)".
  absl::Status Error(std::string_view message) const;

  // Typed reads; each fails with Invalid(<expected type>). Callers handle null first.
  absl::StatusOr<bool> Bool() const;
  absl::StatusOr<int64_t> Int(IntRule rule) const;
  absl::StatusOr<double> Number() const;
  absl::StatusOr<std::string> String() const;
  absl::StatusOr<std::vector<std::string>> StringList() const;
  absl::StatusOr<Dtype> DtypeValue() const;
  // The value as a JSON-like tree (scalars typed as above). Fails when more than `max_nodes`
  // values would be produced (aliases can make a small file expand exponentially) or when it
  // nests deeper than 512 levels (an alias can refer to an enclosing node).
  absl::StatusOr<nlohmann::json> Json(int64_t max_nodes) const;

  // The entries of a map in document order, `<<` merge keys expanded (explicit keys win).
  // Fails on a non-map, a non-scalar key or a duplicate key.
  absl::StatusOr<std::vector<Entry>> Entries() const;

 private:
  absl::StatusOr<std::vector<Entry>> EntriesImpl(int64_t& budget) const;
  absl::Status AppendEntries(std::vector<Entry>& out, int merge_depth, int64_t& budget) const;
  absl::StatusOr<nlohmann::json> JsonImpl(int64_t& budget, int depth) const;

  DocNode node_;
  std::string key_;
  std::string_view file_;
  Position position_;
};

// One key of a map.
struct Entry {
  std::string name;
  Position key_position;
  Value value;
};

}  // namespace nmesh::config::internal

#endif  // NMESH_CONFIG_INTERNAL_YAML_VALUE_H_
