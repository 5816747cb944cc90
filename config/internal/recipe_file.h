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

// The contents of `path`. Fails with InvalidArgument naming the path when it is missing, a
// directory, a FIFO or a socket (never opened: a FIFO with no writer would block), unreadable, or
// longer than kMaxRecipeBytes (checked before reading where the size is known, and while reading
// for devices and pipes).
absl::StatusOr<std::string> ReadRecipeText(const std::string& path);

}  // namespace nmesh::config::internal

#endif  // NMESH_CONFIG_INTERNAL_RECIPE_FILE_H_
