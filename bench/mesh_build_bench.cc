// The cost of building a mesh on MPI, as ratios against raw-MPI baselines measured in the same
// run (docs/PERFORMANCE.md):
//   P1  nmesh (PlanMesh + DeviceMesh::Create) vs a bare sequence of MPI_Comm_split calls making
//       the same distinct groups (goal: at most 1.10x); also vs the same groups made with bare
//       MPI_Comm_create_group calls (P1'), the cheaper call nmesh's MPI backend uses;
//   P2  the naive per-subgroup creation of PyTorch's/Megatron's `new_group` loops (every rank
//       takes part in an MPI_Comm_create over the world for every subgroup of every named group)
//       vs nmesh (goal: nmesh at least 3x faster);
//   P3  communicators nmesh creates vs one per axis plus one per flattened group (and moe axis).
//
//   scripts/mpirun.sh -np 8 build/bench/mesh_build_bench [--pp 2] [--tp 2] [--cp 1]
//                                                        [--dp-replicate 1] [--ep 4] [--reps 200]
//
// Each repetition runs every variant once, in a rotating order, each between barriers; a
// variant's time is the slowest rank's. Creation only: the communicators are freed outside the
// timed region. Medians over the repetitions are reported by rank 0.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/baselines/baselines.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/config/sizes.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"

