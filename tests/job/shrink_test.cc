// PlanShrink against a brute-force oracle written from the rule alone (enumerate the old mesh's
// coordinates, drop the slices holding dead ranks, keep the rest in enumeration order, check the
// contract's size rules by hand), over many shapes and dead sets; its errors; the failure policy
// names. No communication.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/job/recovery.h"
#include "nmesh/job/spec.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/tests/mesh/brute_force.h"

namespace nmesh::job {
namespace {

using ::nmesh::mesh::testing::AllCoordinates;
using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using validate::StrategyKind;

// A mesh shape as the oracle sees it: FSDP2 (pp, dp_replicate, dp_shard, cp, tp), MegatronFSDP
// (dp, cp, tp) or DDP (dp), over `ranks` (empty: 0..n-1).
struct Shape {
  StrategyKind strategy = StrategyKind::kFsdp2;
  int64_t pp = 1, replicate = 1, shard = 1, cp = 1, tp = 1, ep = 1;
  std::vector<int64_t> ranks;
  bool explicit_dp = false;

  std::vector<int64_t> Dims() const {
    switch (strategy) {
      case StrategyKind::kFsdp2:
        return {pp, replicate, shard, cp, tp};
      case StrategyKind::kMegatronFsdp:
        return {shard, cp, tp};
      case StrategyKind::kDdp:
        return {shard};
    }
    return {};
  }
  int64_t Size() const {
    const std::vector<int64_t> dims = Dims();
    return std::accumulate(dims.begin(), dims.end(), int64_t{1}, std::multiplies<>());
  }
  std::string DebugString() const {
    return absl::StrCat("strategy ", static_cast<int>(strategy), " pp ", pp, " R ", replicate,
                        " S/dp ", shard, " cp ", cp, " tp ", tp, " ep ", ep, " ranks [",
                        absl::StrJoin(ranks, ","), "] explicit_dp ", explicit_dp);
  }
};

// The contract's checks (MESH_CONTRACT.md §4) for the shrunk sizes, written out by hand.
bool OracleValid(const Shape& s) {
  if (s.strategy != StrategyKind::kFsdp2) return true;
  const int64_t dp = s.replicate * s.shard;
  if (s.replicate != 1 && s.replicate >= dp) return false;
  return (dp * s.cp * s.tp) % s.ep == 0;
}

struct Expected {
  bool error = false;
  bool unchanged = false;
  Shape shape;  // the new sizes
  std::vector<int64_t> members;
  std::vector<int64_t> left_out;
};

Expected Oracle(const Shape& old, const std::vector<int64_t>& dead) {
  const std::vector<int64_t> dims = old.Dims();
  const std::vector<std::vector<int64_t>> coords = AllCoordinates(dims);
  auto rank_of = [&](size_t i) {
    return old.ranks.empty() ? static_cast<int64_t>(i) : old.ranks[i];
  };
  const std::set<int64_t> dead_set(dead.begin(), dead.end());
  std::vector<size_t> dead_positions;
  for (size_t i = 0; i < coords.size(); ++i) {
    if (dead_set.count(rank_of(i))) dead_positions.push_back(i);
  }
  Expected e;
  e.shape = old;
  if (dead_positions.empty()) {
    e.unchanged = true;
    return e;
  }
  // The axis: dp_replicate (1) while a replica has no dead rank, else dp_shard (2); dp (0).
  int axis = -1;
  if (old.strategy == StrategyKind::kFsdp2) {
    std::set<int64_t> hit_replicas;
    for (size_t i : dead_positions) hit_replicas.insert(coords[i][1]);
    if (old.replicate > 1 && static_cast<int64_t>(hit_replicas.size()) < old.replicate) {
      axis = 1;
    } else if (old.shard > 1) {
      axis = 2;
    }
  } else if (old.shard > 1) {
    axis = 0;
  }
  if (axis < 0) {
    e.error = true;
    return e;
  }
  std::set<int64_t> hit;
  for (size_t i : dead_positions) hit.insert(coords[i][axis]);
  std::vector<int64_t> intact;
  for (int64_t c = 0; c < dims[axis]; ++c) {
    if (!hit.count(c)) intact.push_back(c);
  }
  int64_t count = 0;
  for (int64_t k = static_cast<int64_t>(intact.size()); k >= 1 && count == 0; --k) {
    Shape candidate = old;
    (axis == 1 ? candidate.replicate : candidate.shard) = k;
    if (OracleValid(candidate)) count = k;
  }
  if (count == 0) {
    e.error = true;
    return e;
  }
  (axis == 1 ? e.shape.replicate : e.shape.shard) = count;
  const std::set<int64_t> kept(intact.begin(), intact.begin() + count);
  for (size_t i = 0; i < coords.size(); ++i) {
    if (kept.count(coords[i][axis])) {
      e.members.push_back(rank_of(i));
    } else if (!dead_set.count(rank_of(i))) {
      e.left_out.push_back(rank_of(i));
    }
  }
  std::sort(e.left_out.begin(), e.left_out.end());
  return e;
}

MeshSpec SpecOf(const Shape& s) {
  MeshSpec spec;
  spec.label = "flags";
  config::MeshRequest& r = spec.request;
  r.strategy = s.strategy;
  r.sizes.world_size = s.Size();
  if (s.strategy == StrategyKind::kFsdp2) {
    r.sizes.pp = s.pp;
    if (s.replicate > 1 || s.explicit_dp) r.sizes.dp_replicate = s.replicate;
    r.sizes.ep = s.ep;
    if (s.explicit_dp) r.sizes.dp = s.replicate * s.shard;
  } else if (s.explicit_dp) {
    r.sizes.dp = s.shard;
  }
  if (s.strategy != StrategyKind::kDdp) {
    r.sizes.cp = s.cp;
    r.sizes.tp = s.tp;
  }
  if (!s.ranks.empty()) {
    r.ranks = s.ranks;
    r.job_world_size = *std::max_element(s.ranks.begin(), s.ranks.end()) + 3;
  }
  return spec;
}

// Checks PlanShrink on `old` without `dead` against the oracle.
void CheckAgainstOracle(const Shape& old, const std::vector<int64_t>& dead) {
  SCOPED_TRACE(absl::StrCat(old.DebugString(), " dead [", absl::StrJoin(dead, ","), "]"));
  const MeshSpec spec = SpecOf(old);
  absl::StatusOr<mesh::MeshPlan> plan = PlanMeshSpec(spec);
  ASSERT_THAT(plan, IsOk());
  const Expected e = Oracle(old, dead);
  absl::StatusOr<ShrunkMesh> shrunk = PlanShrink(spec, *plan, dead);
  if (e.error) {
    EXPECT_THAT(shrunk, StatusIs(absl::StatusCode::kFailedPrecondition,
                                 HasSubstr("mesh 'device_mesh' cannot shrink without rank")));
    return;
  }
  ASSERT_THAT(shrunk, IsOk());
  if (e.unchanged) {
    EXPECT_EQ(shrunk->spec.request.ranks, spec.request.ranks);
    EXPECT_EQ(shrunk->spec.request.sizes.world_size, spec.request.sizes.world_size);
    EXPECT_THAT(shrunk->left_out, IsEmpty());
    return;
  }
  ASSERT_TRUE(shrunk->spec.request.ranks.has_value());
  EXPECT_EQ(*shrunk->spec.request.ranks, e.members);
  EXPECT_EQ(shrunk->left_out, e.left_out);
  EXPECT_EQ(shrunk->spec.request.sizes.world_size, static_cast<int64_t>(e.members.size()));
  // The explicit dp sizes are rewritten; inferred ones stay inferred.
  if (old.explicit_dp) {
    EXPECT_EQ(shrunk->spec.request.sizes.dp, old.strategy == StrategyKind::kFsdp2
                                                 ? e.shape.replicate * e.shape.shard
                                                 : e.shape.shard);
  } else {
    EXPECT_FALSE(shrunk->spec.request.sizes.dp.has_value());
  }
  // The new spec plans, to the oracle's sizes.
  absl::StatusOr<mesh::MeshPlan> replanned = PlanMeshSpec(shrunk->spec);
  ASSERT_THAT(replanned, IsOk());
  EXPECT_EQ(replanned->device_mesh().shape(), e.shape.Dims());
  EXPECT_EQ(replanned->sizes().ep_size(), old.ep);
}

TEST(ShrinkTest, MatchesBruteForceOverManyShapes) {
  std::mt19937_64 random(27);
  auto pick = [&](std::initializer_list<int64_t> values) {
    std::vector<int64_t> v(values);
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(random)];
  };
  int checked = 0, shrunk_cases = 0, error_cases = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    Shape s;
    const int strategy = static_cast<int>(random() % 3);
    s.strategy = strategy == 0   ? StrategyKind::kFsdp2
                 : strategy == 1 ? StrategyKind::kMegatronFsdp
                                 : StrategyKind::kDdp;
    s.shard = pick({1, 2, 3, 4, 6, 8});
    if (s.strategy == StrategyKind::kFsdp2) {
      s.pp = pick({1, 2});
      s.replicate = pick({1, 1, 2, 3, 4});
      s.ep = pick({1, 1, 2, 4, 8});
    }
    if (s.strategy != StrategyKind::kDdp) {
      s.cp = pick({1, 2});
      s.tp = pick({1, 2, 4});
    }
    s.explicit_dp = random() % 2 == 0;
    const int64_t n = s.Size();
    const int64_t lowest = s.strategy == StrategyKind::kDdp ? 2 : 8;
    if (n < lowest || n > 64 || !OracleValid(s)) continue;
    if (random() % 3 == 0) {  // a subset of a larger job, in a scrambled order
      std::vector<int64_t> pool(static_cast<size_t>(n + 5));
      std::iota(pool.begin(), pool.end(), int64_t{0});
      std::shuffle(pool.begin(), pool.end(), random);
      s.ranks.assign(pool.begin(), pool.begin() + n);
    }
    std::vector<int64_t> dead;
    const int deaths = static_cast<int>(random() % 4);  // 0..3; a non-member may be among them
    for (int d = 0; d < deaths; ++d) {
      dead.push_back(static_cast<int64_t>(random() % static_cast<uint64_t>(n + 5)));
    }
    if (deaths > 0 && random() % 2 == 0) {  // usually at least one member
      dead.push_back(s.ranks.empty() ? static_cast<int64_t>(random() % n)
                                     : s.ranks[random() % s.ranks.size()]);
    }
    CheckAgainstOracle(s, dead);
    if (HasFatalFailure() || HasFailure()) return;
    const Expected e = Oracle(s, dead);
    ++checked;
    shrunk_cases += !e.error && !e.unchanged;
    error_cases += e.error;
  }
  // The generator reached every outcome often.
  EXPECT_GT(checked, 500);
  EXPECT_GT(shrunk_cases, 200);
  EXPECT_GT(error_cases, 20);
}

