// Internal: checks that a recipe's text is what YAML's parser can read faithfully, before it is
// parsed: UTF-8 text without NUL bytes, and no quoted string left open at the end of the file
// (yaml-cpp takes the rest of the file as the string's value instead of failing).
//
//   NMESH_RETURN_IF_ERROR(CheckRecipeText(text, "recipe.yaml"));
//
// Thread-safe.
#ifndef NMESH_CONFIG_INTERNAL_RECIPE_TEXT_H_
#define NMESH_CONFIG_INTERNAL_RECIPE_TEXT_H_

#include <string_view>

#include "absl/status/status.h"

namespace nmesh::config::internal {

// Fails with InvalidArgument naming `filename` when `text` starts with a UTF-16 or UTF-32
// byte-order mark, has a NUL byte (said with its file:line:col, and that the file looks like
// UTF-16 or UTF-32 when the NULs fall every second or fourth byte), or has a quoted scalar that
// the end of the file leaves open (file:line:col of its opening quote). A UTF-8 byte-order mark is
// accepted. Malformed YAML otherwise passes: the parser reports it.
absl::Status CheckRecipeText(std::string_view text, std::string_view filename);

}  // namespace nmesh::config::internal

#endif  // NMESH_CONFIG_INTERNAL_RECIPE_TEXT_H_
