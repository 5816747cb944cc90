// Per-rank planning cost at large worlds: nmesh answers for one rank without work proportional to
// the world. Run: build/bench/plan_benchmark
#include <cstdint>

#include "benchmark/benchmark.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::mesh {
namespace {

// FSDP2 with pp 8, tp 8, cp 4, ep 16 at world state.range(0).
MeshPlan LargePlan(int64_t world) {
  config::MeshRequest request;
  request.sizes.world_size = world;
  request.sizes.pp = 8;
  request.sizes.tp = 8;
  request.sizes.cp = 4;
  request.sizes.ep = 16;
  return *PlanMesh(request);
}

void BM_PlanMesh(benchmark::State& state) {
  config::MeshRequest request;
  request.sizes.world_size = state.range(0);
  request.sizes.pp = 8;
  request.sizes.tp = 8;
  request.sizes.cp = 4;
  request.sizes.ep = 16;
  for (auto _ : state) benchmark::DoNotOptimize(PlanMesh(request));
}
BENCHMARK(BM_PlanMesh)->Arg(int64_t{1} << 20)->Arg(int64_t{1} << 30);

// Coordinate, index and local rank of every group (what a communicator split needs).
void BM_QueryRank(benchmark::State& state) {
  const MeshPlan plan = LargePlan(state.range(0));
  int64_t rank = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(plan.QueryRank(rank));
    rank = (rank + 7919) % plan.device_mesh().size();
  }
}
BENCHMARK(BM_QueryRank)->Arg(int64_t{1} << 20)->Arg(int64_t{1} << 30);

// One small group listed (tp: 8 ranks).
void BM_TpGroupRanks(benchmark::State& state) {
  const MeshPlan plan = LargePlan(state.range(0));
  int64_t rank = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(plan.ViewGroup(rank, "tp")->Ranks());
    rank = (rank + 7919) % plan.device_mesh().size();
  }
}
BENCHMARK(BM_TpGroupRanks)->Arg(int64_t{1} << 20)->Arg(int64_t{1} << 30);

// Every group of one rank listed: O(total group size), here dominated by dp_shard_cp and dp_cp
// (world / 64 ranks each).
void BM_QueryRankAllGroupRanks(benchmark::State& state) {
  const MeshPlan plan = LargePlan(state.range(0));
  int64_t rank = 0;
  int64_t listed = 0;
  for (auto _ : state) {
    RankPlan me = *plan.QueryRank(rank);
    for (const NamedGroup& group : me.groups) listed += group.group.Ranks().size();
    for (const NamedGroup& group : *me.moe_groups) listed += group.group.Ranks().size();
    rank = (rank + 7919) % plan.device_mesh().size();
  }
  state.counters["ranks_listed_per_query"] =
      benchmark::Counter(static_cast<double>(listed) / state.iterations());
}
BENCHMARK(BM_QueryRankAllGroupRanks)->Arg(int64_t{1} << 20);

void BM_DistinctGroupKinds(benchmark::State& state) {
  const MeshPlan plan = LargePlan(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(DistinctGroupKinds(plan));
}
BENCHMARK(BM_DistinctGroupKinds)->Arg(int64_t{1} << 20)->Arg(int64_t{1} << 30);

}  // namespace
}  // namespace nmesh::mesh

BENCHMARK_MAIN();
