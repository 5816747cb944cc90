#include "nmesh/job/placement.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/job/spec.h"
#include "nmesh/mesh/layout.h"
#include "nmesh/tests/mesh/brute_force.h"

namespace nmesh::job {
namespace {

using ::nmesh::mesh::testing::BruteMesh;
using ::nmesh::mesh::testing::BrutePartition;
using ::nmesh::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Every subset of the axes of `shape`, as flags.
std::vector<std::vector<bool>> AllSubsets(size_t ndim) {
  std::vector<std::vector<bool>> subsets;
  for (uint32_t bits = 1; bits < (1u << ndim); ++bits) {
    std::vector<bool> in(ndim);
    for (size_t a = 0; a < ndim; ++a) in[a] = (bits >> a) & 1u;
    subsets.push_back(in);
  }
  return subsets;
}

mesh::AxisSet SetOf(const std::vector<bool>& in) {
  mesh::AxisSet set;
  for (size_t a = 0; a < in.size(); ++a) {
    if (in[a]) set = set.With(static_cast<int>(a));
  }
  return set;
}

// Whether every group of `in` over positions 0..n-1 has one value of class_of(position).
template <typename ClassOf>
bool BruteWithin(const std::vector<int64_t>& shape, const std::vector<bool>& in, ClassOf class_of) {
  const BruteMesh brute{shape, {}};
  for (const std::vector<int64_t>& group : BrutePartition(brute, in)) {
    for (int64_t p : group) {
      if (class_of(p) != class_of(group.front())) return false;
    }
  }
  return true;
}

TEST(GroupsWithinTest, BlocksAndResiduesMatchBruteForce) {
  const std::vector<std::vector<int64_t>> shapes = {
      {2, 2, 2}, {3, 4}, {2, 3, 2}, {4, 1, 3, 2}, {2, 2, 2, 2, 2}, {1, 6, 1, 2, 3}, {5, 3}};
  int checked = 0;
  for (const std::vector<int64_t>& shape : shapes) {
    std::vector<std::string> names;
    for (size_t a = 0; a < shape.size(); ++a) names.push_back("a" + std::to_string(a));
    ASSERT_OK_AND_ASSIGN(mesh::Layout layout, mesh::Layout::Create(shape, names));
    for (const std::vector<bool>& in : AllSubsets(shape.size())) {
      for (int64_t block = 1; block <= layout.size() + 1; ++block) {
        const bool want = BruteWithin(shape, in, [&](int64_t p) { return p / block; });
        EXPECT_EQ(GroupsWithinBlocks(layout, SetOf(in), block), want)
            << layout.DebugString() << " axes " << SetOf(in).bits() << " block " << block;
        const bool want_residue = BruteWithin(shape, in, [&](int64_t p) { return p % block; });
        EXPECT_EQ(GroupsWithinResidues(layout, SetOf(in), block), want_residue)
            << layout.DebugString() << " axes " << SetOf(in).bits() << " period " << block;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 500);
}

TEST(GroupsWithinTest, LargeMeshesNeedNoPerRankWork) {
  // 2^20 positions: tp and cp inside blocks of 8, dp_shard not; each answer is arithmetic.
  ASSERT_OK_AND_ASSIGN(mesh::Layout layout,
                       mesh::Layout::Create({1, 1, int64_t{1} << 18, 2, 2},
                                            {"pp", "dp_replicate", "dp_shard", "cp", "tp"}));
  EXPECT_TRUE(GroupsWithinBlocks(layout, mesh::AxisSet::Of({4}), 8));
  EXPECT_TRUE(GroupsWithinBlocks(layout, mesh::AxisSet::Of({3, 4}), 8));
  EXPECT_FALSE(GroupsWithinBlocks(layout, mesh::AxisSet::Of({2}), 8));
  EXPECT_FALSE(GroupsWithinBlocks(layout, mesh::AxisSet::Of({2, 3}), 8));
  EXPECT_TRUE(GroupsWithinResidues(layout, mesh::AxisSet::Of({2}), 4));
  EXPECT_FALSE(GroupsWithinResidues(layout, mesh::AxisSet::Of({2}), 8));
}

TEST(PackByHostTest, OrdersByHostOfFirstAppearanceThenRank) {
  const std::vector<std::string> hosts = {"a", "b", "a", "b", "c", "c", "a", "b"};
  ASSERT_OK_AND_ASSIGN(std::vector<int64_t> packed,
                       PackByHost(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}, hosts));
  EXPECT_THAT(packed, ElementsAre(0, 2, 6, 1, 3, 7, 4, 5));
  // A subset, listed from host c first: c's ranks come first.
  ASSERT_OK_AND_ASSIGN(packed, PackByHost(std::vector<int64_t>{5, 1, 4, 0, 3}, hosts));
  EXPECT_THAT(packed, ElementsAre(4, 5, 1, 3, 0));
  EXPECT_THAT(PackByHost(std::vector<int64_t>{8}, hosts),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("mesh rank 8")));
}

TEST(ParsePlacementTest, NamesAndErrors) {
  ASSERT_OK_AND_ASSIGN(Placement pack, ParsePlacement("pack"));
  EXPECT_EQ(pack, Placement::kPack);
  ASSERT_OK_AND_ASSIGN(Placement launched, ParsePlacement("as-launched"));
  EXPECT_EQ(launched, Placement::kAsLaunched);
  EXPECT_THAT(ParsePlacement("packed"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'packed'")));
  EXPECT_EQ(PlacementName(Placement::kPack), "pack");
  EXPECT_THAT(ParseLaunchOrder("round-robin"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'round-robin'")));
}

HostLayout Hosts(int64_t hosts, int64_t per_host, LaunchOrder order = LaunchOrder::kBySlot,
                 std::optional<int64_t> per_domain = std::nullopt) {
  return HostLayout{
      .hosts = hosts, .ranks_per_host = per_host, .order = order, .ranks_per_domain = per_domain};
}

MeshSpec Fsdp2Spec(int64_t world, int64_t tp, int64_t cp, int64_t ep, int64_t pp) {
  MeshSpec spec;
  spec.label = "flags";
  spec.request.sizes.tp = tp;
  spec.request.sizes.pp = pp;
  spec.request.sizes.cp = cp;
  spec.request.sizes.ep = ep;
  spec.request.sizes.world_size = world;
  return spec;
}

// The launcher's layout and the packed order, computed here independently of the library.
std::vector<int64_t> ExpectedOrder(int64_t n, const HostLayout& hosts, Placement placement) {
  auto host_of = [&](int64_t r) {
    return hosts.order == LaunchOrder::kByNode ? r % hosts.hosts : r / hosts.ranks_per_host;
  };
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (placement == Placement::kPack) {
    std::map<int64_t, int64_t> first;
    for (int64_t r = 0; r < n; ++r) first.emplace(host_of(r), r);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return first[host_of(a)] < first[host_of(b)]; });
  }
  return order;
}

struct Sizes {
  int64_t tp, cp, ep, pp;
};

// Checks `placed` (an FSDP2 mesh of `world` ranks and sizes `s`) against brute force: the order
// of its ranks, and every group of every kind by its members' hosts and domains. Returns the
// number of group kinds checked.
int ExpectPlacementMatchesBruteForce(const PlacedPlan& placed, int64_t world, const Sizes& s,
                                     const HostLayout& hosts, Placement placement) {
  const std::vector<int64_t> order = ExpectedOrder(world, hosts, placement);
  const mesh::Layout& layout = placed.plan.device_mesh();
  EXPECT_EQ(layout.size(), world);
  if (layout.size() != world) return 0;
  for (int64_t p = 0; p < world; ++p) {
    EXPECT_EQ(layout.RankAtPosition(p), order[static_cast<size_t>(p)]) << "position " << p;
    EXPECT_EQ(layout.PositionOf(order[static_cast<size_t>(p)]), p) << "position " << p;
  }
  // Brute force: every group of every kind, by its members' hosts and domains.
  const int64_t dp_shard = world / (s.tp * s.cp * s.pp);
  const std::vector<int64_t> shape = {s.pp, 1, dp_shard, s.cp, s.tp};
  const BruteMesh device{shape, order};
  std::map<std::string, std::vector<bool>> kinds = ::nmesh::mesh::testing::Fsdp2NamedGroups();
  const int64_t hosts_per_domain =
      hosts.ranks_per_domain.value_or(hosts.ranks_per_host) / hosts.ranks_per_host;
  auto host_of = [&](int64_t r) {
    return hosts.order == LaunchOrder::kByNode ? r % hosts.hosts : r / hosts.ranks_per_host;
  };
  auto within = [&](const BruteMesh& m, const std::vector<bool>& in, int64_t per) {
    for (const std::vector<int64_t>& group : BrutePartition(m, in)) {
      for (int64_t r : group) {
        if (host_of(r) / per != host_of(group.front()) / per) return false;
      }
    }
    return true;
  };
  EXPECT_EQ(placed.groups.size(), kinds.size() + (s.ep > 1 ? 2 : 0));
  EXPECT_EQ(placed.intra_domain.size(),
            hosts.ranks_per_domain.has_value() ? placed.groups.size() : 0);
  int checked = 0;
  for (size_t g = 0; g < placed.groups.size(); ++g) {
    const GroupPlacement& row = placed.groups[g];
    bool want = false;
    bool want_domain = false;
    if (kinds.count(row.name)) {
      want = within(device, kinds[row.name], 1);
      want_domain = within(device, kinds[row.name], hosts_per_domain);
    } else {
      const BruteMesh moe{{s.pp, dp_shard * s.cp * s.tp / s.ep, s.ep}, order};
      const std::vector<bool> in = row.name == "ep" ? std::vector<bool>{false, false, true}
                                                    : std::vector<bool>{false, true, false};
      want = within(moe, in, 1);
      want_domain = within(moe, in, hosts_per_domain);
    }
    EXPECT_EQ(row.intra_host, want) << row.name;
    if (g < placed.intra_domain.size()) {
      EXPECT_EQ(bool(placed.intra_domain[g]), want_domain) << row.name << " domain";
    }
    ++checked;
  }
  return checked;
}

TEST(PlaceOnHostsTest, MatchesBruteForceOverLayouts) {
  int checked = 0;
  for (const HostLayout& hosts :
       {Hosts(2, 4, LaunchOrder::kBySlot), Hosts(2, 4, LaunchOrder::kByNode),
        Hosts(4, 2, LaunchOrder::kByNode), Hosts(4, 4, LaunchOrder::kByNode),
        Hosts(3, 4, LaunchOrder::kByNode), Hosts(8, 2, LaunchOrder::kBySlot),
        Hosts(2, 8, LaunchOrder::kByNode, 16), Hosts(4, 2, LaunchOrder::kBySlot, 4),
        Hosts(4, 4, LaunchOrder::kByNode, 8)}) {
    for (const Sizes& s : {Sizes{2, 2, 1, 1}, Sizes{2, 1, 4, 1}, Sizes{1, 2, 2, 2},
                           Sizes{4, 1, 1, 1}, Sizes{2, 1, 2, 2}}) {
      for (int64_t world : {int64_t{8}, hosts.world()}) {
        if (world > hosts.world() || world % (s.tp * s.cp * s.pp) != 0) continue;
        for (Placement placement : {Placement::kAsLaunched, Placement::kPack}) {
          SCOPED_TRACE(::testing::Message() << hosts.hosts << "x" << hosts.ranks_per_host << " by "
                                            << LaunchOrderName(hosts.order) << " world " << world
                                            << " tp " << s.tp << " cp " << s.cp << " ep " << s.ep
                                            << " pp " << s.pp << " " << PlacementName(placement));
          ASSERT_OK_AND_ASSIGN(
              PlacedPlan placed,
              PlaceOnHosts(Fsdp2Spec(world, s.tp, s.cp, s.ep, s.pp), hosts, placement));
          checked += ExpectPlacementMatchesBruteForce(placed, world, s, hosts, placement);
        }
      }
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(PlaceOnHostsTest, ClosedFormPackingMatchesBruteForceOnManyLayouts) {
  // Every small layout: hosts that divide the mesh or not, meshes that fill the hosts or not,
  // domains of 2 hosts or none, both launch orders and placements; the packed order (a closed form
  // for consecutive ranks launched round-robin) against a sort, and every group kind's hosts.
  int checked = 0;
  int round_robin_packed = 0;
  for (int64_t h = 1; h <= 5; ++h) {
    for (int64_t r = 1; r <= 4; ++r) {
      for (LaunchOrder order : {LaunchOrder::kBySlot, LaunchOrder::kByNode}) {
        for (int64_t hpd : {0, 2}) {
          const HostLayout hosts =
              Hosts(h, r, order, hpd == 0 ? std::nullopt : std::optional<int64_t>(hpd * r));
          for (int64_t world = 1; world <= h * r; ++world) {
            for (const Sizes& s : {Sizes{2, 1, 1, 1}, Sizes{2, 2, 1, 1}, Sizes{1, 2, 2, 1},
                                   Sizes{2, 1, 2, 2}, Sizes{1, 1, 1, 3}}) {
              const MeshSpec spec = Fsdp2Spec(world, s.tp, s.cp, s.ep, s.pp);
              if (!PlanMeshSpec(spec).ok()) continue;  // sizes that do not fit this world
              for (Placement placement : {Placement::kAsLaunched, Placement::kPack}) {
                SCOPED_TRACE(::testing::Message()
                             << h << "x" << r << " by " << LaunchOrderName(order) << " domain "
                             << hpd << " world " << world << " tp " << s.tp << " cp " << s.cp
                             << " ep " << s.ep << " pp " << s.pp << " "
                             << PlacementName(placement));
                ASSERT_OK_AND_ASSIGN(PlacedPlan placed, PlaceOnHosts(spec, hosts, placement));
                checked += ExpectPlacementMatchesBruteForce(placed, world, s, hosts, placement);
                if (placement == Placement::kPack && order == LaunchOrder::kByNode) {
                  // Repacked: the plan lists its ranks, as with any packed order.
                  EXPECT_TRUE(placed.plan.has_explicit_ranks());
                  ++round_robin_packed;
                }
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 15000);
  EXPECT_GT(round_robin_packed, 400);
}

TEST(PlaceOnHostsTest, PackingARoundRobinLaunchNeedsNoRankList) {
  // 2^30 ranks launched round-robin over 2^27 hosts of 8, packed: a rank list and its index
  // would take over 16 GiB; the closed form places the mesh by arithmetic. Expected values from
  // the definition: packed position p holds rank (p % 8) * 2^27 + p / 8.
  const int64_t hosts_count = int64_t{1} << 27;
  const HostLayout hosts = Hosts(hosts_count, 8, LaunchOrder::kByNode);
  ASSERT_OK_AND_ASSIGN(PlacedPlan packed, PlaceOnHosts(Fsdp2Spec(int64_t{1} << 30, 8, 4, 16, 8),
                                                       hosts, Placement::kPack));
  const mesh::Layout& layout = packed.plan.device_mesh();
  EXPECT_TRUE(packed.plan.has_explicit_ranks());
  for (int64_t p : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{8}, int64_t{123456789},
                    (int64_t{1} << 30) - 1}) {
    EXPECT_EQ(layout.RankAtPosition(p), (p % 8) * hosts_count + p / 8) << "position " << p;
  }
  std::map<std::string, bool> inside;
  for (const GroupPlacement& row : packed.groups) inside[row.name] = row.intra_host;
  EXPECT_TRUE(inside["tp"]);
  EXPECT_FALSE(inside["cp"]);  // tp 8 fills a host of 8
  EXPECT_FALSE(inside["dp_shard"]);
  EXPECT_FALSE(inside["ep"]);
}

TEST(PlaceOnHostsTest, PackKeepsTpAndCpInsideHostsLaunchedRoundRobin) {
  // The acceptance case: 8 ranks round-robin over 2 hosts, tp 2 cp 2.
  const HostLayout hosts = Hosts(2, 4, LaunchOrder::kByNode);
  ASSERT_OK_AND_ASSIGN(PlacedPlan launched,
                       PlaceOnHosts(Fsdp2Spec(8, 2, 2, 1, 1), hosts, Placement::kAsLaunched));
  ASSERT_OK_AND_ASSIGN(PlacedPlan packed,
                       PlaceOnHosts(Fsdp2Spec(8, 2, 2, 1, 1), hosts, Placement::kPack));
  std::map<std::string, bool> before, after;
  for (const GroupPlacement& row : launched.groups) before[row.name] = row.intra_host;
  for (const GroupPlacement& row : packed.groups) after[row.name] = row.intra_host;
  // Round-robin: ranks of one parity share a host, so tp (stride 1) crosses and cp (stride 2)
  // does not.
  EXPECT_FALSE(before["tp"]);
  EXPECT_TRUE(before["cp"]);
  EXPECT_TRUE(after["tp"]);
  EXPECT_TRUE(after["cp"]);
  EXPECT_FALSE(after["dp_shard"]);
  ASSERT_NE(packed.plan.device_mesh().rank_list(), nullptr);
  EXPECT_THAT(*packed.plan.device_mesh().rank_list(), ElementsAre(0, 2, 4, 6, 1, 3, 5, 7));
}

TEST(PlaceOnHostsTest, RejectsLayoutsThatCannotHoldTheMesh) {
  EXPECT_THAT(PlaceOnHosts(Fsdp2Spec(16, 2, 1, 1, 1), Hosts(2, 4), Placement::kPack),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--hosts 2 x --ranks-per-host 4 hold 8 ranks")));
  EXPECT_THAT(PlaceOnHosts(Fsdp2Spec(8, 2, 1, 1, 1), Hosts(0, 4), Placement::kPack),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be positive")));
  EXPECT_THAT(PlaceOnHosts(Fsdp2Spec(8, 2, 1, 1, 1), Hosts(2, 4, LaunchOrder::kBySlot, 6),
                           Placement::kPack),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--ranks-per-domain 6 must be a positive multiple")));
  EXPECT_THAT(PlaceOnHosts(Fsdp2Spec(8, 3, 1, 1, 1), Hosts(2, 4), Placement::kPack),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("divisible")));
}

}  // namespace
}  // namespace nmesh::job