TEST(ShrinkTest, DropsTheSliceOfTheDeadRankFsdp2) {
  // world 16, tp 2, cp 2: (1, 1, 4, 2, 2); rank 5 is dp_shard 1.
  Shape s;
  s.shard = 4;
  s.cp = 2;
  s.tp = 2;
  const MeshSpec spec = SpecOf(s);
  absl::StatusOr<mesh::MeshPlan> plan = PlanMeshSpec(spec);
  ASSERT_THAT(plan, IsOk());
  absl::StatusOr<ShrunkMesh> shrunk = PlanShrink(spec, *plan, {5});
  ASSERT_THAT(shrunk, IsOk());
  EXPECT_THAT(*shrunk->spec.request.ranks, ElementsAre(0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15));
  EXPECT_THAT(shrunk->left_out, ElementsAre(4, 6, 7));
  EXPECT_EQ(shrunk->change, "dp_shard 4 -> 3 (dropped the slice of rank 5), 16 -> 12 ranks");
}

TEST(ShrinkTest, HsdpDropsAReplicaFirst) {
  // (1, 2, 2, 1, 2) over 8: replica 0 is ranks 0-3, replica 1 ranks 4-7.
  Shape s;
  s.replicate = 2;
  s.shard = 2;
  s.tp = 2;
  s.explicit_dp = true;
  const MeshSpec spec = SpecOf(s);
  absl::StatusOr<mesh::MeshPlan> plan = PlanMeshSpec(spec);
  ASSERT_THAT(plan, IsOk());
  absl::StatusOr<ShrunkMesh> shrunk = PlanShrink(spec, *plan, {6});
  ASSERT_THAT(shrunk, IsOk());
  EXPECT_THAT(*shrunk->spec.request.ranks, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(shrunk->spec.request.sizes.dp_replicate, 1);
  EXPECT_EQ(shrunk->spec.request.sizes.dp, 2);
  EXPECT_EQ(shrunk->spec.request.sizes.world_size, 4);
  EXPECT_THAT(shrunk->left_out, ElementsAre(4, 5, 7));
  // Both replicas hit: the shards go instead (dp_shard 1 is hit in both), and dp_replicate 2
  // with dp_shard 1 is not FSDP2 (DDP use case): no size passes.
  absl::StatusOr<ShrunkMesh> both = PlanShrink(spec, *plan, {2, 6});
  EXPECT_THAT(both, StatusIs(absl::StatusCode::kFailedPrecondition,
                             AllOf(HasSubstr("mesh 'device_mesh' cannot shrink without ranks 2, 6"),
                                   HasSubstr("no size of dp_shard from 1 down passes"),
                                   HasSubstr("dp_replicate_size=2 must be less than dp_size=2"))));
}

TEST(ShrinkTest, NoDataParallelDimension) {
  Shape s;
  s.tp = 4;
  s.cp = 2;
  const MeshSpec spec = SpecOf(s);
  absl::StatusOr<mesh::MeshPlan> plan = PlanMeshSpec(spec);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(PlanShrink(spec, *plan, {5}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "mesh 'device_mesh' cannot shrink without rank 5: it has no data-parallel "
                       "dimension (dp_replicate 1, dp_shard 1)"));
  Shape m;
  m.strategy = StrategyKind::kMegatronFsdp;
  m.tp = 8;
  const MeshSpec mspec = SpecOf(m);
  absl::StatusOr<mesh::MeshPlan> mplan = PlanMeshSpec(mspec);
  ASSERT_THAT(mplan, IsOk());
  EXPECT_THAT(PlanShrink(mspec, *mplan, {3, 1}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("without ranks 1, 3: it has no data-parallel dimension (dp 1)")));
}

TEST(ShrinkTest, EpMustStillDivide) {
  // (1, 1, 2, 1, 2) with ep 4: one dp_shard slice left gives non_pp 2, which ep 4 does not divide.
  Shape s;
  s.shard = 2;
  s.tp = 2;
  s.ep = 4;
  const MeshSpec spec = SpecOf(s);
  absl::StatusOr<mesh::MeshPlan> plan = PlanMeshSpec(spec);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(PlanShrink(spec, *plan, {1}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("mesh 'device_mesh' cannot shrink without rank 1: no size "
                                       "of dp_shard from 1 down passes: "),
                             HasSubstr("non_pp_size=2 must be a multiple of ep_size=4"))));
  // Every slice hit.
  EXPECT_THAT(PlanShrink(spec, *plan, {0, 3}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("every one of the 2 dp_shard slices holds a dead rank")));
}

