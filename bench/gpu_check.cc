// The GPU checks of issue 13, run by scripts/gpu_check.sh on a machine with an NVIDIA GPU (one
// rank is enough). Each check prints one "RESULT <name> <PASS|FAIL|value> <detail>" line.
//
//   build/bench/gpu_check [--bytes=N]
//
// 1. overlap: "compute" on the engine's stream (a chain of cudaMemsetAsync over a large buffer,
//    which runs as kernels on the SMs; no nvcc is needed to build this file) and an async
//    all_reduce on another stream, issued together, against each alone. Reports
//    t(both) / (t(compute) + t(all_reduce)): below 1 means they overlapped.
// 2. graph: an AllReduceAsync on a capturing stream is captured into a CUDA graph
//    (cudaStreamBeginCapture/EndCapture), instantiated and replayed 3 times; PASS when every
//    replay produced the expected output.
// 3. bandwidth: nmesh's blocking AllReduce against a raw ncclAllReduce + cudaStreamSynchronize on
//    the same ncclComm_t (nccl::NativeComm), N bytes of float32, 20 timed calls each after 5
//    warm-up calls; reports raw time / nmesh time (1.0: nmesh adds nothing).
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/nccl/communicator.h"
#include "nmesh/comm/nccl/native.h"
#include "nmesh/comm/self.h"

