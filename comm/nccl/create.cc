// How NCCL communicators come to be: CreateWorld (over a host communicator or a store: the device
// agreed, the roots' unique ids shared, ncclCommInitRank* polled), NcclCommunicator::DoSplit
// (ncclCommSplit), the child of a split or shrink finishing its initialisation, and AdoptComm.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/nccl/bootstrap.h"
#include "nmesh/comm/nccl/communicator.h"
#include "nmesh/comm/nccl/config.h"
#include "nmesh/comm/nccl/device.h"
#include "nmesh/comm/nccl/library.h"
#include "nmesh/comm/nccl/native.h"
#include "nmesh/comm/nccl/nccl_communicator.h"
#include "nmesh/comm/nccl/runtime.h"
#include "nmesh/comm/nccl/status.h"
#include "nmesh/comm/store_exchange.h"
#include "nmesh/comm/topology.h"

namespace nmesh::comm::nccl {
namespace {

namespace ci = ::nmesh::comm::internal;

constexpr std::string_view kInit = "init";

// Step 1 of CreateWorld on this rank: which device to use, or why none can be used.
absl::StatusOr<int> ChooseDevice(const NcclWorldOptions& options, const Topology& topo,
                                 const absl::StatusOr<int>& devices) {
  if (!devices.ok()) {
    return absl::Status(
        devices.status().code(),
        absl::StrFormat("%s (rank %d of %d)", devices.status().message(), topo.rank, topo.size));
  }
  if (!options.device && topo.local_size > *devices) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "host '%s' runs %d ranks but only %d CUDA devices are visible; run at most %d ranks per "
        "host or set CUDA_VISIBLE_DEVICES per rank (rank %d of %d)",
        topo.host_names[static_cast<size_t>(topo.rank)], topo.local_size, *devices, *devices,
        topo.rank, topo.size));
  }
  const int device = options.device.value_or(topo.local_rank);
  if (device < 0 || device >= *devices) {
    return absl::FailedPreconditionError(
        absl::StrFormat("CUDA device %d does not exist: %d are visible (rank %d of %d)", device,
                        *devices, topo.rank, topo.size));
  }
  return device;
}

// What CreateWorld needs from the ranks it meets: over a host communicator or over a store.
struct WorldMeeting {
  int rank = 0;
  int size = 1;
  // Every rank's host names and this rank's local rank and size.
  std::function<absl::StatusOr<Topology>()> topology;
  // Every rank's `local` status agreed (AgreeOnStatus); `step` names the meeting.
  std::function<absl::Status(const absl::Status& local, std::string_view step)> agree;
  // The roots' unique ids (`ids[i]` set on the i-th root), returned to every rank in root order.
  std::function<absl::Status(const BootstrapPlan& plan, std::vector<ncclUniqueId>& ids)> share;
};

