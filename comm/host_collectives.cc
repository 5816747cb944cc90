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
