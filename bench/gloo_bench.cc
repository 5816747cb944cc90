// The gloo backend (docs/PERFORMANCE.md): nmesh's AllReduce against gloo's own allreduce on the
// same gloo context, and nmesh's mesh build over a gloo world.
//
//   scripts/mpirun.sh -np 2 build/bench/gloo_bench file:///tmp/gloo_bench_$$ [--rounds 51]
//   scripts/mpirun.sh -np 8 build/bench/gloo_bench file:///tmp/gloo_bench_$$ --mesh-reps 20
//
// MPI only launches the processes: rank and size come from the environment (RANK/WORLD_SIZE as
// torchrun sets them, else Open MPI's or PMI's), the world meets through the store URL (a fresh
// directory or Redis prefix per run), and every byte moves over gloo.
//
// AllReduce: for each size (8 B, then 64 KiB to 16 MiB), ROUNDS rounds; in each round both
// variants run one batch of out-of-place float32 sums on the world's gloo context (nmesh through
// Communicator::AllReduce with its own sum; raw through gloo::allreduce with gloo::sum<float>,
// building its options per call as nmesh does), in alternating order. A batch is a barrier, then
// `calls` back-to-back calls; its time per call is the slowest rank's. Reported per size: medians
// of each variant, the median and interquartile range of the per-round ratio raw / nmesh (1.0:
// nmesh adds nothing) and the median added time. Goal: ratio >= 0.98 from 64 KiB. Both variants
// write into one output buffer (each checked once beforehand into a buffer of its own).
//
// Mesh build: with --mesh-reps M (M > 0), M times PlanMesh + DeviceMesh::Create over the world
// (default tp 2, cp 2 and dp over the rest: --tp, --cp, --pp, --dp-replicate), the slowest rank's
// time, median and min, and the communicators created. Results are checked once so a broken
// variant cannot look fast.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gloo/allreduce.h"
#include "gloo/math.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/gloo/communicator.h"
#include "nmesh/comm/gloo/native.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/store/store.h"
#include "nmesh/config/sizes.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"

namespace {

using nmesh::comm::Communicator;
using nmesh::comm::DataType;
using nmesh::comm::ReduceOp;

void Check(const absl::Status& status, const char* what) {
  if (status.ok()) return;
  std::fprintf(stderr, "gloo_bench: %s: %s\n", what, std::string(status.message()).c_str());
  std::exit(1);
}
template <typename T>
T Check(absl::StatusOr<T> value, const char* what) {
  Check(value.status(), what);
  return *std::move(value);
}

int EnvInt(std::initializer_list<const char*> names, int fallback) {
  for (const char* name : names) {
    if (const char* v = std::getenv(name); v != nullptr && *v != '\0') return std::atoi(v);
  }
  return fallback;
}

double Quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double at = q * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(at);
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (at - static_cast<double>(lo));
}
double Median(const std::vector<double>& values) { return Quantile(values, 0.5); }

// Seconds per call of one batch, the slowest rank's.
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

