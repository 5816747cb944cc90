#include "nmesh/comm/self.h"

#include <cstring>
#include <deque>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/internal/checks.h"

namespace nmesh::comm {
namespace {

class SelfCommunicator final : public Communicator {
 public:
  SelfCommunicator(CommOptions options, SelfMemory memory)
      : options_(std::move(options)), memory_(std::move(memory)) {}

  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string_view backend() const override { return "self"; }
  MemoryKind memory_kind() const override { return memory_.kind; }
  const CommOptions& options() const override { return options_; }

  absl::StatusOr<std::unique_ptr<Communicator>> Split(std::optional<int> color, int key,
                                                      CommOptions options) override {
    NMESH_RETURN_IF_ERROR(Usable(internal::kSplit));
    NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
    NMESH_RETURN_IF_ERROR(internal::CheckSplit(*this, color));
    if (!color) return std::unique_ptr<Communicator>();
    return NewSelfCommunicator(std::move(options), memory_);
  }

  absl::Status AllReduce(const void* send, void* recv, size_t count, DataType type,
                         ReduceOp op) override {
    NMESH_RETURN_IF_ERROR(Usable(internal::kAllReduce));
    NMESH_RETURN_IF_ERROR(internal::CheckAllReduce(*this, send, recv, count));
    return Copy(recv, send, count, type);
  }

  absl::Status AllGather(const void* send, void* recv, size_t send_count, DataType type) override {
    NMESH_RETURN_IF_ERROR(Usable(internal::kAllGather));
    NMESH_RETURN_IF_ERROR(internal::CheckAllGather(*this, send, recv, send_count));
    return Copy(recv, send, send_count, type);
  }

  absl::Status ReduceScatter(const void* send, void* recv, size_t recv_count, DataType type,
                             ReduceOp op) override {
    NMESH_RETURN_IF_ERROR(Usable(internal::kReduceScatter));
    NMESH_RETURN_IF_ERROR(internal::CheckReduceScatter(*this, send, recv, recv_count));
    return Copy(recv, send, recv_count, type);
  }

  absl::Status Broadcast(void* buffer, size_t count, DataType type, int root) override {
    NMESH_RETURN_IF_ERROR(Usable(internal::kBroadcast));
    return internal::CheckBroadcast(*this, buffer, count, root);
  }

  absl::Status AllToAll(const void* send, void* recv, size_t count, DataType type) override {
    NMESH_RETURN_IF_ERROR(Usable(internal::kAllToAll));
    NMESH_RETURN_IF_ERROR(internal::CheckAllToAll(*this, send, recv, count, type));
    return Copy(recv, send, count, type);
  }

  absl::Status Send(const void* buffer, size_t count, DataType type, int peer) override {
    NMESH_RETURN_IF_ERROR(Usable(internal::kSend));
    NMESH_RETURN_IF_ERROR(internal::CheckPointToPoint(*this, internal::kSend, buffer, count, peer));
    Message message{type, count, std::vector<std::byte>(count * DataTypeSize(type))};
    if (!message.bytes.empty() && memory_.kind != MemoryKind::kHost) {
      // The queue lives on the host; staging device memory needs the backend's copy, which only
      // moves bytes within its own memory kind.
      return absl::UnimplementedError(
          absl::StrFormat("%s: a self communicator on device memory cannot send to itself",
                          internal::OpContext(*this, internal::kSend)));
    }
    if (!message.bytes.empty()) std::memcpy(message.bytes.data(), buffer, message.bytes.size());
    pending_.push_back(std::move(message));
    return absl::OkStatus();
  }

  absl::Status Recv(void* buffer, size_t count, DataType type, int peer) override {
    NMESH_RETURN_IF_ERROR(Usable(internal::kRecv));
    NMESH_RETURN_IF_ERROR(internal::CheckPointToPoint(*this, internal::kRecv, buffer, count, peer));
    if (pending_.empty()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: no message from rank 0 is pending, and a self communicator has no other rank to "
          "send one",
          internal::OpContext(*this, internal::kRecv)));
    }
    Message message = std::move(pending_.front());
    pending_.pop_front();
    if (message.type != type || message.count != count) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: expected %d elements of %s but the pending message holds %d elements of %s",
          internal::OpContext(*this, internal::kRecv), count, DataTypeName(type), message.count,
          DataTypeName(message.type)));
    }
    if (!message.bytes.empty()) std::memcpy(buffer, message.bytes.data(), message.bytes.size());
    return absl::OkStatus();
  }

  absl::Status Barrier() override { return Usable(internal::kBarrier); }

  absl::Status Abort() override {
    abort_state_.Mark("Abort() was called");
    return absl::OkStatus();
  }

  absl::StatusOr<Buffer> AllocateBuffer(size_t bytes) override {
    if (memory_.kind == MemoryKind::kHost || !memory_.allocate) {
      return Communicator::AllocateBuffer(bytes);
    }
    return memory_.allocate(bytes);
  }

  absl::Status CopyToHost(void* host, const void* buffer, size_t bytes) override {
    return HostCopy(internal::kCopyToHost, memory_.copy_to_host, host, buffer, bytes);
  }

  absl::Status CopyFromHost(void* buffer, const void* host, size_t bytes) override {
    return HostCopy(internal::kCopyFromHost, memory_.copy_from_host, buffer, host, bytes);
  }

  std::unique_ptr<Communicator> NewSelf(CommOptions options) const override {
    return NewSelfCommunicator(std::move(options), memory_);
  }

 private:
  struct Message {
    DataType type;
    size_t count;
    std::vector<std::byte> bytes;
  };

  absl::Status Usable(std::string_view op) const { return abort_state_.Check(*this, op); }

  // A copy between the host and this communicator's memory: the base class's memmove for host
  // memory, the backend's function otherwise.
  absl::Status HostCopy(std::string_view op, const SelfCopyFn& fn, void* dst, const void* src,
                        size_t bytes) {
    if (memory_.kind == MemoryKind::kHost || !fn) {
      return op == internal::kCopyToHost ? Communicator::CopyToHost(dst, src, bytes)
                                         : Communicator::CopyFromHost(dst, src, bytes);
    }
    NMESH_RETURN_IF_ERROR(internal::CheckCopy(*this, op, dst, src, bytes));
    if (bytes == 0) return absl::OkStatus();
    return fn(dst, src, bytes);
  }

  absl::Status Copy(void* dst, const void* src, size_t count, DataType type) {
    if (count == 0 || dst == src) return absl::OkStatus();
    return memory_.copy(dst, src, count * DataTypeSize(type));
  }

  CommOptions options_;
  SelfMemory memory_;
  std::deque<Message> pending_;
  internal::AbortState abort_state_;
};

}  // namespace

std::unique_ptr<Communicator> NewSelfCommunicator(CommOptions options) {
  return NewSelfCommunicator(std::move(options), MemoryKind::kHost,
                             [](void* dst, const void* src, size_t bytes) {
                               std::memmove(dst, src, bytes);
                               return absl::OkStatus();
                             });
}

std::unique_ptr<Communicator> NewSelfCommunicator(CommOptions options, MemoryKind kind,
                                                  SelfCopyFn copy) {
  return NewSelfCommunicator(std::move(options), SelfMemory{.kind = kind, .copy = std::move(copy)});
}

std::unique_ptr<Communicator> NewSelfCommunicator(CommOptions options, SelfMemory memory) {
  NMESH_CHECK(memory.copy != nullptr) << "NewSelfCommunicator needs a copy function";
  return std::make_unique<SelfCommunicator>(std::move(options), std::move(memory));
}

}  // namespace nmesh::comm
