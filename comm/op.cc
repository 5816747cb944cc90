#include "nmesh/comm/op.h"

#include <cstddef>

namespace nmesh::comm {
namespace {

// The table is indexed by the enum: each entry must sit at its own value.
constexpr bool TableInEnumOrder() {
  for (size_t i = 0; i < std::size(kOpTable); ++i) {
    if (static_cast<size_t>(kOpTable[i].kind) != i) return false;
  }
  return true;
}
static_assert(TableInEnumOrder(), "kOpTable must list the operations in OpKind order");
static_assert(std::size(kOpTable) == static_cast<size_t>(OpKind::kSendRecv) + 1,
              "kOpTable must have an entry for every OpKind");

}  // namespace

std::optional<OpKind> OpKindFromName(std::string_view name) {
  for (const OpTraits& traits : kOpTable) {
    if (traits.name == name) return traits.kind;
  }
  return std::nullopt;
}

}  // namespace nmesh::comm
