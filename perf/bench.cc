#include "nmesh/perf/bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <new>
#include <optional>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/fingerprint.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/topology.h"
#include "nmesh/perf/check.h"

namespace nmesh::perf {
namespace {

using comm::Communicator;

// The record of one call of `op` with `shape`'s counts.
comm::OpArgs CallArgs(BenchOp op, const CallShape& shape, const void* send, void* recv) {
  using comm::OpArgs;
  constexpr comm::ReduceOp kSum = comm::ReduceOp::kSum;
  switch (op) {
    case BenchOp::kAllReduce:
      return OpArgs::AllReduce(send, recv, shape.count, kBenchType, kSum);
    case BenchOp::kAllGather:
      return OpArgs::AllGather(send, recv, shape.count, kBenchType);
    case BenchOp::kReduceScatter:
      return OpArgs::ReduceScatter(send, recv, shape.count, kBenchType, kSum);
    case BenchOp::kBroadcast:
      return OpArgs::Broadcast(recv, shape.count, kBenchType, /*root=*/0);
    case BenchOp::kAllToAll:
      return OpArgs::AllToAll(send, recv, shape.count, kBenchType);
    case BenchOp::kAllToAllV:
      return OpArgs::AllToAllV(send, shape.send_counts, shape.send_displs, recv, shape.recv_counts,
                               shape.recv_displs, kBenchType);
    default:
      break;
  }
  return {.op = op};  // not a bench op: ParseBenchOp never returns one
}

// One call through the blocking path.
absl::Status RunBlocking(Communicator& comm, BenchOp op, const CallShape& shape, const void* send,
                         void* recv) {
  return comm.Run(CallArgs(op, shape, send, recv));
}

// One call through the asynchronous path, its handle waited.
absl::Status RunAsync(Communicator& comm, BenchOp op, const CallShape& shape, const void* send,
                      void* recv) {
  absl::StatusOr<comm::Work> work = comm.RunAsync(CallArgs(op, shape, send, recv));
  if (!work.ok()) return work.status();
  return work->Wait();
}

// The communicator of `kind` on this member rank.
absl::StatusOr<Communicator*> KindComm(const mesh::DeviceMesh& device_mesh,
                                       const mesh::GroupKind& kind) {
  if (kind.mesh == mesh::MeshKind::kDevice) return device_mesh.Comm(kind.names.front());
  std::optional<mesh::DeviceMesh> moe = device_mesh.moe_mesh();
  if (!moe.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: the plan has a moe axis '%s' but the mesh has no moe mesh",
                        device_mesh.name(), kind.names.front()));
  }
  return moe->Comm(kind.names.front());
}

}  // namespace

std::vector<BenchOp> AllBenchOps() { return {std::begin(kBenchOps), std::end(kBenchOps)}; }

std::string_view BenchOpName(BenchOp op) { return comm::OpKindName(op); }

absl::StatusOr<BenchOp> ParseBenchOp(std::string_view name) {
  std::vector<std::string> names;
  for (BenchOp op : kBenchOps) {
    if (name == BenchOpName(op)) return op;
    names.emplace_back(BenchOpName(op));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown collective '%s'; expected %s", name, absl::StrJoin(names, ", ")));
}

bool Reduces(BenchOp op) { return comm::IsOpKind(op) && comm::Traits(op).reduces; }
std::string_view RedopName(BenchOp op) { return Reduces(op) ? "sum" : "none"; }

double BusBandwidthFactor(BenchOp op, int64_t n) {
  const double ranks = static_cast<double>(n);
  switch (op) {
    case BenchOp::kAllReduce:
      return 2.0 * (ranks - 1) / ranks;
    case BenchOp::kAllGather:
    case BenchOp::kReduceScatter:
    case BenchOp::kAllToAll:
    case BenchOp::kAllToAllV:
      return (ranks - 1) / ranks;
    default:  // broadcast
      return 1.0;
  }
}

absl::Status ValidateBenchConfig(const BenchConfig& config) {
  if (config.factor < 2 || config.iters < 1 || config.warmup < 0 || config.min_bytes < 1 ||
      config.min_bytes > config.max_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bad BenchConfig: min_bytes %d, max_bytes %d, factor %d, iters %d, warmup %d (need "
        "1 <= min_bytes <= max_bytes, factor >= 2, iters >= 1, warmup >= 0)",
        config.min_bytes, config.max_bytes, config.factor, config.iters, config.warmup));
  }
  return absl::OkStatus();
}

