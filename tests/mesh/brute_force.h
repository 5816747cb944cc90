// Reference groups for tests, computed by brute force over every coordinate of a mesh, without
// any of the layout's stride arithmetic.
#ifndef NMESH_TESTS_MESH_BRUTE_FORCE_H_
#define NMESH_TESTS_MESH_BRUTE_FORCE_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <string>
#include <vector>

namespace nmesh::mesh::testing {

// The FSDP2 mesh's named groups (its five axes pp, dp_replicate, dp_shard, cp, tp, and the
// contract's flattened groups dp, dp_shard_cp, dp_cp) as flags over those axes, written out from
// the contract rather than taken from the planner.
inline std::map<std::string, std::vector<bool>> Fsdp2NamedGroups() {
  return {{"pp", {true, false, false, false, false}},
          {"dp_replicate", {false, true, false, false, false}},
          {"dp_shard", {false, false, true, false, false}},
          {"cp", {false, false, false, true, false}},
          {"tp", {false, false, false, false, true}},
          {"dp", {false, true, true, false, false}},
          {"dp_shard_cp", {false, false, true, true, false}},
          {"dp_cp", {false, true, true, true, false}}};
}

// Every coordinate of `shape`, counting like an odometer with the last axis fastest.
inline std::vector<std::vector<int64_t>> AllCoordinates(const std::vector<int64_t>& shape) {
  std::vector<std::vector<int64_t>> all;
  std::vector<int64_t> c(shape.size(), 0);
  while (true) {
    all.push_back(c);
    int i = static_cast<int>(shape.size()) - 1;
    while (i >= 0 && ++c[i] == shape[i]) c[i--] = 0;
    if (i < 0) return all;
  }
}

// A mesh as a plain table: coordinate i holds ranks[i].
struct BruteMesh {
  std::vector<int64_t> shape;
  std::vector<int64_t> ranks;  // empty: 0..n-1
  std::vector<std::vector<int64_t>> coords = AllCoordinates(shape);

  int64_t RankOf(size_t i) const { return ranks.empty() ? static_cast<int64_t>(i) : ranks[i]; }
  size_t IndexOf(int64_t rank) const {
    for (size_t i = 0; i < coords.size(); ++i) {
      if (RankOf(i) == rank) return i;
    }
    return coords.size();
  }
};

struct BruteGroup {
  std::vector<int64_t> ranks;
  int64_t local_rank = -1;
  int64_t index = -1;
  int64_t count = 0;
};

// The group of `rank` over the axes flagged in `in_set`: every coordinate that agrees with the
// rank's outside the set, in enumeration order; its index is the order in which the outside parts
// first appear.
inline BruteGroup BruteGroupOf(const BruteMesh& mesh, int64_t rank,
                               const std::vector<bool>& in_set) {
  auto outside = [&](const std::vector<int64_t>& c) {
    std::vector<int64_t> out;
    for (size_t a = 0; a < c.size(); ++a) {
      if (!in_set[a]) out.push_back(c[a]);
    }
    return out;
  };
  std::map<std::vector<int64_t>, int64_t> first_seen;
  for (const auto& c : mesh.coords) first_seen.emplace(outside(c), first_seen.size());
  const size_t me = mesh.IndexOf(rank);
  const std::vector<int64_t> mine = outside(mesh.coords[me]);
  BruteGroup group;
  for (size_t i = 0; i < mesh.coords.size(); ++i) {
    if (outside(mesh.coords[i]) != mine) continue;
    if (i == me) group.local_rank = static_cast<int64_t>(group.ranks.size());
    group.ranks.push_back(mesh.RankOf(i));
  }
  group.index = first_seen.at(mine);
  group.count = static_cast<int64_t>(first_seen.size());
  return group;
}

// Every group over `in_set`, in order of first appearance: the partition with its order.
inline std::vector<std::vector<int64_t>> BrutePartition(const BruteMesh& mesh,
                                                        const std::vector<bool>& in_set) {
  std::vector<std::vector<int64_t>> groups;
  for (size_t i = 0; i < mesh.coords.size(); ++i) {
    BruteGroup g = BruteGroupOf(mesh, mesh.RankOf(i), in_set);
    if (g.local_rank == 0) groups.push_back(g.ranks);
  }
  return groups;
}

// The ranks 0..n-1 ordered by residue modulo `period`, then by rank: a stable sort, the
// brute-force form of Layout::CreateGatheredByResidue (a round-robin launch packed by host).
inline std::vector<int64_t> SortedByResidue(int64_t n, int64_t period) {
  std::vector<int64_t> ranks(static_cast<size_t>(n));
  std::iota(ranks.begin(), ranks.end(), int64_t{0});
  std::stable_sort(ranks.begin(), ranks.end(),
                   [period](int64_t a, int64_t b) { return a % period < b % period; });
  return ranks;
}

}  // namespace nmesh::mesh::testing

#endif  // NMESH_TESTS_MESH_BRUTE_FORCE_H_
