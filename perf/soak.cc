#include "nmesh/perf/soak.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/buffer.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/perf/check.h"

namespace nmesh::perf {
namespace {

using comm::Buffer;
using comm::Communicator;
using comm::DataType;

constexpr size_t kFloat = sizeof(float);

// The buffers of one call in the communicator's memory, filled from and read back to the host.
struct DeviceCopy {
  Buffer send;
  Buffer recv;
};

absl::StatusOr<DeviceCopy> ToComm(Communicator& comm, const std::vector<float>& send,
                                  size_t recv_elements) {
  DeviceCopy copy;
  // A zero-byte buffer is still a valid allocation; at least one element keeps pointers non-null.
  NMESH_ASSIGN_OR_RETURN(copy.send, comm.AllocateBuffer(std::max<size_t>(send.size(), 1) * kFloat));
  NMESH_ASSIGN_OR_RETURN(copy.recv,
                         comm.AllocateBuffer(std::max<size_t>(recv_elements, 1) * kFloat));
  if (!send.empty()) {
    NMESH_RETURN_IF_ERROR(comm.CopyFromHost(copy.send.data(), send.data(), send.size() * kFloat));
  }
  const std::vector<float> unwritten(recv_elements, kUnwritten);
  if (!unwritten.empty()) {
    NMESH_RETURN_IF_ERROR(
        comm.CopyFromHost(copy.recv.data(), unwritten.data(), unwritten.size() * kFloat));
  }
  return copy;
}

absl::StatusOr<std::vector<float>> FromComm(Communicator& comm, const Buffer& buffer,
                                            size_t elements) {
  std::vector<float> host(elements);
  if (elements != 0) {
    NMESH_RETURN_IF_ERROR(comm.CopyToHost(host.data(), buffer.data(), elements * kFloat));
  }
  return host;
}

std::string_view OpName(SoakOp op) {
  switch (op) {
    case SoakOp::kPpForward:
      return "pp send/recv (forward)";
    case SoakOp::kPpBackward:
      return "pp send/recv (backward)";
    case SoakOp::kTpAllGather:
      return "tp all_gather";
    case SoakOp::kEpAllToAllV:
      return "ep all_to_all_v";
    case SoakOp::kDpShardCpReduceScatter:
      return "dp_shard_cp reduce_scatter/all_gather";
    case SoakOp::kDpAllReduce:
      return "dp all_reduce";
  }
  return "?";
}

// DataLoss naming the first element of `got` that differs from `expected`, or OK.
absl::Status Compare(SoakOp op, std::string_view what, int64_t step, absl::Span<const float> got,
                     absl::Span<const float> expected) {
  int64_t wrong = 0;
  size_t first = 0;
  for (size_t k = 0; k < expected.size(); ++k) {
    if (k >= got.size() || got[k] != expected[k]) {
      if (wrong == 0) first = k;
      ++wrong;
    }
  }
  if (wrong == 0) return absl::OkStatus();
  return absl::DataLossError(absl::StrFormat(
      "soak step %d: %s%s: %d of %d output elements differ from the expected values (first: "
      "element %d is %g, expected %g)",
      step, OpName(op), what, wrong, expected.size(), first,
      first < got.size() ? static_cast<double>(got[first]) : -1.0,
      static_cast<double>(expected[first])));
}

std::vector<float> Contribution(int64_t rank, int64_t step, SoakOp op, uint64_t count,
                                uint64_t offset = 0) {
  std::vector<float> values(count);
  for (uint64_t k = 0; k < count; ++k) values[k] = SoakValue(rank, step, op, offset + k);
  return values;
}

// The communicator of `name` in `mesh`, or in its MoE mesh for the moe axes.
absl::StatusOr<Communicator*> CommOf(const mesh::DeviceMesh& mesh, std::string_view name) {
  if (name == "ep" || name == "ep_shard") {
    std::optional<mesh::DeviceMesh> moe = mesh.moe_mesh();
    if (!moe.has_value()) {
      return absl::NotFoundError(absl::StrFormat("mesh '%s' has no moe mesh", mesh.name()));
    }
    return moe->Comm(name);
  }
  return mesh.Comm(name);
}

struct Group {
  Communicator* comm = nullptr;
  std::vector<int64_t> ranks;  // global ranks in local rank order
  int64_t me = 0;
  int64_t n() const { return static_cast<int64_t>(ranks.size()); }
};

absl::StatusOr<Group> GroupOf(const mesh::MeshPlan& plan, const mesh::DeviceMesh& mesh,
                              std::string_view name) {
  Group group;
  NMESH_ASSIGN_OR_RETURN(group.comm, CommOf(mesh, name));
  NMESH_ASSIGN_OR_RETURN(mesh::GroupView view, plan.ViewGroup(mesh.global_rank(), name));
  group.ranks = view.Ranks();
  group.me = view.local_rank();
  if (group.comm->size() != group.n() || group.comm->rank() != group.me) {
    return absl::InternalError(absl::StrFormat(
        "soak: group '%s' of rank %d has local rank %d of %d in the plan but %d of %d in its "
        "communicator",
        name, mesh.global_rank(), group.me, group.n(), group.comm->rank(), group.comm->size()));
  }
  return group;
}

// Forward (to the next stage) or backward (to the previous one): receive first, then send, so
// that the chain never waits in a cycle.
absl::Status PpChain(const Group& g, int64_t step, uint64_t e, bool forward) {
  const SoakOp op = forward ? SoakOp::kPpForward : SoakOp::kPpBackward;
  const int64_t from = forward ? g.me - 1 : g.me + 1;
  const int64_t to = forward ? g.me + 1 : g.me - 1;
  if (from >= 0 && from < g.n()) {
    NMESH_ASSIGN_OR_RETURN(DeviceCopy copy, ToComm(*g.comm, {}, e));
    NMESH_RETURN_IF_ERROR(
        g.comm->Recv(copy.recv.data(), e, DataType::kFloat32, static_cast<int>(from)));
    NMESH_ASSIGN_OR_RETURN(std::vector<float> got, FromComm(*g.comm, copy.recv, e));
    NMESH_RETURN_IF_ERROR(Compare(op, absl::StrFormat(" from stage %d", from), step, got,
                                  Contribution(g.ranks[from], step, op, e)));
  }
  if (to >= 0 && to < g.n()) {
    NMESH_ASSIGN_OR_RETURN(DeviceCopy copy,
                           ToComm(*g.comm, Contribution(g.ranks[g.me], step, op, e), 0));
    NMESH_RETURN_IF_ERROR(
        g.comm->Send(copy.send.data(), e, DataType::kFloat32, static_cast<int>(to)));
  }
  return absl::OkStatus();
}

absl::Status TpAllGather(const Group& g, int64_t step, uint64_t e) {
  const SoakOp op = SoakOp::kTpAllGather;
  const size_t total = e * static_cast<size_t>(g.n());
  NMESH_ASSIGN_OR_RETURN(DeviceCopy copy,
                         ToComm(*g.comm, Contribution(g.ranks[g.me], step, op, e), total));
  NMESH_RETURN_IF_ERROR(
      g.comm->AllGather(copy.send.data(), copy.recv.data(), e, DataType::kFloat32));
  NMESH_ASSIGN_OR_RETURN(std::vector<float> got, FromComm(*g.comm, copy.recv, total));
  std::vector<float> expected;
  for (int64_t j = 0; j < g.n(); ++j) {
    std::vector<float> block = Contribution(g.ranks[j], step, op, e);
    expected.insert(expected.end(), block.begin(), block.end());
  }
  return Compare(op, "", step, got, expected);
}

absl::Status EpAllToAllV(const Group& g, int64_t step, uint64_t e) {
  const SoakOp op = SoakOp::kEpAllToAllV;
  const int64_t n = g.n();
  const uint64_t unit = std::max<uint64_t>(1, e / static_cast<uint64_t>(n));
  std::vector<size_t> send_counts(n), send_displs(n), recv_counts(n), recv_displs(n);
  size_t send_total = 0, recv_total = 0;
  for (int64_t d = 0; d < n; ++d) {
    send_counts[d] = unit * AllToAllVWeight(g.me, d, n);
    send_displs[d] = send_total;
    send_total += send_counts[d];
    recv_counts[d] = unit * AllToAllVWeight(d, g.me, n);
    recv_displs[d] = recv_total;
    recv_total += recv_counts[d];
  }
  // The block for local rank d: its values carry d, so a block delivered to the wrong peer is
  // caught (element index offset d * send_total of the sender's sequence).
  std::vector<float> send;
  for (int64_t d = 0; d < n; ++d) {
    std::vector<float> block =
        Contribution(g.ranks[g.me], step, op, send_counts[d], static_cast<uint64_t>(d) << 20);
    send.insert(send.end(), block.begin(), block.end());
  }
  NMESH_ASSIGN_OR_RETURN(DeviceCopy copy, ToComm(*g.comm, send, recv_total));
  NMESH_RETURN_IF_ERROR(g.comm->AllToAllV(copy.send.data(), send_counts, send_displs,
                                          copy.recv.data(), recv_counts, recv_displs,
                                          DataType::kFloat32));
  NMESH_ASSIGN_OR_RETURN(std::vector<float> got, FromComm(*g.comm, copy.recv, recv_total));
  std::vector<float> expected;
  for (int64_t s = 0; s < n; ++s) {
    std::vector<float> block =
        Contribution(g.ranks[s], step, op, recv_counts[s], static_cast<uint64_t>(g.me) << 20);
    expected.insert(expected.end(), block.begin(), block.end());
  }
  return Compare(op, "", step, got, expected);
}

absl::Status DpShardCpReduceScatterAllGather(const Group& g, int64_t step, uint64_t e) {
  const SoakOp op = SoakOp::kDpShardCpReduceScatter;
  const size_t total = e * static_cast<size_t>(g.n());
  // The sum over the group of element k of every rank's full-size input.
  std::vector<float> sums(total, 0.0f);
  for (int64_t j = 0; j < g.n(); ++j) {
    for (size_t k = 0; k < total; ++k) sums[k] += SoakValue(g.ranks[j], step, op, k);
  }
  NMESH_ASSIGN_OR_RETURN(DeviceCopy copy,
                         ToComm(*g.comm, Contribution(g.ranks[g.me], step, op, total), e));
  NMESH_RETURN_IF_ERROR(g.comm->ReduceScatter(copy.send.data(), copy.recv.data(), e,
                                              DataType::kFloat32, comm::ReduceOp::kSum));
  NMESH_ASSIGN_OR_RETURN(std::vector<float> shard, FromComm(*g.comm, copy.recv, e));
  NMESH_RETURN_IF_ERROR(
      Compare(op, " (reduce_scatter)", step, shard,
              absl::MakeConstSpan(sums).subspan(static_cast<size_t>(g.me) * e, e)));
  // The all_gather of the shards gives back every sum.
  NMESH_ASSIGN_OR_RETURN(DeviceCopy gathered, ToComm(*g.comm, shard, total));
  NMESH_RETURN_IF_ERROR(
      g.comm->AllGather(gathered.send.data(), gathered.recv.data(), e, DataType::kFloat32));
  NMESH_ASSIGN_OR_RETURN(std::vector<float> got, FromComm(*g.comm, gathered.recv, total));
  return Compare(op, " (all_gather)", step, got, sums);
}

absl::Status DpAllReduce(const Group& g, int64_t step, uint64_t e) {
  const SoakOp op = SoakOp::kDpAllReduce;
  std::vector<float> expected(e, 0.0f);
  for (int64_t j = 0; j < g.n(); ++j) {
    for (uint64_t k = 0; k < e; ++k) expected[k] += SoakValue(g.ranks[j], step, op, k);
  }
  NMESH_ASSIGN_OR_RETURN(DeviceCopy copy,
                         ToComm(*g.comm, Contribution(g.ranks[g.me], step, op, e), e));
  NMESH_RETURN_IF_ERROR(g.comm->AllReduce(copy.send.data(), copy.recv.data(), e, DataType::kFloat32,
                                          comm::ReduceOp::kSum));
  NMESH_ASSIGN_OR_RETURN(std::vector<float> got, FromComm(*g.comm, copy.recv, e));
  return Compare(op, "", step, got, expected);
}

}  // namespace

float SoakValue(int64_t rank, int64_t step, SoakOp op, uint64_t k) {
  const uint64_t mixed = static_cast<uint64_t>(rank) * 31 + static_cast<uint64_t>(step) * 17 +
                         static_cast<uint64_t>(op) * 43 + (k % 4093) * 7 + (k >> 20) * 11;
  return static_cast<float>(mixed % 101);
}

std::vector<std::string> SoakGroups(const mesh::DeviceMesh& mesh) {
  std::vector<std::string> groups;
  if (!mesh.is_member()) return groups;
  for (std::string_view name : {"pp", "tp", "ep", "dp_shard_cp", "dp"}) {
    absl::StatusOr<comm::Communicator*> comm = CommOf(mesh, name);
    if (comm.ok() && (*comm)->size() > 1) groups.emplace_back(name);
  }
  return groups;
}

absl::Status RunSoakStep(const mesh::MeshPlan& plan, const mesh::DeviceMesh& mesh, int64_t step,
                         const SoakStepConfig& config) {
  const uint64_t e = std::max<uint64_t>(config.elements, 1);
  for (const std::string& name : SoakGroups(mesh)) {
    NMESH_ASSIGN_OR_RETURN(Group group, GroupOf(plan, mesh, name));
    if (name == "pp") {
      NMESH_RETURN_IF_ERROR(PpChain(group, step, e, /*forward=*/true));
      NMESH_RETURN_IF_ERROR(PpChain(group, step, e, /*forward=*/false));
    } else if (name == "tp") {
      NMESH_RETURN_IF_ERROR(TpAllGather(group, step, e));
    } else if (name == "ep") {
      NMESH_RETURN_IF_ERROR(EpAllToAllV(group, step, e));
    } else if (name == "dp_shard_cp") {
      NMESH_RETURN_IF_ERROR(DpShardCpReduceScatterAllGather(group, step, e));
    } else {
      NMESH_RETURN_IF_ERROR(DpAllReduce(group, step, e));
    }
  }
  return absl::OkStatus();
}

}  // namespace nmesh::perf
