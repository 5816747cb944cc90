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

  absl::Status DoSetTimeout(std::optional<absl::Duration> timeout) override {
    options_.timeout = timeout;
    return absl::OkStatus();
  }

  absl::Status Abort() override {
    abort_state_.Mark("Abort() was called");
    return absl::OkStatus();
  }

  bool Release(std::string_view reason) override {
    abort_state_.Mark(std::string(reason));
    return true;
  }

 protected:
  absl::Status CheckUsable(std::string_view op) const override {
    return abort_state_.Check(*this, op);
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int> color, int key,
                                                        CommOptions options) override {
    NMESH_RETURN_IF_ERROR(internal::CheckSplit(*this, color));
    if (!color) return std::unique_ptr<Communicator>();
    return NewSelfCommunicator(std::move(options), memory_);
  }

  absl::Status DoAllReduce(const void* send, void* recv, size_t count, DataType type,
                           ReduceOp) override {
    return Copy(recv, send, count, type);
  }

  absl::Status DoAllGather(const void* send, void* recv, size_t send_count,
                           DataType type) override {
    return Copy(recv, send, send_count, type);
  }

  absl::Status DoReduceScatter(const void* send, void* recv, size_t recv_count, DataType type,
                               ReduceOp) override {
    return Copy(recv, send, recv_count, type);
  }

  absl::Status DoBroadcast(void*, size_t, DataType, int) override { return absl::OkStatus(); }

  absl::Status DoAllToAll(const void* send, void* recv, size_t count, DataType type) override {
    return Copy(recv, send, count, type);
  }

  absl::Status DoSend(const void* buffer, size_t count, DataType type, int) override {
    Message message{type, count, std::vector<std::byte>(count * DataTypeSize(type))};
    if (!message.bytes.empty() && memory_.kind != MemoryKind::kHost) {
      // The queue lives on the host; staging device memory needs the backend's copy, which only
      // moves bytes within its own memory kind.
      return absl::UnimplementedError(
          absl::StrFormat("%s: a self communicator on device memory cannot send to itself",
                          internal::OpContext(*this, OpKind::kSend)));
    }
    if (!message.bytes.empty()) std::memcpy(message.bytes.data(), buffer, message.bytes.size());
    pending_.push_back(std::move(message));
    return absl::OkStatus();
  }

  absl::Status DoRecv(void* buffer, size_t count, DataType type, int) override {
    if (pending_.empty()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: no message from rank 0 is pending, and a self communicator has no other rank to "
          "send one",
          internal::OpContext(*this, OpKind::kRecv)));
    }
    Message message = std::move(pending_.front());
    pending_.pop_front();
    if (message.type != type || message.count != count) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: expected %d elements of %s but the pending message holds %d elements of %s",
          internal::OpContext(*this, OpKind::kRecv), count, DataTypeName(type), message.count,
          DataTypeName(message.type)));
    }
    if (!message.bytes.empty()) std::memcpy(buffer, message.bytes.data(), message.bytes.size());
    return absl::OkStatus();
  }

  absl::Status DoBarrier() override { return absl::OkStatus(); }

  // The single block goes from send_displs[0] to recv_displs[0]; the counts must agree (they are
  // the same rank's two views of one message).
  absl::Status DoAllToAllV(const void* send, absl::Span<const size_t> send_counts,
                           absl::Span<const size_t> send_displs, void* recv,
                           absl::Span<const size_t> recv_counts,
                           absl::Span<const size_t> recv_displs, DataType type) override {
    if (send_counts[0] != recv_counts[0]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: rank 0 sends %d elements to itself but expects to receive %d (rank 0 of 1)",
          internal::OpContext(*this, OpKind::kAllToAllV), send_counts[0], recv_counts[0]));
    }
    const size_t e = DataTypeSize(type);
    return Copy(static_cast<std::byte*>(recv) + recv_displs[0] * e,
                static_cast<const std::byte*>(send) + send_displs[0] * e, send_counts[0], type);
  }

  absl::Status DoGather(const void* send, void* recv, size_t send_count, DataType type,
                        int) override {
    return Copy(recv, send, send_count, type);
  }

  absl::Status DoScatter(const void* send, void* recv, size_t recv_count, DataType type,
                         int) override {
    return Copy(recv, send, recv_count, type);
  }

  absl::Status DoReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp,
                        int) override {
    return Copy(recv, send, count, type);
  }

  absl::Status DoSendRecv(const void* send, size_t send_count, int, void* recv, size_t recv_count,
                          int, DataType type) override {
    if (send_count != recv_count) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: rank 0 sends %d elements to itself but expects to receive %d (rank 0 of 1)",
          internal::OpContext(*this, OpKind::kSendRecv), send_count, recv_count));
    }
    return Copy(recv, send, send_count, type);
  }

 public:
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
