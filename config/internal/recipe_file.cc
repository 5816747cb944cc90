#include "nmesh/config/internal/recipe_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "nmesh/base/abbreviate.h"

namespace nmesh::config::internal {
namespace {

// What a file that is not a regular file is, for the message; "" for a regular file.
const char* NotRegularKind(mode_t mode) {
  if (S_ISREG(mode)) return "";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

absl::Status NotRegularError(const std::string& path, mode_t mode) {
  const char* kind = NotRegularKind(mode);
  if (S_ISDIR(mode)) {
    return absl::InvalidArgumentError(absl::StrFormat("cannot read recipe file '%s': it is %s",
                                                      Abbreviate(path, kMaxQuotedPathBytes), kind));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("cannot read recipe file '%s': it is %s, not a regular file",
                      Abbreviate(path, kMaxQuotedPathBytes), kind));
}

}  // namespace

absl::StatusOr<std::string> ReadRecipeText(const std::string& path) {
  const std::string quoted = Abbreviate(path, kMaxQuotedPathBytes);
  // Only a regular file is read: opening a FIFO with no writer blocks for ever, and reading a
  // terminal (/dev/ptmx, /dev/tty) or /dev/kmsg waits for input that never comes.
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read recipe file '%s': %s", quoted, std::strerror(errno)));
  }
  if (!S_ISREG(info.st_mode)) return NotRegularError(path, info.st_mode);
  if (static_cast<std::uintmax_t>(info.st_size) > kMaxRecipeBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("recipe file '%s' is %d bytes, more than the %d a recipe may have", quoted,
                        info.st_size, kMaxRecipeBytes));
  }
  // O_NONBLOCK: should the path have been replaced by a FIFO since the check, the open does not
  // wait for a writer (and the fstat below refuses it).
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read recipe file '%s': %s", quoted, std::strerror(errno)));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) return NotRegularError(path, info.st_mode);
  // Bounded read: a file may grow while it is read, and files under /proc report size 0.
  std::string text;
  char chunk[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("cannot read recipe file '%s': %s", quoted, std::strerror(errno)));
    }
    if (n == 0) break;
    text.append(chunk, static_cast<size_t>(n));
    if (text.size() > kMaxRecipeBytes) {
      return absl::InvalidArgumentError(
          absl::StrFormat("recipe file '%s' has more than the %d bytes a recipe may have", quoted,
                          kMaxRecipeBytes));
    }
  }
  return text;
}

}  // namespace nmesh::config::internal