std::vector<uint64_t> SweepSizes(const BenchConfig& config) {
  std::vector<uint64_t> sizes;
  for (uint64_t size = config.min_bytes; size <= config.max_bytes;) {
    sizes.push_back(size);
    const uint64_t factor = static_cast<uint64_t>(config.factor);
    if (size > config.max_bytes / factor) break;  // the next size would pass max (or overflow)
    size *= factor;
  }
  return sizes;
}

absl::StatusOr<std::vector<mesh::GroupKind>> SelectBenchAxes(const mesh::MeshPlan& plan,
                                                             absl::Span<const std::string> axes) {
  const std::vector<mesh::GroupKind> kinds = mesh::DistinctGroupKinds(plan);
  if (axes.empty()) {
    std::vector<mesh::GroupKind> selected;
    for (const mesh::GroupKind& kind : kinds) {
      if (kind.group_size > 1) selected.push_back(kind);
    }
    return selected;
  }
  std::vector<bool> chosen(kinds.size(), false);
  for (const std::string& name : axes) {
    bool found = false;
    for (size_t k = 0; k < kinds.size() && !found; ++k) {
      const std::vector<std::string>& names = kinds[k].names;
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        chosen[k] = true;
        found = true;
      }
    }
    if (!found) {
      std::vector<std::string> all;
      for (const mesh::GroupKind& kind : kinds) {
        all.insert(all.end(), kind.names.begin(), kind.names.end());
      }
      return absl::InvalidArgumentError(absl::StrFormat(
          "unknown axis '%s'; this mesh has %s", Abbreviate(name), absl::StrJoin(all, ", ")));
    }
  }
  std::vector<mesh::GroupKind> selected;
  for (size_t k = 0; k < kinds.size(); ++k) {
    if (chosen[k]) selected.push_back(kinds[k]);
  }
  return selected;
}

double BenchAxis::AverageBusBandwidth() const {
  if (rows.empty()) return 0;
  double sum = 0;
  for (const BenchRow& row : rows) sum += row.busbw;
  return sum / static_cast<double>(rows.size());
}

int64_t BenchReport::TotalWrong() const {
  int64_t wrong = 0;
  for (const BenchAxis& axis : axes) {
    for (const BenchRow& row : axis.rows) wrong += row.wrong;
  }
  return wrong;
}