void AllReduceOverhead(Communicator& world, int rounds) {
  const bool root = world.rank() == 0;
  std::shared_ptr<::gloo::Context> raw = Check(nmesh::comm::gloo::NativeContext(world), "native");
  const std::vector<size_t> sizes = {
      8, size_t{64} << 10, size_t{256} << 10, size_t{1} << 20, size_t{4} << 20, size_t{16} << 20};
  if (root) {
    std::printf("# gloo: nmesh AllReduce vs gloo::allreduce on the same gloo context\n");
    std::printf("# %d ranks, %d rounds per size, float32 sum, out of place, medians\n",
                world.size(), rounds);
    std::printf("%12s %7s %12s %12s %10s %17s %12s\n", "size(B)", "calls", "raw(us)", "nmesh(us)",
                "bw ratio", "ratio p25..p75", "added(us)");
  }
  std::vector<double> pooled;
  for (size_t bytes : sizes) {
    const size_t count = bytes / sizeof(float);
    const int calls = static_cast<int>(std::clamp<size_t>((size_t{4} << 20) / bytes, 2, 400));
    // One output buffer for both variants: two buffers of 16 MiB may be backed differently
    // (transparent huge pages or not, depending on where each mapping lands), which would show
    // as a per-byte difference between the variants that is the buffers', not the library's.
    // Each variant's result is checked once, into a buffer of its own, before the timing.
    std::vector<float> send(count, 1.0f), recv(count, 0.0f), raw_recv(count, 0.0f);
    Check(world.AllReduce(send.data(), recv.data(), count, DataType::kFloat32, ReduceOp::kSum),
          "nmesh AllReduce");
    {
      ::gloo::AllreduceOptions opts(raw);
      opts.setInput<float>(send.data(), count);
      opts.setOutput<float>(raw_recv.data(), count);
      opts.setReduceFunction(
          static_cast<void (*)(void*, const void*, const void*, size_t)>(&::gloo::sum<float>));
      ::gloo::allreduce(opts);
    }
    for (size_t i = 0; i < count; ++i) {
      if (recv[i] != static_cast<float>(world.size()) || raw_recv[i] != recv[i]) {
        std::fprintf(stderr, "gloo_bench: wrong sum %g / %g at %zu B\n", recv[i], raw_recv[i],
                     bytes);
        std::exit(1);
      }
    }
    std::vector<float>().swap(raw_recv);
    auto nmesh_batch = [&](int calls) {
      for (int i = 0; i < calls; ++i) {
        Check(world.AllReduce(send.data(), recv.data(), count, DataType::kFloat32, ReduceOp::kSum),
              "nmesh AllReduce");
      }
    };
    auto raw_batch = [&](int calls) {
      for (int i = 0; i < calls; ++i) {
        ::gloo::AllreduceOptions opts(raw);
        opts.setInput<float>(send.data(), count);
        opts.setOutput<float>(recv.data(), count);
        opts.setReduceFunction(
            static_cast<void (*)(void*, const void*, const void*, size_t)>(&::gloo::sum<float>));
        ::gloo::allreduce(opts);
      }
    };
    std::vector<double> nmesh_us, raw_us, added_us, ratios;
    for (int r = 0; r < rounds; ++r) {
      double n = 0, w = 0;
      if (r % 2 == 0) {
        n = TimeBatch(world, calls, nmesh_batch);
        w = TimeBatch(world, calls, raw_batch);
      } else {
        w = TimeBatch(world, calls, raw_batch);
        n = TimeBatch(world, calls, nmesh_batch);
      }
      nmesh_us.push_back(n * 1e6);
      raw_us.push_back(w * 1e6);
      added_us.push_back((n - w) * 1e6);
      ratios.push_back(w / n);
    }
    if (bytes >= (size_t{64} << 10)) pooled.insert(pooled.end(), ratios.begin(), ratios.end());
    for (size_t i = 0; i < count; ++i) {
      if (recv[i] != static_cast<float>(world.size())) {
        std::fprintf(stderr, "gloo_bench: wrong sum %g after the timing at %zu B\n", recv[i],
                     bytes);
        std::exit(1);
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
}

void MeshBuild(Communicator& world, const nmesh::config::MeshRequest& request, int reps) {
  std::vector<double> seconds;
  int created = 0;
  for (int i = 0; i < reps; ++i) {
    Check(world.Barrier(), "barrier");
    const absl::Time start = absl::Now();
    {
      const nmesh::mesh::MeshPlan plan = Check(nmesh::mesh::PlanMesh(request), "plan");
      nmesh::mesh::DeviceMesh mesh =
          Check(nmesh::mesh::DeviceMesh::Create(plan, world), "DeviceMesh::Create");
      double mine = absl::ToDoubleSeconds(absl::Now() - start), slowest = 0;
      Check(
          nmesh::comm::HostAllReduce(world, &mine, &slowest, 1, DataType::kFloat64, ReduceOp::kMax),
          "reducing the time");
      seconds.push_back(slowest);
      created = mesh.communicators_created();
    }
  }
  if (world.rank() == 0) {
    std::printf(
        "# gloo mesh build (PlanMesh + DeviceMesh::Create), %d ranks, tp %lld cp %lld, "
        "%d reps: median %.2f ms, min %.2f ms, %d communicators\n",
        world.size(), static_cast<long long>(request.sizes.tp.value_or(1)),
        static_cast<long long>(request.sizes.cp.value_or(1)), reps, Median(seconds) * 1e3,
        *std::min_element(seconds.begin(), seconds.end()) * 1e3, created);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: gloo_bench STORE_URL [--rounds N] [--mesh-reps M] [--tp T] "
                 "[--cp C] [--pp P] [--dp-replicate D]\n");
    return 2;
  }
  const int rank = EnvInt({"RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"}, 0);
  const int size = EnvInt({"WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}, 1);
  int rounds = 51, mesh_reps = 0;
  nmesh::config::MeshRequest request;
  request.sizes.world_size = size;
  request.sizes.tp = 2;
  request.sizes.cp = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--rounds") {
      rounds = std::max(0, value);
    } else if (flag == "--mesh-reps") {
      mesh_reps = std::max(0, value);
    } else if (flag == "--tp") {
      request.sizes.tp = value;
    } else if (flag == "--cp") {
      request.sizes.cp = value;
    } else if (flag == "--pp") {
      request.sizes.pp = value;
    } else if (flag == "--dp-replicate") {
      request.sizes.dp_replicate = value;
    } else {
      std::fprintf(stderr, "gloo_bench: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  std::shared_ptr<nmesh::comm::Store> store =
      Check(nmesh::comm::store::OpenStore(argv[1]), "store");
  std::unique_ptr<Communicator> world =
      Check(nmesh::comm::gloo::WorldCommunicator(store, rank, size, {.name = "world"},
                                                 {.hostname = "127.0.0.1"}),
            "gloo world");
  if (rounds > 0) AllReduceOverhead(*world, rounds);
  if (mesh_reps > 0) MeshBuild(*world, request, mesh_reps);
  return 0;
}
