// P5 (docs/PERFORMANCE.md): what nmesh's AllReduce adds to a raw MPI_Allreduce on the same MPI
// communicator.
//
//   scripts/mpirun.sh -np 8 build/bench/allreduce_overhead_bench [ROUNDS [--recovery]]
//
// For each size (8 B, then 64 KiB to 16 MiB), ROUNDS rounds (default 101); in each round both
// variants run one batch of calls on the MPI world communicator (no timeout, so nmesh takes its
// blocking path), in alternating order (nmesh first in even rounds, raw first in odd ones) so that
// drift and warm-up hit both alike. A batch is a barrier, then `calls` back-to-back out-of-place
// float32 sums; its time per call is the slowest rank's. Reported per size: the median per-call
// time of each variant over the rounds; the bandwidth ratio raw / nmesh of each round (1.0 means
// nmesh adds nothing), as its median and interquartile range over the rounds (the spread shows
// the noise of the machine); and the median over rounds of the paired difference nmesh - raw (the
// added latency). Pairing the two variants of one round cancels drift between rounds. A last line
// pools the ratios of every size from 64 KiB.
// Goals: ratio >= 0.98 from 64 KiB; added latency <= 1 us at 8 B.
//
// Not a Google Benchmark: every sample needs the whole MPI job. The results are checked once (a
// sum of ones must equal the world size) so that a broken variant cannot look fast.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/mpi/baselines/allreduce_baseline.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/session.h"

namespace {

using nmesh::comm::Communicator;
using nmesh::comm::DataType;
using nmesh::comm::ReduceOp;

void Check(const absl::Status& status, const char* what) {
  if (status.ok()) return;
  std::fprintf(stderr, "allreduce_overhead_bench: %s: %s\n", what,
               std::string(status.message()).c_str());
  std::exit(1);
}

// The q-quantile (0 <= q <= 1) by linear interpolation between order statistics.
double Quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double at = q * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(at);
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (at - static_cast<double>(lo));
}
double Median(const std::vector<double>& values) { return Quantile(values, 0.5); }

// Seconds per call of one batch (`batch(calls)` makes the calls), the slowest rank's.
template <typename Batch>
double TimeBatch(Communicator& world, int calls, Batch batch) {
  Check(world.Barrier(), "barrier");
  const auto start = std::chrono::steady_clock::now();
  batch(calls);
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  double mine = elapsed.count() / calls, slowest = 0;
  Check(nmesh::comm::HostAllReduce(world, &mine, &slowest, 1, DataType::kFloat64, ReduceOp::kMax),
        "reducing the time");
  return slowest;
}

}  // namespace

int main(int argc, char** argv) {
  auto session = nmesh::comm::mpi::Session::Init(&argc, &argv);
  Check(session.status(), "MPI_Init");
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 101;
  // --recovery: the communicator a job that recovers gives an engine under mpirun (job::JobOptions
  // on_failure rebuild or shrink): interruptible, with the default 10-minute timeout.
  const bool recovery = argc > 2 && std::string(argv[2]) == "--recovery";
  nmesh::comm::CommOptions options{.name = "world"};
  if (recovery) {
    options.timeout = absl::Minutes(10);
    options.interruptible = true;
  }
  auto world_or = nmesh::comm::mpi::WorldCommunicator(**session, options);
  Check(world_or.status(), "world communicator");
  Communicator& world = **world_or;
  const bool root = world.rank() == 0;

  const std::vector<size_t> sizes = {
      8, size_t{64} << 10, size_t{256} << 10, size_t{1} << 20, size_t{4} << 20, size_t{16} << 20};
  if (root) {
    std::printf("# P5: nmesh AllReduce vs raw MPI_Allreduce on the same communicator%s\n",
                recovery ? " (recovery enabled: interruptible, 10-minute timeout)" : "");
    std::printf("# %d ranks, %d rounds per size, float32 sum, out of place, medians\n",
                world.size(), rounds);
    std::printf("%12s %7s %12s %12s %10s %17s %12s\n", "size(B)", "calls", "raw(us)", "nmesh(us)",
                "bw ratio", "ratio p25..p75", "added(us)");
  }
  std::vector<double> pooled;  // ratios of every round of every size from 64 KiB
  for (size_t bytes : sizes) {
    const size_t count = bytes / sizeof(float);
    // About 4 MiB of traffic per batch, at least 2 and at most 400 calls.
    const int calls = static_cast<int>(std::clamp<size_t>((size_t{4} << 20) / bytes, 2, 400));
    std::vector<float> send(count, 1.0f), recv(count, 0.0f);
    // The user's view of each: nmesh's call per iteration, and MPI_Allreduce in a bare loop on
    // the same MPI_Comm (RawAllReduce resolves the communicator and datatype once per batch).
    auto nmesh_batch = [&](int calls) {
      for (int i = 0; i < calls; ++i) {
        Check(world.AllReduce(send.data(), recv.data(), count, DataType::kFloat32, ReduceOp::kSum),
              "nmesh AllReduce");
      }
    };
    auto raw_batch = [&](int calls) {
      Check(nmesh::comm::mpi::baselines::RawAllReduce(world, send.data(), recv.data(), count,
                                                      DataType::kFloat32, ReduceOp::kSum, calls),
            "raw MPI_Allreduce");
    };
    std::vector<double> nmesh_us, raw_us, added_us, ratios;
    for (int r = 0; r < rounds; ++r) {
      double n = 0, raw = 0;
      if (r % 2 == 0) {
        n = TimeBatch(world, calls, nmesh_batch);
        raw = TimeBatch(world, calls, raw_batch);
      } else {
        raw = TimeBatch(world, calls, raw_batch);
        n = TimeBatch(world, calls, nmesh_batch);
      }
      nmesh_us.push_back(n * 1e6);
      raw_us.push_back(raw * 1e6);
      added_us.push_back((n - raw) * 1e6);
      ratios.push_back(raw / n);
    }
    if (bytes >= (size_t{64} << 10)) pooled.insert(pooled.end(), ratios.begin(), ratios.end());
    for (float value : recv) {
      if (value != static_cast<float>(world.size())) {
        std::fprintf(stderr, "allreduce_overhead_bench: wrong sum %g at %zu B\n", value, bytes);
        return 1;
      }
    }
    if (root) {
      std::printf("%12zu %7d %12.3f %12.3f %10.4f %8.4f..%.4f %12.3f\n", bytes, calls,
                  Median(raw_us), Median(nmesh_us), Median(ratios), Quantile(ratios, 0.25),
                  Quantile(ratios, 0.75), Median(added_us));
      std::fflush(stdout);
    }
  }
  if (root) {
    std::printf("# bw ratio from 64 KiB, all rounds pooled: median %.4f (p25 %.4f, p75 %.4f)\n",
                Median(pooled), Quantile(pooled, 0.25), Quantile(pooled, 0.75));
  }
  return 0;
}