namespace {

// The host memory one rank's sweep of `op` on a group of `n` ranks (this one `me`) needs: the
// largest call's buffers in the communicator's memory, and their host copies.
uint64_t SweepHostBytes(const BenchConfig& config, int64_t n, int64_t me, comm::MemoryKind kind) {
  uint64_t max_send = 0, max_recv = 0;
  for (uint64_t requested : SweepSizes(config)) {
    const CallShape shape = ShapeOf(config.op, requested, n, me);
    if (shape.count == 0) continue;
    max_send = std::max(max_send, shape.send);
    max_recv = std::max(max_recv, shape.recv);
  }
  const uint64_t copies = kind == comm::MemoryKind::kHost ? 2 : 1;
  return copies * (max_send + max_recv) * kBenchElementBytes;
}

uint64_t PhysicalMemory() {
  return static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
         static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

absl::Status CheckHostMemory(absl::Span<const RankMemory> ranks, uint64_t max_bytes) {
  struct Host {
    size_t first = 0;
    size_t last = 0;
    int64_t count = 0;
    uint64_t sum = 0;  // saturating
    uint64_t most = 0;
    uint64_t physical = 0;
  };
  std::map<uint64_t, Host> hosts;
  for (size_t r = 0; r < ranks.size(); ++r) {
    auto [it, fresh] = hosts.try_emplace(ranks[r].host);
    Host& host = it->second;
    if (fresh) host.first = r;
    host.last = r;
    ++host.count;
    host.sum = ranks[r].bytes > UINT64_MAX - host.sum ? UINT64_MAX : host.sum + ranks[r].bytes;
    host.most = std::max(host.most, ranks[r].bytes);
    host.physical = ranks[r].physical;
  }
  std::vector<const Host*> order;
  for (const auto& [key, host] : hosts) order.push_back(&host);
  std::sort(order.begin(), order.end(),
            [](const Host* a, const Host* b) { return a->first < b->first; });
  for (const Host* host : order) {
    if (host->sum <= host->physical) continue;
    return absl::ResourceExhaustedError(absl::StrFormat(
        "bench: the sweep needs %d bytes of host memory on the host of rank%s %d%s (%d rank%s, up "
        "to %d bytes each: the buffers and their host copies for -e %d), more than its %d; lower "
        "-e or run fewer ranks per host",
        host->sum, host->count == 1 ? "" : "s", host->first,
        host->count == 1 ? "" : absl::StrFormat("..%d", host->last), host->count,
        host->count == 1 ? "" : "s", host->most, max_bytes, host->physical));
  }
  return absl::OkStatus();
}

absl::Status CheckBenchMemory(const mesh::MeshPlan& plan, const mesh::DeviceMesh& mesh,
                              Communicator& world, const BenchConfig& config) {
  NMESH_RETURN_IF_ERROR(ValidateBenchConfig(config));
  NMESH_ASSIGN_OR_RETURN(std::vector<mesh::GroupKind> kinds, SelectBenchAxes(plan, config.axes));
  // One axis is measured at a time: a rank needs its largest sweep.
  uint64_t need = 0;
  if (mesh.is_member()) {
    for (const mesh::GroupKind& kind : kinds) {
      NMESH_ASSIGN_OR_RETURN(Communicator * group, KindComm(mesh, kind));
      if (group == nullptr) continue;
      need = std::max(need,
                      SweepHostBytes(config, group->size(), group->rank(), group->memory_kind()));
    }
  }
  absl::StatusOr<std::string> host_name = comm::LocalHostName();
  Fingerprint host;
  host.Add(host_name.ok() ? *host_name : absl::StrFormat("rank %d", world.rank()));
  const uint64_t mine[3] = {host.value(), need, PhysicalMemory()};
  std::vector<uint64_t> all(3 * static_cast<size_t>(world.size()));
  NMESH_RETURN_IF_ERROR(comm::HostAllGather<uint64_t>(world, mine, absl::MakeSpan(all)));
  std::vector<RankMemory> ranks(static_cast<size_t>(world.size()));
  for (size_t r = 0; r < ranks.size(); ++r) {
    ranks[r] = {.host = all[3 * r], .bytes = all[3 * r + 1], .physical = all[3 * r + 2]};
  }
  return CheckHostMemory(ranks, config.max_bytes);
}

absl::StatusOr<BenchAxis> MeasureAxis(BenchAxis axis, Communicator* group, Communicator& world,
                                      const BenchConfig& config, const RowObserver& on_row) {
  NMESH_RETURN_IF_ERROR(ValidateBenchConfig(config));
  const int64_t n = axis.group_size;
  if (n < 1 || (group != nullptr && group->size() != n)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("axis '%s': group size %d, but its communicator has %d rank(s)", axis.name,
                        n, group == nullptr ? 0 : group->size()));
  }
  axis.rows.clear();
  const int64_t me = group != nullptr ? group->rank() : 0;
  // The shapes of every rank of the group agree on count, send and recv: only all_to_all_v's
  // count arrays depend on the rank.
  std::vector<CallShape> shapes;
  uint64_t max_send = 0, max_recv = 0;
  for (uint64_t requested : SweepSizes(config)) {
    CallShape shape = ShapeOf(config.op, requested, n, me);
    if (shape.count == 0) continue;
    max_send = std::max(max_send, shape.send);
    max_recv = std::max(max_recv, shape.recv);
    shapes.push_back(std::move(shape));
  }
  const auto run_once = config.async ? RunAsync : RunBlocking;
  // Buffers in the communicator's memory, sized once for the largest call, and host mirrors.
  comm::Buffer send_buffer, recv_buffer;
  std::vector<float> send_host, recv_host;
  if (group != nullptr) {
    // Linux overcommits: a sweep larger than the machine would be killed while filling its
    // buffers, so refuse it here instead.
    const uint64_t copies = group->memory_kind() == comm::MemoryKind::kHost ? 2 : 1;
    const uint64_t host_bytes = copies * (max_send + max_recv) * kBenchElementBytes;
    const uint64_t physical = PhysicalMemory();
    if (host_bytes > physical) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "axis '%s': the sweep needs %d bytes of host memory per rank (the buffers and their "
          "host copies for -e %d), more than this machine's %d; lower -e",
          axis.name, host_bytes, config.max_bytes, physical));
    }
    NMESH_ASSIGN_OR_RETURN(send_buffer, group->AllocateBuffer(max_send * kBenchElementBytes));
    NMESH_ASSIGN_OR_RETURN(recv_buffer, group->AllocateBuffer(max_recv * kBenchElementBytes));
    try {
      send_host.resize(max_send);
      recv_host.resize(max_recv);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("axis '%s': cannot allocate %d bytes of host memory for the buffers",
                          axis.name, (max_send + max_recv) * kBenchElementBytes));
    }
  }
  const double factor = BusBandwidthFactor(config.op, n);
  for (size_t i = 0; i < shapes.size(); ++i) {
    const CallShape& shape = shapes[i];
    BenchRow row;
    row.size = shape.bytes();
    row.count = shape.count;
    if (group != nullptr) {
      FillInputs(config.op, shape, me, absl::MakeSpan(send_host), absl::MakeSpan(recv_host));
      NMESH_RETURN_IF_ERROR(group->CopyFromHost(send_buffer.data(), send_host.data(),
                                                shape.send * kBenchElementBytes));
      NMESH_RETURN_IF_ERROR(group->CopyFromHost(recv_buffer.data(), recv_host.data(),
                                                shape.recv * kBenchElementBytes));
    }
    // Every group of the axis starts together, after the previous size has finished everywhere.
    NMESH_RETURN_IF_ERROR(world.Barrier());
    if (group != nullptr) {
      for (int64_t w = 0; w < config.warmup; ++w) {
        NMESH_RETURN_IF_ERROR(
            run_once(*group, config.op, shape, send_buffer.data(), recv_buffer.data()));
      }
      const auto start = std::chrono::steady_clock::now();
      for (int64_t it = 0; it < config.iters; ++it) {
        NMESH_RETURN_IF_ERROR(
            run_once(*group, config.op, shape, send_buffer.data(), recv_buffer.data()));
      }
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      row.time_us = elapsed.count() * 1e6 / static_cast<double>(config.iters);
      NMESH_RETURN_IF_ERROR(
          group->CopyToHost(recv_host.data(), recv_buffer.data(), shape.recv * kBenchElementBytes));
      row.wrong = CountWrong(config.op, shape, me, n, recv_host);
    }
    NMESH_RETURN_IF_ERROR(comm::HostAllReduce<double>(world, absl::MakeConstSpan(&row.time_us, 1),
                                                      absl::MakeSpan(&row.time_us, 1),
                                                      comm::ReduceOp::kMax));
    NMESH_RETURN_IF_ERROR(comm::HostAllReduce<int64_t>(world, absl::MakeConstSpan(&row.wrong, 1),
                                                       absl::MakeSpan(&row.wrong, 1),
                                                       comm::ReduceOp::kSum));
    row.algbw = row.time_us > 0 ? static_cast<double>(row.size) / (row.time_us * 1e3) : 0;
    row.busbw = row.algbw * factor;
    if (on_row) on_row(axis, row, i, shapes.size());
    axis.rows.push_back(row);
  }
  return axis;
}