namespace {

using nmesh::comm::Communicator;
using nmesh::comm::DataType;
using nmesh::comm::ReduceOp;
using nmesh::comm::Work;
using Clock = std::chrono::steady_clock;

int failures = 0;

bool Ok(const absl::Status& status, const char* what) {
  if (status.ok()) return true;
  std::printf("ERROR %s: %s\n", what, std::string(status.message()).c_str());
  ++failures;
  return false;
}
bool Ok(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return true;
  std::printf("ERROR %s: %s\n", what, cudaGetErrorString(error));
  ++failures;
  return false;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  size_t bytes = size_t{64} << 20;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--bytes=", 8) == 0) bytes = std::strtoull(argv[i] + 8, nullptr, 10);
  }
  const size_t count = bytes / sizeof(float);
  auto bootstrap = nmesh::comm::NewSelfCommunicator({.name = "bootstrap"});
  auto world = nmesh::comm::nccl::CreateWorld(
      *bootstrap, {.comm = {.name = "world", .timeout = absl::Seconds(120)}, .device = 0});
  if (!world.ok()) {
    std::printf("RESULT init FAIL %s\n", std::string(world.status().message()).c_str());
    return 1;
  }
  Communicator& comm = **world;
  float *send = nullptr, *recv = nullptr, *scratch = nullptr;
  const size_t scratch_bytes = size_t{512} << 20;
  if (!Ok(cudaMalloc(&send, bytes), "cudaMalloc") || !Ok(cudaMalloc(&recv, bytes), "cudaMalloc") ||
      !Ok(cudaMalloc(&scratch, scratch_bytes), "cudaMalloc")) {
    return 1;
  }
  std::vector<float> ones(count, 1.0f);
  Ok(cudaMemcpy(send, ones.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  cudaStream_t engine = nullptr, comm_stream = nullptr;
  Ok(cudaStreamCreateWithFlags(&engine, cudaStreamNonBlocking), "cudaStreamCreate");
  Ok(cudaStreamCreateWithFlags(&comm_stream, cudaStreamNonBlocking), "cudaStreamCreate");

  // 1. Overlap.
  auto compute = [&] {
    for (int k = 0; k < 20; ++k) cudaMemsetAsync(scratch, k, scratch_bytes, engine);
  };
  auto all_reduce = [&]() -> Work {
    auto work = comm.AllReduceAsync(send, recv, count, DataType::kFloat32, ReduceOp::kSum,
                                    {.stream = comm_stream});
    Ok(work.status(), "AllReduceAsync");
    return work.ok() ? *std::move(work) : Work();
  };
  compute();
  Ok(cudaStreamSynchronize(engine), "sync");
  (void)all_reduce().Wait();
  auto t0 = Clock::now();
  compute();
  Ok(cudaStreamSynchronize(engine), "sync");
  auto t1 = Clock::now();
  { Ok(all_reduce().Wait(), "Wait"); }
  auto t2 = Clock::now();
  compute();
  Work overlapped = all_reduce();
  Ok(cudaStreamSynchronize(engine), "sync");
  Ok(overlapped.Wait(), "Wait");
  auto t3 = Clock::now();
  const double ratio = Seconds(t2, t3) / (Seconds(t0, t1) + Seconds(t1, t2));
  std::printf(
      "RESULT overlap %.3f t(both)/(t(compute)+t(all_reduce)); compute %.3f ms, "
      "all_reduce %.3f ms, both %.3f ms (%s)\n",
      ratio, Seconds(t0, t1) * 1e3, Seconds(t1, t2) * 1e3, Seconds(t2, t3) * 1e3,
      ratio < 0.95 ? "overlapped" : "NOT overlapped");

  // 2. CUDA graph capture and replay.
  {
    bool pass = true;
    Ok(cudaMemset(recv, 0, bytes), "cudaMemset");
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    pass &= Ok(cudaStreamBeginCapture(engine, cudaStreamCaptureModeThreadLocal), "BeginCapture");
    auto work = comm.AllReduceAsync(send, recv, count, DataType::kFloat32, ReduceOp::kSum,
                                    {.stream = engine});
    pass &= Ok(work.status(), "AllReduceAsync during capture");
    pass &= Ok(cudaStreamEndCapture(engine, &graph), "EndCapture");
    if (pass) pass &= Ok(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
    const float want = static_cast<float>(comm.size());
    for (int replay = 0; replay < 3 && pass; ++replay) {
      pass &= Ok(cudaMemset(recv, 0, bytes), "cudaMemset");
      pass &= Ok(cudaGraphLaunch(exec, engine), "cudaGraphLaunch");
      pass &= Ok(cudaStreamSynchronize(engine), "sync");
      float first = 0, last = 0;
      cudaMemcpy(&first, recv, sizeof(float), cudaMemcpyDeviceToHost);
      cudaMemcpy(&last, recv + count - 1, sizeof(float), cudaMemcpyDeviceToHost);
      if (first != want || last != want) {
        std::printf("ERROR graph replay %d: got %g and %g, expected %g\n", replay, first, last,
                    want);
        pass = false;
      }
    }
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
    std::printf("RESULT graph %s capture of AllReduceAsync, 3 replays checked\n",
                pass ? "PASS" : "FAIL");
    if (!pass) ++failures;
  }

  // 3. nmesh / raw NCCL bandwidth.
  {
    auto raw = nmesh::comm::nccl::NativeComm(comm);
    if (Ok(raw.status(), "NativeComm")) {
      auto run_nmesh = [&] {
        Ok(comm.AllReduce(send, recv, count, DataType::kFloat32, ReduceOp::kSum), "AllReduce");
      };
      auto run_raw = [&] {
        ncclAllReduce(send, recv, count, ncclFloat32, ncclSum, *raw, engine);
        cudaStreamSynchronize(engine);
      };
      for (int i = 0; i < 5; ++i) {
        run_nmesh();
        run_raw();
      }
      auto a = Clock::now();
      for (int i = 0; i < 20; ++i) run_nmesh();
      auto b = Clock::now();
      for (int i = 0; i < 20; ++i) run_raw();
      auto c = Clock::now();
      const double nmesh_s = Seconds(a, b) / 20, raw_s = Seconds(b, c) / 20;
      std::printf(
          "RESULT bandwidth %.4f raw/nmesh time at %zu B; nmesh %.3f ms (%.2f GB/s), raw "
          "%.3f ms (%.2f GB/s)\n",
          raw_s / nmesh_s, bytes, nmesh_s * 1e3, bytes / nmesh_s / 1e9, raw_s * 1e3,
          bytes / raw_s / 1e9);
    }
  }
  cudaFree(send);
  cudaFree(recv);
  cudaFree(scratch);
  cudaStreamDestroy(engine);
  cudaStreamDestroy(comm_stream);
  return failures == 0 ? 0 : 1;
}
