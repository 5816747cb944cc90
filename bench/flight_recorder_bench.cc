// The flight recorder's cost per operation (comm/watch/flight_recorder.h): what every communicator
// operation pays to be recorded, against the goal of at most 0.2 us (docs/PERFORMANCE.md).
//
//   build/bench/flight_recorder_bench
//
// BM_RecordOperation is exactly what Communicator adds to an operation: two clock reads and a
// Start/Finish pair on the ring. BM_SelfAllReduce runs a whole recorded operation on the one-rank
// communicator, for scale.
#include <vector>

#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "nmesh/comm/self.h"
#include "nmesh/comm/watch/flight_recorder.h"

namespace {

using nmesh::comm::DataType;
using nmesh::comm::FlightRecorder;
using nmesh::comm::OpKind;

void BM_RecordOperation(benchmark::State& state) {
  FlightRecorder recorder(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    const uint64_t seq = recorder.Start(OpKind::kAllReduce, 1024, DataType::kFloat32, -1,
                                        absl::GetCurrentTimeNanos(), 0);
    recorder.Finish(seq, true, absl::GetCurrentTimeNanos());
  }
  benchmark::DoNotOptimize(recorder.last_seq());
}
BENCHMARK(BM_RecordOperation)->Arg(64)->Arg(4096)->ArgNames({"entries"});

void BM_SelfAllReduce(benchmark::State& state) {
  auto self = nmesh::comm::NewSelfCommunicator({.name = "bench"});
  std::vector<float> send(2, 1.0f), recv(2);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        self->AllReduce<float>(send, absl::MakeSpan(recv), nmesh::comm::ReduceOp::kSum));
  }
}
BENCHMARK(BM_SelfAllReduce);

}  // namespace

BENCHMARK_MAIN();
