// Issue 13 figures (docs/PERFORMANCE.md): the cost of a timeout on MPI's blocking path, the host
// cost of enqueueing an asynchronous all_reduce, and 4 all_reduces on 4 communicators issued
// together against one after another.
//
//   scripts/mpirun.sh -np 2 build/bench/comm_async_bench
//   scripts/mpirun.sh -np 8 build/bench/comm_async_bench --benchmark_filter=FourAxes
//
// A Google Benchmark run by every rank of an MPI job. Iteration counts are fixed (adaptive counts
// could differ between ranks, whose collectives must match); only rank 0 reports. Every benchmark
// checks its result once (a sum of ones must equal the communicator size), so that a broken
// variant cannot look fast. Ratios are computed from the printed times (docs/PERFORMANCE.md).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "benchmark/benchmark.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/session.h"

namespace {

using nmesh::comm::Communicator;
using nmesh::comm::DataType;
using nmesh::comm::ReduceOp;
using nmesh::comm::Work;

nmesh::comm::mpi::Session* session = nullptr;

void Check(const absl::Status& status, const char* what) {
  if (status.ok()) return;
  std::fprintf(stderr, "comm_async_bench: %s: %s\n", what, std::string(status.message()).c_str());
  std::exit(1);
}

std::unique_ptr<Communicator> World(std::optional<absl::Duration> timeout,
                                    bool interruptible = false) {
  auto world = nmesh::comm::mpi::WorldCommunicator(
      *session, {.name = "bench", .timeout = timeout, .interruptible = interruptible});
  Check(world.status(), "WorldCommunicator");
  return *std::move(world);
}

void CheckSum(const std::vector<float>& v, int size, const char* what) {
  if (v.empty() || v[0] != static_cast<float>(size)) {
    std::fprintf(stderr, "comm_async_bench: %s: wrong sum %g, expected %d\n", what,
                 v.empty() ? -1.0 : v[0], size);
    std::exit(1);
  }
}

// Blocking all_reduce of state.range(0) bytes; range(1) = 0: no timeout; 1: a timeout (the
// blocking call, watched by the watchdog); 2: a timeout with CommOptions::interruptible (the
// nonblocking call polled against the deadline).
void BM_BlockingAllReduce(benchmark::State& state) {
  const size_t count = static_cast<size_t>(state.range(0)) / sizeof(float);
  auto comm =
      World(state.range(1) ? std::optional(absl::Seconds(60)) : std::nullopt, state.range(1) == 2);
  std::vector<float> send(count, 1.0f), recv(count);
  Check(comm->Barrier(), "barrier");
  for (auto _ : state) {
    Check(comm->AllReduce(send.data(), recv.data(), count, DataType::kFloat32, ReduceOp::kSum),
          "all_reduce");
  }
  CheckSum(recv, comm->size(), "blocking all_reduce");
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(count * sizeof(float)));
}

// Async all_reduce: the time of the enqueue call only (manual time); the wait is not timed.
// range(1) as for BM_BlockingAllReduce; 2 is also what a job that recovers gives its meshes under
// mpirun (job::JobOptions::on_failure rebuild or shrink: interruptible, with a timeout).
void BM_AsyncEnqueueOnly(benchmark::State& state) {
  const size_t count = static_cast<size_t>(state.range(0)) / sizeof(float);
  auto comm =
      World(state.range(1) ? std::optional(absl::Seconds(60)) : std::nullopt, state.range(1) == 2);
  std::vector<float> send(count, 1.0f), recv(count);
  Check(comm->Barrier(), "barrier");
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    auto work =
        comm->AllReduceAsync(send.data(), recv.data(), count, DataType::kFloat32, ReduceOp::kSum);
    const auto end = std::chrono::steady_clock::now();
    Check(work.status(), "enqueue");
    Check(work->Wait(), "wait");
    state.SetIterationTime(std::chrono::duration<double>(end - start).count());
  }
  CheckSum(recv, comm->size(), "async all_reduce");
}