absl::StatusOr<std::unique_ptr<Communicator>> CreateWorldWith(const WorldMeeting& meeting,
                                                              NcclWorldOptions options) {
  const int rank = meeting.rank;
  const int size = meeting.size;
  // First CUDA call of all, so that a machine without a GPU fails here and nowhere else.
  const absl::StatusOr<int> devices = VisibleCudaDevices();

  Topology topo;
  if (options.local_rank) {
    topo.rank = rank;
    topo.size = size;
    topo.local_rank = *options.local_rank;
    topo.local_size = 0;  // unknown: only the device index is checked
    topo.host_names.assign(static_cast<size_t>(size), "");
  } else {
    NMESH_ASSIGN_OR_RETURN(topo, meeting.topology());
  }
  const absl::StatusOr<int> device = ChooseDevice(options, topo, devices);
  NMESH_RETURN_IF_ERROR(meeting.agree(device.status(), "device"));

  absl::Status setup = CudaStatus(Lib().cudaSetDevice(*device), "cudaSetDevice", rank);
  // The roots create the unique ids; after every rank has agreed that setup worked, the ids are
  // shared with every rank, in root order.
  const BootstrapPlan boot = PlanBootstrap(size, options.bootstrap, LinkedNcclVersionCode());
  const auto root = std::find(boot.roots.begin(), boot.roots.end(), rank);
  std::vector<ncclUniqueId> ids(boot.roots.size());
  if (root != boot.roots.end() && setup.ok()) {
    setup = NcclStatus(Lib().ncclGetUniqueId(&ids[static_cast<size_t>(root - boot.roots.begin())]),
                       "ncclGetUniqueId", rank);
  }
  NMESH_RETURN_IF_ERROR(meeting.agree(setup, "setup"));
  NMESH_RETURN_IF_ERROR(meeting.share(boot, ids));

  cudaStream_t stream = nullptr;
  NMESH_RETURN_IF_ERROR(CudaStatus(Lib().cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                                   "cudaStreamCreateWithFlags", rank));
  ncclConfig_t config = NonblockingConfig();
  if (absl::Status s =
          ApplyNcclSettings(options.comm.nccl, LinkedNcclVersionCode(), options.comm.name, config);
      !s.ok()) {
    Lib().cudaStreamDestroy(stream);
    return s;
  }
  ncclComm_t comm = nullptr;
  absl::Status init;
#if NCCL_VERSION_CODE >= 22304
  if (boot.scalable) {
    init = NcclStatus(Lib().ncclCommInitRankScalable(
                          &comm, size, rank, static_cast<int>(ids.size()), ids.data(), &config),
                      "ncclCommInitRankScalable", rank, comm);
  } else {
    init = NcclStatus(Lib().ncclCommInitRankConfig(&comm, size, ids[0], rank, &config),
                      "ncclCommInitRankConfig", rank, comm);
  }
#else
  init = NcclStatus(Lib().ncclCommInitRankConfig(&comm, size, ids[0], rank, &config),
                    "ncclCommInitRankConfig", rank, comm);
#endif
  if (absl::Status s = init; !s.ok()) {
    if (comm != nullptr) Lib().ncclCommAbort(comm);
    Lib().cudaStreamDestroy(stream);
    return s;
  }
  ci::Deadline deadline(options.comm.timeout);
  auto world = std::make_unique<NcclCommunicator>(comm, *device, stream, rank, size,
                                                  std::move(options.comm));
  NMESH_RETURN_IF_ERROR(world->WaitReady(kInit, deadline));
  return std::unique_ptr<Communicator>(std::move(world));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> NcclCommunicator::DoSplit(std::optional<int> color,
                                                                        int key,
                                                                        CommOptions options) {
  NMESH_RETURN_IF_ERROR(ci::CheckSplit(*this, color));
  ci::Deadline deadline(options_.timeout);
  ncclConfig_t config = NonblockingConfig();
  // The child's settings (the same on every rank of a mesh, so all fail alike).
  NMESH_RETURN_IF_ERROR(
      ApplyNcclSettings(options.nccl, LinkedNcclVersionCode(), options.name, config));
  ncclComm_t child = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (comm_ == nullptr) return Usable(OpKind::kSplit);
    NMESH_RETURN_IF_ERROR(SetDevice(OpKind::kSplit));
    NMESH_RETURN_IF_ERROR(
        Check(OpKind::kSplit,
              Lib().ncclCommSplit(comm_, color ? *color : NCCL_SPLIT_NOCOLOR, key, &child, &config),
              "ncclCommSplit"));
  }
  // The split runs as a job of the parent; the child's handle may appear only when it ends.
  if (absl::Status s = WaitReady(OpKind::kSplit, deadline); !s.ok()) {
    if (child != nullptr) Lib().ncclCommAbort(child);
    return s;
  }
  if (!color) return std::unique_ptr<Communicator>();
  if (child == nullptr) {
    return absl::InternalError(absl::StrFormat("%s: ncclCommSplit gave no communicator (rank %d)",
                                               ci::OpContext(*this, OpKind::kSplit), rank_));
  }
  // Then the child finishes its own initialisation. When that outlives the deadline, the split
  // timed out on this communicator, which is retired like any timed-out operation.
  bool timed_out = false;
  absl::StatusOr<std::unique_ptr<Communicator>> made =
      FinishChild(child, OpKind::kSplit, "ncclCommSplit", deadline, std::move(options), &timed_out);
  if (timed_out) {
    Retire(absl::StrFormat("an earlier split timed out after %s",
                           ci::FormatTimeout(options_.timeout.value_or(absl::ZeroDuration()))));
  }
  return made;
}

