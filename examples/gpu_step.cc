// The data path of an engine's step on NCCL, every result checked: collectives issued
// asynchronously on the engine's own CUDA stream, GPU-side ordering with a second stream, a batch
// of sends and receives that would deadlock one by one, and the ncclComm_t used directly. One GPU
// per rank (the job picks the GPU of each rank's local rank):
//
//   scripts/mpirun.sh -np 2 build/examples/gpu_step        # fsdp2, tp 2 when the job is even
//
// Without a CUDA device it prints "gpu_step: SKIPPED: no CUDA device" and exits 77 (ctest's skip
// code). docs/GUIDE.md §4 walks through it. Exit code: 0 when every result is right, 1 otherwise,
// 2 for a start-up error.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "nmesh/comm/nccl/communicator.h"
#include "nmesh/comm/nccl/native.h"
#include "nmesh/nmesh.h"

namespace {

using nmesh::comm::Communicator;
using nmesh::comm::DataType;
using nmesh::comm::ReduceOp;
using nmesh::comm::Work;

absl::Status Cuda(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrFormat("%s: %s", what, cudaGetErrorString(error)));
}

absl::Status Expect(bool ok, const std::string& what) {
  return ok ? absl::OkStatus() : absl::InternalError(what);
}

// Device buffer of n floats, filled from `host`.
absl::StatusOr<float*> DeviceCopy(const std::vector<float>& host) {
  void* device = nullptr;
  NMESH_RETURN_IF_ERROR(Cuda(cudaMalloc(&device, host.size() * sizeof(float)), "cudaMalloc"));
  NMESH_RETURN_IF_ERROR(
      Cuda(cudaMemcpy(device, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice),
           "cudaMemcpy"));
  return static_cast<float*>(device);
}

absl::StatusOr<std::vector<float>> HostCopy(const float* device, size_t n) {
  std::vector<float> host(n);
  NMESH_RETURN_IF_ERROR(Cuda(
      cudaMemcpy(host.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost), "copy back"));
  return host;
}

