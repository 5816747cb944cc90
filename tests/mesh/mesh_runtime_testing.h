// Shared pieces of the DeviceMesh and MeshContext tests: the world of each backend factory
// (BackendWorldTest, over tests/comm/backends.h) or the MPI world, mesh specs, and the expected
// meshes computed by brute force from the contract's definitions (shapes from the sizes, groups
// from coordinates: tests/mesh/brute_force.h), never from mesh/plan.
#ifndef NMESH_TESTS_MESH_MESH_RUNTIME_TESTING_H_
#define NMESH_TESTS_MESH_MESH_RUNTIME_TESTING_H_

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/comm/mpi/testing/session.h"
#include "nmesh/config/sizes.h"
#include "nmesh/config/strategy.h"
#include "nmesh/tests/comm/backends.h"
#include "nmesh/tests/mesh/brute_force.h"

namespace nmesh::mesh::testing {

using ::nmesh::comm::mpi::testing::TheSession;

// A fresh duplicate of MPI_COMM_WORLD (aborting a mesh may abort it).
inline std::unique_ptr<comm::Communicator> NewWorld(comm::CommOptions options = {.name = "world"}) {
  auto world = comm::mpi::WorldCommunicator(TheSession(), std::move(options));
  if (!world.ok()) {
    std::fprintf(stderr, "%s\n", std::string(world.status().message()).c_str());
    std::abort();
  }
  return *std::move(world);
}

// A test run once per backend factory (mpi, mpi_timed, self, nccl where built): World() is a fresh
// world communicator of the backend, spanning every rank it spans (one rank for self). The test
// skips, saying why, where the backend cannot run (nccl without a GPU).
class BackendWorldTest : public ::testing::TestWithParam<comm::testing::Backend> {
 protected:
  void SetUp() override {
    std::string skip;
    auto world = GetParam().make("world", &skip);
    ASSERT_TRUE(world.ok()) << world.status();
    if (*world == nullptr) GTEST_SKIP() << skip;
    first_ = *std::move(world);
  }

  // The world made by SetUp on the first call, a new one on later calls.
  std::unique_ptr<comm::Communicator> World() {
    if (first_ != nullptr) return std::move(first_);
    std::string skip;
    auto world = GetParam().make("world", &skip);
    if (!world.ok() || *world == nullptr) {
      std::fprintf(stderr, "backend %s: no second world: %s\n", GetParam().name.c_str(),
                   world.ok() ? skip.c_str() : std::string(world.status().message()).c_str());
      std::abort();
    }
    return *std::move(world);
  }

 private:
  std::unique_ptr<comm::Communicator> first_;
};

// A mesh to build: the sizes as a user gives them.
struct Spec {
  std::string label = {};
  config::StrategyKind strategy = config::StrategyKind::kFsdp2;
  int64_t pp = 1, dp_replicate = 1, cp = 1, tp = 1, ep = 1;
  // The number of ranks the mesh spans; with `ranks`, their count.
  int64_t size = 1;
  std::vector<int64_t> ranks = {};  // empty: 0..size-1
};

inline config::MeshRequest RequestOf(const Spec& spec, int64_t job_world) {
  config::MeshRequest request;
  request.strategy = spec.strategy;
  request.sizes.pp = spec.pp;
  request.sizes.cp = spec.cp;
  request.sizes.tp = spec.tp;
  request.sizes.ep = spec.ep;
  if (spec.strategy == config::StrategyKind::kFsdp2) request.sizes.dp_replicate = spec.dp_replicate;
  if (spec.ranks.empty()) {
    request.sizes.world_size = spec.size;
  } else {
    request.ranks = spec.ranks;
    request.job_world_size = job_world;
  }
  return request;
}

// One named group: its mesh (device or moe) and the axes it spans there.
struct NamedSet {
  std::string name;
  bool moe = false;
  std::vector<bool> in_set;
};

// What the contract says the meshes of a spec are.
struct Expected {
  std::vector<std::string> axis_names;
  BruteMesh device;
  std::optional<BruteMesh> moe;  // shape (pp, ep_shard, ep) over the same ranks
  std::vector<NamedSet> groups;  // native axes, flattened groups, then moe axes