// Async all_reduce, enqueued and waited per iteration (the --async path of a benchmark loop).
void BM_AsyncEnqueueAndWait(benchmark::State& state) {
  const size_t count = static_cast<size_t>(state.range(0)) / sizeof(float);
  auto comm = World(std::nullopt);
  std::vector<float> send(count, 1.0f), recv(count);
  Check(comm->Barrier(), "barrier");
  for (auto _ : state) {
    auto work =
        comm->AllReduceAsync(send.data(), recv.data(), count, DataType::kFloat32, ReduceOp::kSum);
    Check(work.status(), "enqueue");
    Check(work->Wait(), "wait");
  }
  CheckSum(recv, comm->size(), "async all_reduce");
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(count * sizeof(float)));
}

// 4 all_reduces of 1 MiB on 4 communicators (4 "axes" spanning the world): range(0) = 1 issues
// them asynchronously and waits for all; 0 runs them blocking, one after another.
void BM_FourAxes(benchmark::State& state) {
  const size_t count = (size_t{1} << 20) / sizeof(float);
  auto world = World(std::nullopt);
  std::vector<std::unique_ptr<Communicator>> axes;
  std::vector<std::vector<float>> send(4, std::vector<float>(count, 1.0f)),
      recv(4, std::vector<float>(count));
  for (int a = 0; a < 4; ++a) {
    auto axis = world->Split(0, world->rank(), {.name = "axis" + std::to_string(a)});
    Check(axis.status(), "split");
    axes.push_back(*std::move(axis));
  }
  Check(world->Barrier(), "barrier");
  for (auto _ : state) {
    if (state.range(0)) {
      std::vector<Work> works;
      for (int a = 0; a < 4; ++a) {
        auto work = axes[a]->AllReduceAsync(send[a].data(), recv[a].data(), count,
                                            DataType::kFloat32, ReduceOp::kSum);
        Check(work.status(), "enqueue");
        works.push_back(*std::move(work));
      }
      for (Work& work : works) Check(work.Wait(), "wait");
    } else {
      for (int a = 0; a < 4; ++a) {
        Check(axes[a]->AllReduce(send[a].data(), recv[a].data(), count, DataType::kFloat32,
                                 ReduceOp::kSum),
              "all_reduce");
      }
    }
  }
  for (int a = 0; a < 4; ++a) CheckSum(recv[a], world->size(), "four axes");
}

// Every size runs 1000 iterations (Google Benchmark's iteration count is per family).
constexpr int64_t kIterations = 1000;
void Sizes(benchmark::internal::Benchmark* b, bool with_timeout_arg) {
  for (int64_t bytes : {int64_t{8}, int64_t{65536}, int64_t{1} << 20}) {
    if (with_timeout_arg) {
      b->Args({bytes, 0})->Args({bytes, 1})->Args({bytes, 2});
    } else {
      b->Arg(bytes);
    }
  }
  b->Iterations(kIterations);
}

BENCHMARK(BM_BlockingAllReduce)
    ->Apply([](auto* b) { Sizes(b, true); }) -> ArgNames({"bytes", "timeout"});
BENCHMARK(BM_AsyncEnqueueOnly)
    ->Apply([](auto* b) { Sizes(b, true); }) -> ArgNames({"bytes", "timeout"}) -> UseManualTime();
BENCHMARK(BM_AsyncEnqueueAndWait)->Apply([](auto* b) { Sizes(b, false); });
BENCHMARK(BM_FourAxes)->Arg(0)->Arg(1)->Iterations(100)->ArgNames({"async"});

// Reports nothing: ranks other than 0 run the same benchmarks silently.
class NullReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  auto s = nmesh::comm::mpi::Session::Init(&argc, &argv);
  Check(s.status(), "Session::Init");
  session = s->get();
  benchmark::Initialize(&argc, argv);
  if (session->world_rank() == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    NullReporter quiet;
    benchmark::RunSpecifiedBenchmarks(&quiet);
  }
  benchmark::Shutdown();
  return 0;
}
