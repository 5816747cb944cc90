#include "nmesh/base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "nmesh/base/abbreviate.h"

namespace nmesh {

absl::StatusOr<int> CreateNewFile(const std::string& path) {
  // O_EXCL with O_CREAT fails on any existing name, a symbolic link included (it is never
  // followed).
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd >= 0) return fd;
  const int error = errno;
  const std::string quoted = Abbreviate(path, kMaxQuotedPathBytes);
  if (error == EEXIST) {
    struct stat info;
    const bool link = ::lstat(path.c_str(), &info) == 0 && S_ISLNK(info.st_mode);
    return absl::AlreadyExistsError(absl::StrFormat(
        "cannot write '%s': %s already exists there; nmesh never overwrites a file (remove it "
        "or choose another path)",
        quoted, link ? "a symbolic link" : "a file"));
  }
  return absl::PermissionDeniedError(
      absl::StrFormat("cannot write '%s': %s", quoted, std::strerror(error)));
}

absl::Status WriteNewFile(const std::string& path, std::string_view contents) {
  absl::StatusOr<int> created = CreateNewFile(path);
  if (!created.ok()) return created.status();
  const int fd = *created;
  int error = 0;
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? errno : EIO;
      break;
    }
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error == 0) return absl::OkStatus();
  ::unlink(path.c_str());  // ours, and incomplete
  return absl::DataLossError(absl::StrFormat(
      "writing '%s' failed: %s", Abbreviate(path, kMaxQuotedPathBytes), std::strerror(error)));
}

}  // namespace nmesh