  const BruteMesh& MeshOf(const NamedSet& g) const { return g.moe ? *moe : device; }
};

inline Expected ExpectedOf(const Spec& s) {
  const int64_t n = s.ranks.empty() ? s.size : static_cast<int64_t>(s.ranks.size());
  Expected e;
  auto mesh = [&](std::vector<int64_t> shape) { return BruteMesh{std::move(shape), s.ranks}; };
  if (s.strategy == config::StrategyKind::kFsdp2) {
    const int64_t dp = n / (s.tp * s.cp * s.pp);
    e.axis_names = {"pp", "dp_replicate", "dp_shard", "cp", "tp"};
    e.device = mesh({s.pp, s.dp_replicate, dp / s.dp_replicate, s.cp, s.tp});
    for (int a = 0; a < 5; ++a) {
      std::vector<bool> in(5, false);
      in[static_cast<size_t>(a)] = true;
      e.groups.push_back({e.axis_names[static_cast<size_t>(a)], false, in});
    }
    e.groups.push_back({"dp", false, {false, true, true, false, false}});
    e.groups.push_back({"dp_shard_cp", false, {false, false, true, true, false}});
    e.groups.push_back({"dp_cp", false, {false, true, true, true, false}});
    if (s.ep > 1) {
      const int64_t non_pp = n / s.pp;
      e.moe = mesh({s.pp, non_pp / s.ep, s.ep});
      e.groups.push_back({"ep_shard", true, {false, true, false}});
      e.groups.push_back({"ep", true, {false, false, true}});
    }
  } else if (s.strategy == config::StrategyKind::kMegatronFsdp) {
    e.axis_names = {"dp", "cp", "tp"};
    e.device = mesh({n / (s.tp * s.cp), s.cp, s.tp});
    e.groups = {{"dp", false, {true, false, false}},
                {"cp", false, {false, true, false}},
                {"tp", false, {false, false, true}}};
    if (s.cp > 1) e.groups.push_back({"dp_cp", false, {true, true, false}});
  } else {
    e.axis_names = {"dp"};
    e.device = mesh({n});
    e.groups = {{"dp", false, {true}}};
  }
  return e;
}

// The number of splits a mesh needs, by brute force: each named group's partition (its groups, in
// order), deduplicated, without trivial partitions and, when the mesh reuses the world
// (`world_reused`), without the whole world in order.
inline int BruteSplitCount(const Expected& e, int64_t world_size, bool world_reused = true) {
  std::vector<int64_t> world(static_cast<size_t>(world_size));
  std::iota(world.begin(), world.end(), 0);
  std::set<std::vector<std::vector<int64_t>>> partitions;
  for (const NamedSet& g : e.groups) {
    std::vector<std::vector<int64_t>> p = BrutePartition(e.MeshOf(g), g.in_set);
    std::sort(p.begin(), p.end());
    const bool trivial =
        std::all_of(p.begin(), p.end(), [](const auto& x) { return x.size() == 1; });
    const bool whole_world = p.size() == 1 && p[0] == world;
    if (!trivial && !(whole_world && world_reused)) partitions.insert(p);
  }
  return static_cast<int>(partitions.size());
}

// Whether `rank` is one of the spec's ranks.
inline bool IsMember(const Spec& s, int64_t rank) {
  if (s.ranks.empty()) return rank < s.size;
  return std::find(s.ranks.begin(), s.ranks.end(), rank) != s.ranks.end();
}

}  // namespace nmesh::mesh::testing

#endif  // NMESH_TESTS_MESH_MESH_RUNTIME_TESTING_H_