TEST(ShrinkTest, TakesTheLargestSizeEpDivides) {
  // 16 ranks, ep 8 (the moonlight recipe's shape): 15 shards intact, ep 8 divides 8 of them.
  Shape s;
  s.shard = 16;
  s.ep = 8;
  const MeshSpec spec = SpecOf(s);
  absl::StatusOr<mesh::MeshPlan> plan = PlanMeshSpec(spec);
  ASSERT_THAT(plan, IsOk());
  absl::StatusOr<ShrunkMesh> shrunk = PlanShrink(spec, *plan, {5});
  ASSERT_THAT(shrunk, IsOk());
  EXPECT_THAT(*shrunk->spec.request.ranks, ElementsAre(0, 1, 2, 3, 4, 6, 7, 8));
  EXPECT_THAT(shrunk->left_out, ElementsAre(9, 10, 11, 12, 13, 14, 15));
  EXPECT_EQ(shrunk->change,
            "dp_shard 16 -> 8 (dropped the slice of rank 5; 7 intact slices left out), "
            "16 -> 8 ranks");
}

TEST(ShrinkTest, UnchangedWithoutADeadMember) {
  Shape s;
  s.shard = 4;
  s.tp = 2;
  s.ranks = {9, 8, 7, 6, 5, 4, 3, 2};
  const MeshSpec spec = SpecOf(s);
  absl::StatusOr<mesh::MeshPlan> plan = PlanMeshSpec(spec);
  ASSERT_THAT(plan, IsOk());
  absl::StatusOr<ShrunkMesh> shrunk = PlanShrink(spec, *plan, {0, 1, 10});
  ASSERT_THAT(shrunk, IsOk());
  EXPECT_EQ(shrunk->spec.request.ranks, spec.request.ranks);
  EXPECT_EQ(shrunk->spec.request.sizes.world_size, 8);
  EXPECT_THAT(shrunk->left_out, IsEmpty());
  EXPECT_EQ(shrunk->change, "unchanged");
}

