#include "nmesh/config/internal/recipe_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_format.h"

namespace nmesh::config::internal {

absl::StatusOr<std::string> ReadRecipeText(const std::string& path) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (error || !std::filesystem::exists(status)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read recipe file '%s': %s", path,
                        error ? error.message() : std::string("No such file or directory")));
  }
  if (std::filesystem::is_directory(status)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read recipe file '%s': it is a directory", path));
  }
  // A FIFO with no writer blocks the open for ever (and a socket cannot be opened); devices
  // such as /dev/null are read, bounded, below.
  if (std::filesystem::is_fifo(status) || std::filesystem::is_socket(status)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read recipe file '%s': it is a %s, not a regular file", path,
                        std::filesystem::is_fifo(status) ? "FIFO (named pipe)" : "socket"));
  }
  const std::uintmax_t bytes = std::filesystem::file_size(path, error);
  if (!error && bytes > kMaxRecipeBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("recipe file '%s' is %d bytes, more than the %d a recipe may have", path,
                        bytes, kMaxRecipeBytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read recipe file '%s': %s", path, std::strerror(errno)));
  }
  // Bounded read: a device or a pipe (/dev/zero, /dev/stdin) has no size to check beforehand.
  std::string text;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof(chunk)) || in.gcount() > 0) {
    text.append(chunk, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxRecipeBytes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "recipe file '%s' has more than the %d bytes a recipe may have", path, kMaxRecipeBytes));
    }
  }
  if (in.bad()) {
    return absl::InvalidArgumentError(absl::StrFormat("cannot read recipe file '%s'", path));
  }
  return text;
}

}  // namespace nmesh::config::internal