namespace nmesh {
namespace {

template <typename T>
T Check(absl::StatusOr<T> value) {
  if (!value.ok()) {
    std::fprintf(stderr, "mesh_build_bench: %s\n", std::string(value.status().message()).c_str());
    std::exit(1);
  }
  return *std::move(value);
}

void Check(const absl::Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "mesh_build_bench: %s\n", std::string(status.message()).c_str());
    std::exit(1);
  }
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

struct Options {
  config::MeshRequest request;
  int reps = 200;
};

Options ParseArgs(int argc, char** argv, int64_t world) {
  Options options;
  options.request.sizes.world_size = world;
  options.request.sizes.pp = 2;
  options.request.sizes.tp = 2;
  options.request.sizes.ep = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int64_t value = std::atoll(argv[i + 1]);
    validate::RequestedSizes& s = options.request.sizes;
    if (flag == "--pp")
      s.pp = value;
    else if (flag == "--tp")
      s.tp = value;
    else if (flag == "--cp")
      s.cp = value;
    else if (flag == "--dp-replicate")
      s.dp_replicate = value;
    else if (flag == "--ep")
      s.ep = value;
    else if (flag == "--reps")
      options.reps = static_cast<int>(value);
    else {
      std::fprintf(stderr, "mesh_build_bench: unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  return options;
}

// Every named group of the plan (native axes, flattened groups, moe axes) as (layout, axes).
struct Named {
  const mesh::Layout* layout;
  mesh::AxisSet axes;
};

std::vector<Named> NamedGroups(const mesh::MeshPlan& plan) {
  std::vector<Named> named;
  const mesh::Layout& layout = plan.device_mesh();
  for (int axis = 0; axis < layout.ndim(); ++axis) {
    named.push_back({&layout, mesh::AxisSet::Of({axis})});
  }
  for (const mesh::FlattenedGroup& group : plan.flattened()) named.push_back({&layout, group.axes});
  if (plan.moe_mesh().has_value()) {
    for (const char* name : {"ep_shard", "ep"}) {
      named.push_back({&plan.moe_mesh()->layout, Check(plan.ResolveGroup(name)).axes});
    }
  }
  return named;
}

// P1's input: this rank's color and key for each split nmesh makes.
std::vector<comm::mpi::baselines::RawSplit> SplitsOf(const mesh::MeshPlan& plan, int64_t rank) {
  std::vector<comm::mpi::baselines::RawSplit> splits;
  for (const mesh::GroupKind& kind : mesh::DistinctGroupKinds(plan)) {
    if (kind.trivial || kind.whole_world) continue;
    const mesh::GroupView group = Check(plan.LayoutOf(kind.mesh).ViewGroup(rank, kind.axes));
    splits.push_back({static_cast<int>(group.index()), static_cast<int>(group.local_rank())});
  }
  return splits;
}

// The other bare form of P1: this rank's group (world ranks) for each split nmesh makes.
std::vector<std::vector<int>> MyGroupsOf(const mesh::MeshPlan& plan, int64_t rank) {
  std::vector<std::vector<int>> mine;
  for (const mesh::GroupKind& kind : mesh::DistinctGroupKinds(plan)) {
    if (kind.trivial || kind.whole_world) continue;
    const mesh::GroupView group = Check(plan.LayoutOf(kind.mesh).ViewGroup(rank, kind.axes));
    std::vector<int>& ranks = mine.emplace_back();
    group.ForEach([&](int64_t r) { ranks.push_back(static_cast<int>(r)); });
  }
  return mine;
}

// P2's input: every group of size > 1 of every named group, in order.
std::vector<std::vector<int>> AllGroups(const mesh::MeshPlan& plan) {
  std::vector<std::vector<int>> groups;
  for (const Named& named : NamedGroups(plan)) {
    const mesh::Layout& layout = *named.layout;
    if (layout.GroupSize(named.axes) == 1) continue;
    for (int64_t p = 0; p < layout.size(); ++p) {
      const mesh::GroupView group = Check(layout.ViewGroup(layout.RankAtPosition(p), named.axes));
      if (group.local_rank() != 0) continue;  // each group once, from its first member
      std::vector<int> ranks;
      group.ForEach([&](int64_t r) { ranks.push_back(static_cast<int>(r)); });
      groups.push_back(std::move(ranks));
    }
  }
  return groups;
}

int Main(int argc, char** argv) {
  std::unique_ptr<comm::mpi::Session> session = Check(comm::mpi::Session::Init(&argc, &argv));
  std::unique_ptr<comm::Communicator> world = Check(comm::mpi::WorldCommunicator(*session));
  // The same world without a timeout, for the variant that opts out of the default one.
  std::unique_ptr<comm::Communicator> untimed =
      Check(comm::mpi::WorldCommunicator(*session, {.name = "world", .timeout = std::nullopt}));
  const int64_t rank = world->rank();
  const Options options = ParseArgs(argc, argv, world->size());
  const mesh::MeshPlan plan = Check(mesh::PlanMesh(options.request));
  const std::vector<comm::mpi::baselines::RawSplit> splits = SplitsOf(plan, rank);
  const std::vector<std::vector<int>> mine = MyGroupsOf(plan, rank);
  const std::vector<std::vector<int>> groups = AllGroups(plan);

  // Each variant creates its communicators and keeps them until after the clock stops.
  struct Variant {
    const char* name;
    std::function<std::shared_ptr<void>()> create;
    std::vector<double> seconds;
  };
  int nmesh_created = 0;
  std::vector<Variant> variants = {
      {"nmesh",
       [&] {
         const mesh::MeshPlan built = Check(mesh::PlanMesh(options.request));
         auto mesh =
             std::make_shared<mesh::DeviceMesh>(Check(mesh::DeviceMesh::Create(built, *world)));
         nmesh_created = mesh->communicators_created();
         return std::shared_ptr<void>(mesh);
       },
       {}},
      {"nmesh, no timeout (opted out)",
       [&] {
         const mesh::MeshPlan built = Check(mesh::PlanMesh(options.request));
         return std::shared_ptr<void>(std::make_shared<mesh::DeviceMesh>(
             Check(mesh::DeviceMesh::Create(built, *untimed, {.timeout = std::nullopt}))));
       },
       {}},
      {"P1 MPI_Comm_split x distinct kinds",
       [&] {
         return std::shared_ptr<void>(std::make_shared<comm::mpi::baselines::RawComms>(
             Check(comm::mpi::baselines::SplitEach(splits))));
       },
       {}},
      {"P2 MPI_Comm_create x every subgroup",
       [&] {
         return std::shared_ptr<void>(std::make_shared<comm::mpi::baselines::RawComms>(
             Check(comm::mpi::baselines::CreateEachGroup(groups))));
       },
       {}},
  };
  // P1 plus the one all-reduce nmesh's agreement check adds (contract §6), to split the overhead
  // into what the contract requires and what nmesh's own bookkeeping costs.
  variants.push_back({"P1 + one all_reduce (the agreement)",
                      [&] {
                        uint64_t fingerprint[2] = {1, 2};
                        Check(world->AllReduce(fingerprint, fingerprint, 2, comm::DataType::kUint64,
                                               comm::ReduceOp::kMin));
                        return std::shared_ptr<void>(
                            std::make_shared<comm::mpi::baselines::RawComms>(
                                Check(comm::mpi::baselines::SplitEach(splits))));
                      },
                      {}});
  // P1's other bare form: MPI_Comm_create_group, in which only each group's members take part
  // (what nmesh's MPI backend does with the groups it knows), so that the report also says what
  // nmesh costs over the best bare sequence.
  variants.push_back({"P1' MPI_Comm_create_group x groups",
                      [&] {
                        return std::shared_ptr<void>(
                            std::make_shared<comm::mpi::baselines::RawComms>(
                                Check(comm::mpi::baselines::CreateGroupEach(mine))));
                      },
                      {}});
  for (int rep = 0; rep < options.reps + 1; ++rep) {
    for (size_t k = 0; k < variants.size(); ++k) {
      Variant& v = variants[(k + static_cast<size_t>(rep)) % variants.size()];
      Check(world->Barrier());
      const absl::Time start = absl::Now();
      std::shared_ptr<void> made = v.create();
      double seconds = absl::ToDoubleSeconds(absl::Now() - start);
      made.reset();
      Check(
          world->AllReduce(&seconds, &seconds, 1, comm::DataType::kFloat64, comm::ReduceOp::kMax));
      if (rep > 0) v.seconds.push_back(seconds);  // the first repetition warms up
    }
  }
  if (rank == 0) {
    const double nmesh = Median(variants[0].seconds);
    const double untimed_nmesh = Median(variants[1].seconds);
    const double p1 = Median(variants[2].seconds);
    const double p2 = Median(variants[3].seconds);
    const size_t named = NamedGroups(plan).size();
    std::printf("mesh: %s, world %d, %d repetitions (medians of the slowest rank)\n",
                plan.device_mesh().DebugString().c_str(), world->size(), options.reps);
    for (const Variant& v : variants) {
      std::printf("  %-38s %10.3f ms\n", v.name, Median(v.seconds) * 1e3);
    }
    std::printf("P1 nmesh / bare MPI_Comm_split      = %.3fx (goal <= 1.10x; %zu splits)\n",
                nmesh / p1, splits.size());
    std::printf("   of which the agreement all_reduce  = %.3fx (P1 + all_reduce / P1)\n",
                Median(variants[4].seconds) / p1);
    std::printf("   nmesh / bare MPI_Comm_create_group = %.3fx (P1')\n",
                nmesh / Median(variants[5].seconds));
    std::printf(
        "   without a timeout (opted out)      = %.3fx of bare MPI_Comm_split, %.3fx of P1'\n",
        untimed_nmesh / p1, untimed_nmesh / Median(variants[5].seconds));
    std::printf("P2 naive new_group loop / nmesh     = %.2fx (goal >= 3x; %zu MPI_Comm_create)\n",
                p2 / nmesh, groups.size());
    std::printf("P3 communicators: nmesh %d vs %zu (one per axis, flattened group and moe axis)\n",
                nmesh_created, named);
  }
  return 0;
}

}  // namespace
}  // namespace nmesh

int main(int argc, char** argv) { return nmesh::Main(argc, argv); }