absl::StatusOr<BenchReport> RunBench(const mesh::MeshPlan& plan, const mesh::DeviceMesh& mesh,
                                     Communicator& world, const BenchConfig& config,
                                     const RowObserver& on_row) {
  NMESH_RETURN_IF_ERROR(ValidateBenchConfig(config));
  NMESH_ASSIGN_OR_RETURN(std::vector<mesh::GroupKind> kinds, SelectBenchAxes(plan, config.axes));
  NMESH_RETURN_IF_ERROR(CheckBenchMemory(plan, mesh, world, config));
  BenchReport report;
  report.op = config.op;
  report.async = config.async;
  report.backend = std::string(world.backend());
  report.world_size = world.size();
  for (const mesh::GroupKind& kind : kinds) {
    Communicator* group = nullptr;
    if (mesh.is_member()) {
      NMESH_ASSIGN_OR_RETURN(group, KindComm(mesh, kind));
    }
    BenchAxis axis;
    axis.name = absl::StrJoin(kind.names, "/");
    axis.names = kind.names;
    axis.group_size = kind.group_size;
    axis.group_count = kind.group_count;
    NMESH_ASSIGN_OR_RETURN(axis, MeasureAxis(std::move(axis), group, world, config, on_row));
    report.axes.push_back(std::move(axis));
  }
  return report;
}

}  // namespace nmesh::perf
