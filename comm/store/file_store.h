// A store in a directory that every process of the job can reach (one host, or a shared
// filesystem). Each key is one file named after the key (bytes other than [A-Za-z0-9_-] escaped as
// %XX, so no key can name a path outside the directory), written to a fresh temporary name
// (O_EXCL|O_NOFOLLOW) and renamed into place, so a reader sees the whole value or nothing. Add
// holds an flock on a lock file beside the counter. Get and Wait poll with a growing pause (1 ms up
// to 20 ms) until the deadline. Links and other non-regular files at a key's name are errors, never
// followed. Thread-safe.
#ifndef NMESH_COMM_STORE_FILE_STORE_H_
#define NMESH_COMM_STORE_FILE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/comm/store.h"
#include "nmesh/comm/store/store.h"

namespace nmesh::comm::store {

class FileStore final : public Store {
 public:
  // Opens `directory` (an absolute path), creating it and its missing parents (mode 0777 less the
  // umask). InvalidArgument for a relative path; Unavailable naming it when it cannot be created
  // or opened as a directory.
  static absl::StatusOr<std::unique_ptr<FileStore>> Open(std::string directory,
                                                         StoreOptions options = {});
  ~FileStore() override;

  absl::Status Set(std::string_view key, std::string_view value) override;
  absl::StatusOr<std::string> Get(std::string_view key, absl::Time deadline) override;
  absl::Status Wait(absl::Span<const std::string> keys, absl::Time deadline) override;
  absl::StatusOr<int64_t> Add(std::string_view key, int64_t delta) override;
  absl::StatusOr<bool> Check(std::string_view key) override;
  // "file://" followed by the directory.
  std::string Describe() const override;

 private:
  FileStore(std::string directory, int dir_fd, StoreOptions options);
  // The file name of `key` inside the directory; InvalidArgument for an empty or too long key.
  absl::StatusOr<std::string> FileName(std::string_view key) const;
  // Writes `value` under `name` atomically.
  absl::Status WriteFile(const std::string& name, std::string_view key, std::string_view value);
  // The value of `name`, or NotFound when it does not exist yet.
  absl::StatusOr<std::string> ReadFile(const std::string& name, std::string_view key);

  std::string directory_;
  int dir_fd_;
  StoreOptions options_;
};

}  // namespace nmesh::comm::store

#endif  // NMESH_COMM_STORE_FILE_STORE_H_