// The step, on the dp group (dp_shard_cp) and the tp group of this rank.
absl::Status Step(nmesh::job::Job& job, Communicator& dp, Communicator& tp) {
  NMESH_ASSIGN_OR_RETURN(int device, nmesh::comm::nccl::DeviceOf(*job.backend().world));
  NMESH_RETURN_IF_ERROR(Cuda(cudaSetDevice(device), "cudaSetDevice"));
  cudaStream_t compute = nullptr, optimizer = nullptr;
  NMESH_RETURN_IF_ERROR(Cuda(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking), "stream"));
  NMESH_RETURN_IF_ERROR(
      Cuda(cudaStreamCreateWithFlags(&optimizer, cudaStreamNonBlocking), "stream"));
  const int64_t rank = job.rank();
  constexpr size_t n = 1024;

  // 1. Gradients summed over dp on the engine's stream; the optimizer stream waits on the GPU.
  NMESH_ASSIGN_OR_RETURN(float* grad, DeviceCopy(std::vector<float>(n, rank + 1.0f)));
  NMESH_ASSIGN_OR_RETURN(Work reduce, dp.AllReduceAsync(grad, grad, n, DataType::kFloat32,
                                                        ReduceOp::kSum, {.stream = compute}));
  // A group of one rank is a self communicator (a device copy, complete when issued): only an
  // NCCL operation has an event to wait on.
  if (dp.backend() == "nccl") {
    NMESH_RETURN_IF_ERROR(nmesh::comm::nccl::StreamWaitWork(reduce, optimizer));
  }
  NMESH_RETURN_IF_ERROR(Cuda(cudaStreamSynchronize(optimizer), "optimizer stream"));
  NMESH_RETURN_IF_ERROR(reduce.Wait(absl::Seconds(60)));
  // By hand: the dp group's global ranks, from the plan.
  const std::vector<int64_t> dp_group = job.model().plan->ViewGroup(rank, "dp_shard_cp")->Ranks();
  float want = 0;
  for (int64_t member : dp_group) want += static_cast<float>(member) + 1.0f;
  NMESH_ASSIGN_OR_RETURN(std::vector<float> summed, HostCopy(grad, n));
  NMESH_RETURN_IF_ERROR(Expect(summed == std::vector<float>(n, want), "dp all_reduce is wrong"));

  // 2. A ring over dp where every rank sends first: issued together in one batch.
  const int next = (dp.rank() + 1) % dp.size(), previous = (dp.rank() + dp.size() - 1) % dp.size();
  NMESH_ASSIGN_OR_RETURN(float* activation, DeviceCopy(std::vector<float>(n, rank * 10.0f)));
  NMESH_ASSIGN_OR_RETURN(float* received, DeviceCopy(std::vector<float>(n, -1.0f)));
  if (dp.size() > 1) {
    NMESH_ASSIGN_OR_RETURN(nmesh::comm::Batch batch, nmesh::comm::Batch::Begin());
    NMESH_ASSIGN_OR_RETURN(
        Work send, dp.SendAsync(activation, n, DataType::kFloat32, next, {.stream = compute}));
    NMESH_ASSIGN_OR_RETURN(
        Work recv, dp.RecvAsync(received, n, DataType::kFloat32, previous, {.stream = compute}));
    NMESH_ASSIGN_OR_RETURN(Work both, batch.End());
    NMESH_RETURN_IF_ERROR(both.Wait(absl::Seconds(60)));
  }
  NMESH_ASSIGN_OR_RETURN(std::vector<float> from_previous, HostCopy(received, n));
  NMESH_RETURN_IF_ERROR(Expect(
      dp.size() == 1 ||
          from_previous == std::vector<float>(n, dp_group[static_cast<size_t>(previous)] * 10.0f),
      "the ring's message from the previous rank is wrong"));

  // 3. The NCCL handle itself, on the engine's stream (a size-1 tp has none: its collectives are
  //    device copies, and the engine skips it).
  if (tp.size() > 1) {
    NMESH_ASSIGN_OR_RETURN(ncclComm_t raw, nmesh::comm::nccl::NativeComm(tp));
    NMESH_ASSIGN_OR_RETURN(float* x, DeviceCopy(std::vector<float>(n, rank * 1.0f)));
    if (ncclAllReduce(x, x, n, ncclFloat, ncclMax, raw, compute) != ncclSuccess) {
      return absl::InternalError("ncclAllReduce on tp's ncclComm_t failed");
    }
    NMESH_RETURN_IF_ERROR(Cuda(cudaStreamSynchronize(compute), "compute stream"));
    const std::vector<int64_t> tp_group = job.model().plan->ViewGroup(rank, "tp")->Ranks();
    NMESH_ASSIGN_OR_RETURN(std::vector<float> maxed, HostCopy(x, n));
    NMESH_RETURN_IF_ERROR(
        Expect(maxed == std::vector<float>(n, static_cast<float>(tp_group.back())),
               "ncclAllReduce on the native handle is wrong"));
    cudaFree(x);
  }
  cudaFree(grad);
  cudaFree(activation);
  cudaFree(received);
  cudaStreamDestroy(compute);
  cudaStreamDestroy(optimizer);
  return absl::OkStatus();
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::cout << "gpu_step: SKIPPED: no CUDA device\n";
    return 77;
  }
  // One GPU per rank; on one machine the job can use at most `devices` ranks.
  if (const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
      local != nullptr && std::atoi(local) > devices) {
    std::cout << absl::StrFormat("gpu_step: SKIPPED: %s ranks on this host but %d CUDA device(s)\n",
                                 local, devices);
    return 77;
  }
  nmesh::job::JobOptions options;
  options.backend = nmesh::job::BackendChoice::kNccl;
  if (nmesh::job::LauncherSize() % 2 == 0) options.mesh.sizes.tp = 2;
  options.timeout = absl::Seconds(120);
  nmesh::job::MpiJob started = nmesh::job::StartMpiJob(options);
  if (!started.status.ok()) {
    const bool agreed = nmesh::job::IsAgreed(started.status);
    if (!agreed || nmesh::job::LauncherRank() == 0) {
      std::cerr << "gpu_step: " << started.status.message() << "\n";
    }
    if (!agreed) nmesh::job::EndJob(started.status, 1);
    return 2;
  }
  nmesh::job::Job& job = *started.job;
  namespace axis = nmesh::mesh::axis;
  Communicator* dp = job.model().mesh->FindComm(axis::kDpShardCp);
  Communicator* tp = job.model().mesh->FindComm(axis::kTp);
  if (dp == nullptr || tp == nullptr) {
    std::cerr << "gpu_step: the mesh lacks dp_shard_cp or tp\n";
    return 2;
  }
  if (absl::Status s = Step(job, *dp, *tp); !s.ok()) {
    std::cerr << absl::StrFormat("gpu_step: rank %d: %s\n", job.rank(), s.message());
    nmesh::job::EndJob(s, 1);
  }
  std::cout << absl::StrFormat("gpu_step: rank %d: step ok (dp %d, tp %d, backend %s)\n",
                               job.rank(), dp->size(), tp->size(), job.backend().name);
  return 0;
}
