#include "nmesh/comm/store/file_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/store/poll.h"

namespace nmesh::comm::store {
namespace {

// File names stay well under NAME_MAX (255) with the ".lock." in front.
constexpr size_t kMaxFileName = 200;

std::string Errno(int err) { return std::strerror(err); }

// Closes a descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// mkdir -p: creates `path` and its missing parents.
int MakeDirectories(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    const std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0777) != 0 && errno != EEXIST) return errno;
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileStore>> FileStore::Open(std::string directory,
                                                           StoreOptions options) {
  const std::string url = "file://" + directory;
  if (directory.empty() || directory.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrFormat("store %s: the directory must be an absolute path, got '%s'",
                        internal::Escape(url), internal::Escape(directory)));
  }
  if (directory.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("store %s: the directory contains a NUL byte", internal::Escape(url)));
  }
  while (directory.size() > 1 && directory.back() == '/') directory.pop_back();
  if (int err = MakeDirectories(directory); err != 0) {
    return absl::UnavailableError(
        absl::StrFormat("store file://%s: cannot create the directory: %s",
                        internal::Escape(directory), Errno(err)));
  }
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrFormat("store file://%s: cannot open the directory: %s",
                                                  internal::Escape(directory), Errno(errno)));
  }
  return std::unique_ptr<FileStore>(new FileStore(std::move(directory), fd, options));
}

FileStore::FileStore(std::string directory, int dir_fd, StoreOptions options)
    : directory_(std::move(directory)), dir_fd_(dir_fd), options_(options) {}

FileStore::~FileStore() { ::close(dir_fd_); }

std::string FileStore::Describe() const { return "file://" + directory_; }

absl::StatusOr<std::string> FileStore::FileName(std::string_view key) const {
  if (key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("store %s: empty key", internal::Escape(Describe())));
  }
  std::string name;
  name.reserve(key.size());
  for (unsigned char c : key) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '_' || c == '-';
    if (plain) {
      name.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&name, "%%%02X", c);
    }
  }
  if (name.size() > kMaxFileName) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "store %s: key '%s' is too long for a file name (%d bytes escaped, at most %d)",
        internal::Escape(Describe()), internal::Escape(key), name.size(), kMaxFileName));
  }
  return name;
}