absl::StatusOr<std::unique_ptr<Communicator>> NcclCommunicator::FinishChild(
    ncclComm_t child, ci::OpName op, const char* call, const ci::Deadline& deadline,
    CommOptions options, bool* timed_out) {
  const ncclResult_t state = PollUntilReady(child, deadline);
  int child_rank = 0, child_size = 0;
  ncclResult_t query = state;
  if (query == ncclSuccess) query = Lib().ncclCommUserRank(child, &child_rank);
  if (query == ncclSuccess) query = Lib().ncclCommCount(child, &child_size);
  cudaStream_t stream = nullptr;
  cudaError_t stream_error = cudaSuccess;
  if (query == ncclSuccess) {
    stream_error = Lib().cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  }
  if (query != ncclSuccess || stream_error != cudaSuccess) {
    *timed_out = query == ncclInProgress;
    absl::Status error =
        *timed_out
            ? ci::TimeoutError(*this, op)
            : (query != ncclSuccess ? NcclStatus(query, call, rank_, child)
                                    : CudaStatus(stream_error, "cudaStreamCreateWithFlags", rank_));
    Lib().ncclCommAbort(child);
    return error;
  }
  return std::unique_ptr<Communicator>(
      new NcclCommunicator(child, device_, stream, child_rank, child_size, std::move(options)));
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateWorld(Communicator& bootstrap,
                                                          NcclWorldOptions options) {
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.comm.timeout, "CommOptions.timeout"));
  if (bootstrap.memory_kind() != MemoryKind::kHost) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "nccl::CreateWorld needs a host-memory bootstrap communicator; axis '%s' uses the %s "
        "backend",
        bootstrap.options().name, bootstrap.backend()));
  }
  const int rank = bootstrap.rank();
  WorldMeeting meeting{
      .rank = rank,
      .size = bootstrap.size(),
      .topology = [&]() -> absl::StatusOr<Topology> {
        NMESH_ASSIGN_OR_RETURN(std::string host, LocalHostName());
        return ExchangeHostNames(bootstrap, host);
      },
      .agree = [&](const absl::Status& local,
                   std::string_view) { return AgreeOnStatus(bootstrap, local); },
      .share = [&](const BootstrapPlan& boot, std::vector<ncclUniqueId>& ids) -> absl::Status {
        // Gathered to rank 0 in root order, then broadcast.
        for (size_t r = 1; r < boot.roots.size(); ++r) {
          if (rank == boot.roots[r]) {
            NMESH_RETURN_IF_ERROR(
                bootstrap.Send(&ids[r], sizeof(ncclUniqueId), DataType::kUint8, 0));
          } else if (rank == 0) {
            NMESH_RETURN_IF_ERROR(
                bootstrap.Recv(&ids[r], sizeof(ncclUniqueId), DataType::kUint8, boot.roots[r]));
          }
        }
        return bootstrap.Broadcast(ids.data(), ids.size() * sizeof(ncclUniqueId), DataType::kUint8,
                                   0);
      }};
  return CreateWorldWith(meeting, std::move(options));
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateWorld(Store& store, int rank, int size,
                                                          NcclWorldOptions options) {
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.comm.timeout, "CommOptions.timeout"));
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("nccl::CreateWorld: rank %d of %d is not a rank of the world", rank, size));
  }
  const absl::Time deadline = absl::Now() + options.comm.timeout.value_or(kStoreBootstrapTimeout);
  const std::string name = absl::StrCat("nccl/", options.comm.name);
  WorldMeeting meeting{
      .rank = rank,
      .size = size,
      .topology = [&]() -> absl::StatusOr<Topology> {
        NMESH_ASSIGN_OR_RETURN(std::string host, LocalHostName());
        if (host.size() > kMaxHostNameBytes) host.resize(kMaxHostNameBytes);
        NMESH_ASSIGN_OR_RETURN(
            std::vector<std::string> hosts,
            StoreAllGather(store, absl::StrCat(name, "/hosts"), rank, size, host, deadline));
        return TopologyFromHostNames(std::move(hosts), rank);
      },
      .agree =
          [&](const absl::Status& local, std::string_view step) {
            return StoreAgreeOnStatus(store, absl::StrCat(name, "/", std::string(step)), rank, size,
                                      local, deadline);
          },
      .share = [&](const BootstrapPlan& boot, std::vector<ncclUniqueId>& ids) -> absl::Status {
        const auto root = std::find(boot.roots.begin(), boot.roots.end(), rank);
        std::string_view mine;
        if (root != boot.roots.end()) {
          mine = std::string_view(
              reinterpret_cast<const char*>(&ids[static_cast<size_t>(root - boot.roots.begin())]),
              sizeof(ncclUniqueId));
        }
        NMESH_ASSIGN_OR_RETURN(
            std::vector<std::string> shared,
            ShareUniqueIds(store, name, boot, rank, mine, sizeof(ncclUniqueId), deadline));
        for (size_t i = 0; i < shared.size(); ++i) {
          std::memcpy(&ids[i], shared[i].data(), sizeof(ncclUniqueId));
        }
        return absl::OkStatus();
      }};
  return CreateWorldWith(meeting, std::move(options));
}

absl::StatusOr<std::unique_ptr<Communicator>> AdoptComm(ncclComm_t comm, int device,
                                                        Ownership ownership, CommOptions options) {
  if (comm == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "nccl::AdoptComm: the NCCL communicator for axis '%s' is null", options.name));
  }
  NMESH_RETURN_IF_ERROR(LoadRuntime());
  int rank = 0, size = 0, comm_device = -1;
  NMESH_RETURN_IF_ERROR(
      NcclStatus(Lib().ncclCommUserRank(comm, &rank), "ncclCommUserRank", -1, comm));
  NMESH_RETURN_IF_ERROR(NcclStatus(Lib().ncclCommCount(comm, &size), "ncclCommCount", rank, comm));
  NMESH_RETURN_IF_ERROR(
      NcclStatus(Lib().ncclCommCuDevice(comm, &comm_device), "ncclCommCuDevice", rank, comm));
  if (comm_device != device) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "nccl::AdoptComm: the NCCL communicator for axis '%s' uses CUDA device %d, not %d",
        options.name, comm_device, device));
  }
  NMESH_RETURN_IF_ERROR(CudaStatus(Lib().cudaSetDevice(device), "cudaSetDevice", rank));
  cudaStream_t stream = nullptr;
  NMESH_RETURN_IF_ERROR(CudaStatus(Lib().cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                                   "cudaStreamCreateWithFlags", rank));
  auto adopted =
      std::make_unique<NcclCommunicator>(comm, device, stream, rank, size, std::move(options));
  adopted->owned_ = ownership == Ownership::kOwned;
  return std::unique_ptr<Communicator>(std::move(adopted));
}

}  // namespace nmesh::comm::nccl
