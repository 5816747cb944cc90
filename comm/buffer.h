// Owned memory of one memory kind (host or device), as Communicator::AllocateBuffer returns it,
// or as a backend makes one:
//
//   NMESH_ASSIGN_OR_RETURN(Buffer buffer, comm.AllocateBuffer(n * sizeof(int64_t)));
//   NMESH_RETURN_IF_ERROR(comm.CopyFromHost(buffer.data(), host.data(), buffer.bytes()));
//   Buffer staging(new std::byte[64], 64, [](void* p) { delete[] static_cast<std::byte*>(p); });
//
// Move-only; not thread-safe.
#ifndef NMESH_COMM_BUFFER_H_
#define NMESH_COMM_BUFFER_H_

#include <cstddef>
#include <functional>
#include <utility>

namespace nmesh::comm {

// Memory of some memory kind, owned: the release function runs on destruction. Move-only. Made by
// Communicator::AllocateBuffer; data() is usable as a collective buffer of that communicator (and
// of every communicator of the same backend and device).
class Buffer {
 public:
  using Release = std::function<void(void* data)>;

  Buffer() = default;
  // Takes ownership of `data` (`bytes` long); `release` frees it (may be empty: nothing to free).
  Buffer(void* data, size_t bytes, Release release)
      : data_(data), bytes_(bytes), release_(std::move(release)) {}
  ~Buffer() { Reset(); }
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      Reset();
      data_ = std::exchange(other.data_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
      release_ = std::exchange(other.release_, nullptr);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void Reset() {
    if (data_ != nullptr && release_) release_(data_);
    data_ = nullptr;
    bytes_ = 0;
  }

  void* data_ = nullptr;
  size_t bytes_ = 0;
  Release release_;
};

}  // namespace nmesh::comm

#endif  // NMESH_COMM_BUFFER_H_