absl::Status FileStore::WriteFile(const std::string& name, std::string_view key,
                                  std::string_view value) {
  static std::atomic<uint64_t> counter{0};
  const std::string temp = absl::StrCat(".tmp.", ::getpid(), ".", counter.fetch_add(1), ".",
                                        reinterpret_cast<uintptr_t>(this));
  auto fail = [&](std::string_view what, int err) {
    return absl::UnavailableError(absl::StrFormat("store %s: cannot %s key '%s': %s",
                                                  internal::Escape(Describe()), what,
                                                  internal::Escape(key), Errno(err)));
  };
  Fd fd(
      ::openat(dir_fd_, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (fd.get() < 0) return fail("create a file for", errno);
  size_t done = 0;
  while (done < value.size()) {
    const ssize_t n = ::write(fd.get(), value.data() + done, value.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::unlinkat(dir_fd_, temp.c_str(), 0);
      return fail("write", err);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd.release()) != 0) {
    const int err = errno;
    ::unlinkat(dir_fd_, temp.c_str(), 0);
    return fail("write", err);
  }
  if (::renameat(dir_fd_, temp.c_str(), dir_fd_, name.c_str()) != 0) {
    const int err = errno;
    ::unlinkat(dir_fd_, temp.c_str(), 0);
    return fail("publish", err);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FileStore::ReadFile(const std::string& name, std::string_view key) {
  auto bad = [&](std::string_view why) {
    return absl::DataLossError(absl::StrFormat(
        "store %s: key '%s' %s", internal::Escape(Describe()), internal::Escape(key), why));
  };
  Fd fd(::openat(dir_fd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return absl::NotFoundError("");
    if (errno == ELOOP) return bad("is a symbolic link (not followed)");
    return absl::UnavailableError(absl::StrFormat("store %s: cannot read key '%s': %s",
                                                  internal::Escape(Describe()),
                                                  internal::Escape(key), Errno(errno)));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return bad(absl::StrCat("cannot be examined: ", Errno(errno)));
  if (!S_ISREG(st.st_mode)) return bad("is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > options_.max_value_bytes) {
    return bad(absl::StrFormat("holds %d bytes, more than the %d a value may have", st.st_size,
                               options_.max_value_bytes));
  }
  std::string value(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (true) {
    if (done == value.size()) {
      // The file may have grown since fstat (it never does in this store): read at most one
      // byte past the limit.
      if (value.size() > options_.max_value_bytes) {
        return bad(absl::StrFormat("holds more than the %d bytes a value may have",
                                   options_.max_value_bytes));
      }
      value.resize(std::min(value.size() * 2 + 64, options_.max_value_bytes + 1));
    }
    const ssize_t n = ::read(fd.get(), value.data() + done, value.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return bad(absl::StrCat("cannot be read: ", Errno(errno)));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  if (done > options_.max_value_bytes) {
    return bad(
        absl::StrFormat("holds more than the %d bytes a value may have", options_.max_value_bytes));
  }
  value.resize(done);
  return value;
}

absl::Status FileStore::Set(std::string_view key, std::string_view value) {
  NMESH_ASSIGN_OR_RETURN(std::string name, FileName(key));
  return WriteFile(name, key, value);
}

absl::StatusOr<std::string> FileStore::Get(std::string_view key, absl::Time deadline) {
  NMESH_ASSIGN_OR_RETURN(std::string name, FileName(key));
  internal::Backoff backoff;
  while (true) {
    absl::StatusOr<std::string> value = ReadFile(name, key);
    if (!absl::IsNotFound(value.status())) return value;
    if (!backoff.Sleep(deadline)) {
      return internal::MissingKeys(Describe(), {std::string(key)});
    }
  }
}

absl::StatusOr<bool> FileStore::Check(std::string_view key) {
  NMESH_ASSIGN_OR_RETURN(std::string name, FileName(key));
  struct stat st;
  if (::fstatat(dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return false;
    return absl::UnavailableError(absl::StrFormat("store %s: cannot examine key '%s': %s",
                                                  internal::Escape(Describe()),
                                                  internal::Escape(key), Errno(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::DataLossError(absl::StrFormat("store %s: key '%s' is not a regular file",
                                               internal::Escape(Describe()),
                                               internal::Escape(key)));
  }
  return true;
}

absl::Status FileStore::Wait(absl::Span<const std::string> keys, absl::Time deadline) {
  std::vector<std::string> missing(keys.begin(), keys.end());
  internal::Backoff backoff;
  while (true) {
    std::vector<std::string> still;
    for (const std::string& key : missing) {
      NMESH_ASSIGN_OR_RETURN(bool set, Check(key));
      if (!set) still.push_back(key);
    }
    if (still.empty()) return absl::OkStatus();
    missing = std::move(still);
    if (!backoff.Sleep(deadline)) return internal::MissingKeys(Describe(), missing);
  }
}

absl::StatusOr<int64_t> FileStore::Add(std::string_view key, int64_t delta) {
  NMESH_ASSIGN_OR_RETURN(std::string name, FileName(key));
  const std::string lock_name = ".lock." + name;
  Fd lock(::openat(dir_fd_, lock_name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (lock.get() < 0) {
    return absl::UnavailableError(absl::StrFormat("store %s: cannot lock counter '%s': %s",
                                                  internal::Escape(Describe()),
                                                  internal::Escape(key), Errno(errno)));
  }
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      return absl::UnavailableError(absl::StrFormat("store %s: cannot lock counter '%s': %s",
                                                    internal::Escape(Describe()),
                                                    internal::Escape(key), Errno(errno)));
    }
  }
  // Closing `lock` (on return) releases the flock.
  int64_t value = 0;
  absl::StatusOr<std::string> current = ReadFile(name, key);
  if (current.ok()) {
    if (!absl::SimpleAtoi(absl::string_view(current->data(), current->size()), &value)) {
      return absl::DataLossError(absl::StrFormat(
          "store %s: counter '%s' holds '%s', not an integer", internal::Escape(Describe()),
          internal::Escape(key), internal::Escape(current->substr(0, 64))));
    }
  } else if (!absl::IsNotFound(current.status())) {
    return current.status();
  }
  if ((delta > 0 && value > std::numeric_limits<int64_t>::max() - delta) ||
      (delta < 0 && value < std::numeric_limits<int64_t>::min() - delta)) {
    return absl::OutOfRangeError(absl::StrFormat("store %s: counter '%s' (%d) + %d overflows",
                                                 internal::Escape(Describe()),
                                                 internal::Escape(key), value, delta));
  }
  value += delta;
  NMESH_RETURN_IF_ERROR(WriteFile(name, key, absl::StrCat(value)));
  return value;
}

}  // namespace nmesh::comm::store
