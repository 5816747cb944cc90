// One table per enum for its names, so that printing a value and parsing a name cannot disagree,
// and a message listing the accepted names is built from the same table:
//
//   enum class Placement { kAsLaunched, kPack };
//   constexpr NamedValue<Placement> kPlacementNames[] = {
//       {Placement::kAsLaunched, "as-launched"}, {Placement::kPack, "pack"}};
//   NameOf<Placement>(kPlacementNames, Placement::kPack);        // "pack"
//   ValueNamed<Placement>(kPlacementNames, "pack");              // Placement::kPack
//   ValueNamed<Placement>(kPlacementNames, "bogus");             // std::nullopt
//   NameList<Placement>(kPlacementNames);                        // "as-launched or pack"
//   NameList<Placement>(kPlacementNames, ", ");                  // "as-launched, pack"
//
// The callers keep their own messages (each names its flag or key); only the lookups and the list
// are shared. Pure functions; thread-safe.
#ifndef NMESH_BASE_ENUM_NAMES_H_
#define NMESH_BASE_ENUM_NAMES_H_

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace nmesh {

// One entry of an enum's name table.
template <typename E>
struct NamedValue {
  E value;
  std::string_view name;
};

// The name of `value` in `table`; `fallback` when the table has no entry for it (a value cast from
// a bad integer).
template <typename E>
constexpr std::string_view NameOf(std::span<const NamedValue<E>> table, E value,
                                  std::string_view fallback = "unknown") {
  for (const NamedValue<E>& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return fallback;
}

// The value named `name` (exact match); std::nullopt for any other name.
template <typename E>
constexpr std::optional<E> ValueNamed(std::span<const NamedValue<E>> table, std::string_view name) {
  for (const NamedValue<E>& entry : table) {
    if (entry.name == name) return entry.value;
  }
  return std::nullopt;
}

// The names in table order, joined by ", " and, before the last one, by `last_separator`:
// "a, b or c" by default, "a, b, c" with ", ".
template <typename E>
std::string NameList(std::span<const NamedValue<E>> table,
                     std::string_view last_separator = " or ") {
  std::string text;
  for (size_t i = 0; i < table.size(); ++i) {
    if (i > 0) text += (i + 1 == table.size()) ? last_separator : std::string_view(", ");
    text += table[i].name;
  }
  return text;
}

}  // namespace nmesh

#endif  // NMESH_BASE_ENUM_NAMES_H_