// A recipe file in the test's temporary directory.
std::string WriteRecipe(const std::string& name, const std::string& text) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(dir != nullptr ? dir : "/tmp") + "/nmesh_shrink_" + name + ".yaml";
  std::ofstream(path) << text;
  return path;
}

TEST(ShrinkTest, StudentAndTeacherMeshesShrinkApart) {
  // The sizes of llama3_2_1b_kd_separate_mesh_teacher_tp2.yaml at world 4: the student (dp 2) on
  // ranks 0-1, the teacher (tp 2) on ranks 2-3.
  MeshOptions options;
  options.config_path = WriteRecipe("kd", R"(distributed:
  strategy: fsdp2
  dp_size: 2
  tp_size: 1
  cp_size: 1
  pp_size: 1
teacher_distributed:
  strategy: fsdp2
  dp_size: 1
  tp_size: 2
  cp_size: 1
  pp_size: 1
separate_meshes: true
)");
  absl::StatusOr<std::vector<MeshSpec>> specs = ResolveMeshSpecs(options, 4, true);
  ASSERT_THAT(specs, IsOk());
  ASSERT_EQ(specs->size(), 2u);
  absl::StatusOr<mesh::MeshPlan> student = PlanMeshSpec((*specs)[0]);
  absl::StatusOr<mesh::MeshPlan> teacher = PlanMeshSpec((*specs)[1]);
  ASSERT_THAT(student, IsOk());
  ASSERT_THAT(teacher, IsOk());

  // Rank 1 dies: the student keeps rank 0 (dp_size 2 -> 1), the teacher is untouched.
  absl::StatusOr<ShrunkMesh> s1 = PlanShrink((*specs)[0], *student, {1});
  ASSERT_THAT(s1, IsOk());
  EXPECT_THAT(*s1->spec.request.ranks, ElementsAre(0));
  EXPECT_EQ(s1->spec.request.sizes.dp, 1);
  EXPECT_EQ(s1->spec.request.sizes.world_size, 1);
  EXPECT_THAT(PlanMeshSpec(s1->spec), IsOk());
  absl::StatusOr<ShrunkMesh> t1 = PlanShrink((*specs)[1], *teacher, {1});
  ASSERT_THAT(t1, IsOk());
  EXPECT_EQ(t1->change, "unchanged");
  EXPECT_EQ(t1->spec.request.ranks, (*specs)[1].request.ranks);

  // Rank 3 dies: the teacher has no data-parallel dimension.
  EXPECT_THAT(PlanShrink((*specs)[1], *teacher, {3}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("mesh 'teacher_distributed' cannot shrink without rank 3: it has "
                                 "no data-parallel dimension (dp_replicate 1, dp_shard 1)")));
}

