// Internal: reads a recipe file's text, bounded, refusing what cannot be a recipe.
//
//   NMESH_ASSIGN_OR_RETURN(std::string text, ReadRecipeText("examples/fsdp2_tp2_cp2.yaml"));
//
// Thread-safe.
#ifndef NMESH_CONFIG_INTERNAL_RECIPE_FILE_H_
#define NMESH_CONFIG_INTERNAL_RECIPE_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace nmesh::config::internal {

// A recipe is a few KiB; anything this large is not one.
inline constexpr std::uintmax_t kMaxRecipeBytes = 64u << 20;

// The contents of `path`, which must be a regular file (or a link to one). Fails with
// InvalidArgument naming the path when it is missing, unreadable, not a regular file (a directory,
// a FIFO, a socket, a device such as /dev/zero or /dev/ptmx: never read, as reading a terminal or
// a FIFO waits for ever), or longer than kMaxRecipeBytes (checked before reading and while
// reading).
absl::StatusOr<std::string> ReadRecipeText(const std::string& path);

}  // namespace nmesh::config::internal

#endif  // NMESH_CONFIG_INTERNAL_RECIPE_FILE_H_
