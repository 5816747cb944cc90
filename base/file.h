// Writing a file nmesh creates, safely: the file must not exist yet, so that no existing file is
// truncated and no link placed at the path is followed (to a victim file elsewhere), and every
// write error is reported with the path.
//
//   NMESH_RETURN_IF_ERROR(WriteNewFile("/tmp/dump/nmesh_flight_rank3.json", json));
//   NMESH_ASSIGN_OR_RETURN(int fd, CreateNewFile("busbw.png"));  // for a child process to write
//
// Thread-safe (separate paths).
#ifndef NMESH_BASE_FILE_H_
#define NMESH_BASE_FILE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nmesh {

// Creates `path` (mode 0644 less the umask) for writing and returns its file descriptor, which
// the caller closes. Fails as WriteNewFile does when something already exists at `path` or it
// cannot be created.
absl::StatusOr<int> CreateNewFile(const std::string& path);

// Creates `path` (mode 0644 less the umask) and writes `contents` to it. Fails without touching
// anything when something already exists at `path`: AlreadyExists naming the path and saying
// whether it is a symbolic link. Other failures to create it (missing directory, permissions) are
// PermissionDenied, and failures to write or close it (a full disk) DataLoss, each
// naming the path and the system's reason; a file left partly written is removed.
absl::Status WriteNewFile(const std::string& path, std::string_view contents);

}  // namespace nmesh

#endif  // NMESH_BASE_FILE_H_
