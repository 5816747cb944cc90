#include "nmesh/comm/host_collectives.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"

namespace nmesh::comm {

absl::Status HostAllReduce(Communicator& comm, const void* send, void* recv, size_t count,
                           DataType type, ReduceOp op) {
  if (comm.memory_kind() == MemoryKind::kHost) return comm.AllReduce(send, recv, count, type, op);
  const size_t bytes = count * DataTypeSize(type);
  NMESH_ASSIGN_OR_RETURN(Buffer buffer, comm.AllocateBuffer(bytes));
  NMESH_RETURN_IF_ERROR(comm.CopyFromHost(buffer.data(), send, bytes));
  NMESH_RETURN_IF_ERROR(comm.AllReduce(buffer.data(), buffer.data(), count, type, op));
  return comm.CopyToHost(recv, buffer.data(), bytes);
}

absl::Status HostAllGather(Communicator& comm, const void* send, void* recv, size_t send_count,
                           DataType type) {
  if (comm.memory_kind() == MemoryKind::kHost) {
    return comm.AllGather(send, recv, send_count, type);
  }
  const size_t bytes = send_count * DataTypeSize(type);
  const size_t total = bytes * static_cast<size_t>(comm.size());
  NMESH_ASSIGN_OR_RETURN(Buffer buffer, comm.AllocateBuffer(total));
  // In place: this rank's block of the receive buffer is its send buffer.
  auto* mine = static_cast<std::byte*>(buffer.data()) + bytes * static_cast<size_t>(comm.rank());
  NMESH_RETURN_IF_ERROR(comm.CopyFromHost(mine, send, bytes));
  NMESH_RETURN_IF_ERROR(comm.AllGather(mine, buffer.data(), send_count, type));
  return comm.CopyToHost(recv, buffer.data(), total);
}

absl::StatusOr<std::vector<std::string>> HostGatherV(Communicator& comm, std::string_view send,
                                                     int root) {
  if (root < 0 || root >= comm.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("HostGatherV: root %d is outside [0, %d)", root, comm.size()));
  }
  const bool host = comm.memory_kind() == MemoryKind::kHost;
  const bool is_root = comm.rank() == root;
  const auto ranks = static_cast<size_t>(comm.size());
  const uint64_t my_bytes = send.size();
  std::vector<uint64_t> sizes(is_root ? ranks : 0);
  if (host) {
    NMESH_RETURN_IF_ERROR(
        comm.Gather(&my_bytes, is_root ? sizes.data() : nullptr, 1, DataType::kUint64, root));
  } else {
    NMESH_ASSIGN_OR_RETURN(Buffer buffer, comm.AllocateBuffer(sizeof(uint64_t) * ranks));
    auto* slot = static_cast<std::byte*>(buffer.data()) +
                 sizeof(uint64_t) * static_cast<size_t>(comm.rank());
    NMESH_RETURN_IF_ERROR(comm.CopyFromHost(slot, &my_bytes, sizeof(uint64_t)));
    NMESH_RETURN_IF_ERROR(comm.Gather(slot, buffer.data(), 1, DataType::kUint64, root));
    if (is_root) {
      NMESH_RETURN_IF_ERROR(comm.CopyToHost(sizes.data(), buffer.data(), sizeof(uint64_t) * ranks));
    }
  }
  std::vector<std::string> all;
  if (!is_root) {
    if (send.empty()) return all;
    if (host) {
      NMESH_RETURN_IF_ERROR(comm.Send(send.data(), send.size(), DataType::kUint8, root));
      return all;
    }
    NMESH_ASSIGN_OR_RETURN(Buffer buffer, comm.AllocateBuffer(send.size()));
    NMESH_RETURN_IF_ERROR(comm.CopyFromHost(buffer.data(), send.data(), send.size()));
    NMESH_RETURN_IF_ERROR(comm.Send(buffer.data(), send.size(), DataType::kUint8, root));
    return all;
  }
  all.resize(ranks);
  for (size_t peer = 0; peer < ranks; ++peer) {
    if (static_cast<int>(peer) == root) {
      all[peer] = std::string(send);
      continue;
    }
    const auto bytes = static_cast<size_t>(sizes[peer]);
    if (bytes == 0) continue;
    all[peer].resize(bytes);
    if (host) {
      NMESH_RETURN_IF_ERROR(
          comm.Recv(all[peer].data(), bytes, DataType::kUint8, static_cast<int>(peer)));
      continue;
    }
    NMESH_ASSIGN_OR_RETURN(Buffer buffer, comm.AllocateBuffer(bytes));
    NMESH_RETURN_IF_ERROR(
        comm.Recv(buffer.data(), bytes, DataType::kUint8, static_cast<int>(peer)));
    NMESH_RETURN_IF_ERROR(comm.CopyToHost(all[peer].data(), buffer.data(), bytes));
  }
  return all;
}

absl::Status AgreeOnStatus(Communicator& comm, const absl::Status& local) {
  constexpr size_t kMessageBytes = 252;
  struct Record {
    int32_t code;
    char message[kMessageBytes];
  };
  Record mine{};
  mine.code = static_cast<int32_t>(local.code());
  const std::string text(local.message());
  std::memcpy(mine.message, text.data(), std::min(text.size(), kMessageBytes - 1));
  std::vector<Record> all(static_cast<size_t>(comm.size()));
  NMESH_RETURN_IF_ERROR(HostAllGather(comm, &mine, all.data(), sizeof(Record), DataType::kUint8));
  if (!local.ok()) return local;
  for (int r = 0; r < comm.size(); ++r) {
    const Record& record = all[static_cast<size_t>(r)];
    if (record.code == 0) continue;
    return absl::Status(
        static_cast<absl::StatusCode>(record.code),
        absl::StrFormat("%s [reported by rank %d of %d]",
                        std::string(record.message, strnlen(record.message, kMessageBytes)), r,
                        comm.size()));
  }
  return absl::OkStatus();
}

}  // namespace nmesh::comm