TEST(ShrinkTest, KeepsTheOrderOfAPackedPlacement) {
  // A mesh planned over ranks gathered by residue (placement pack over 2 hosts): 0,2,4,6,1,3,5,7
  // as (dp_shard 4, tp 2). Rank 4 sits in dp_shard slice 1 = {4, 6}.
  Shape s;
  s.shard = 4;
  s.tp = 2;
  MeshSpec spec = SpecOf(s);
  absl::StatusOr<mesh::Layout> members = mesh::Layout::CreateGatheredByResidue({8}, {"members"}, 2);
  ASSERT_THAT(members, IsOk());
  absl::StatusOr<mesh::MeshPlan> plan = PlanMeshSpecOver(spec, *members);
  ASSERT_THAT(plan, IsOk());
  absl::StatusOr<ShrunkMesh> shrunk = PlanShrink(spec, *plan, {4});
  ASSERT_THAT(shrunk, IsOk());
  EXPECT_THAT(*shrunk->spec.request.ranks, ElementsAre(0, 2, 1, 3, 5, 7));
  EXPECT_THAT(shrunk->left_out, ElementsAre(6));
  // No dead member: the same mesh, its placed order listed so that the spec alone plans it.
  absl::StatusOr<ShrunkMesh> same = PlanShrink(spec, *plan, {9});
  ASSERT_THAT(same, IsOk());
  ASSERT_TRUE(same->spec.request.ranks.has_value());
  EXPECT_THAT(*same->spec.request.ranks, ElementsAre(0, 2, 4, 6, 1, 3, 5, 7));
  EXPECT_EQ(same->change, "unchanged");
  EXPECT_THAT(PlanMeshSpec(same->spec), IsOk());
}

TEST(ShrinkTest, FailurePolicyNames) {
  const std::vector<std::pair<std::string, FailurePolicy>> names = {
      {"abort", FailurePolicy::kAbort},
      {"rebuild", FailurePolicy::kRebuild},
      {"shrink", FailurePolicy::kShrink}};
  for (const auto& [name, policy] : names) {
    absl::StatusOr<FailurePolicy> parsed = ParseFailurePolicy(name);
    ASSERT_THAT(parsed, IsOk());
    EXPECT_EQ(*parsed, policy);
    EXPECT_EQ(FailurePolicyName(policy), name);
  }
  EXPECT_THAT(ParseFailurePolicy("Shrink"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "unknown failure policy 'Shrink': expected abort, rebuild or shrink"));
  EXPECT_THAT(ParseFailurePolicy("ab\x1b[2Jort"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'ab\\x1b[2Jort'")));
}

}  // namespace
}  // namespace nmesh::job
