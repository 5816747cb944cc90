// The pure layout algebra of a device mesh: no communication, no I/O.
//
// A Layout is an n-dimensional array of global ranks with named axes. Without an explicit rank list
// the array is arange(size) reshaped row-major to the shape (the last axis fastest), and the layout
// costs O(ndim) memory at any size; with a list it is that list reshaped row-major, shared and
// immutable between the layouts derived from it. One permutation of 0..size-1 is also held in
// closed form, at O(ndim) memory: the ranks gathered by residue (CreateGatheredByResidue), the
// order of a round-robin launch packed host by host.
//
// A "group" of a rank over a set of axes S is every rank that agrees with it on all axes outside S,
// ordered row-major over S (in mesh order). A single axis gives the native group along that axis;
// several give a flattened group, contiguous or not.
//
//   NMESH_ASSIGN_OR_RETURN(Layout mesh, Layout::Create({2, 2, 2}, {"a", "b", "c"}));
//   NMESH_ASSIGN_OR_RETURN(AxisSet ac, mesh.AxesOf({"a", "c"}));
//   NMESH_ASSIGN_OR_RETURN(Group g, mesh.GroupOf(/*rank=*/3, ac));
//   // g.ranks == {2, 3, 6, 7}, g.local_rank == 1, g.index == 1, g.count == 2
//   NMESH_ASSIGN_OR_RETURN(Layout cp, mesh.Unflatten("c", {1, 2}, {"ring", "ulysses"}));
//
// Thread safety: a Layout is immutable after construction; all const methods may be called
// concurrently. Copies are cheap (the rank list is shared).
#ifndef NMESH_MESH_LAYOUT_H_
#define NMESH_MESH_LAYOUT_H_

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace nmesh::mesh {

// A set of axes of one layout, by index (at most kMaxAxes axes). Groups are always ordered in mesh
// order over the set, whatever order the axes were named in.
class AxisSet {
 public:
  static constexpr int kMaxAxes = 64;

  AxisSet() = default;
  // The set of the given axis indices; each must be in [0, kMaxAxes).
  static AxisSet Of(std::initializer_list<int> axes);
  // {0, 1, ..., ndim - 1}.
  static AxisSet All(int ndim);

  bool Contains(int axis) const { return axis >= 0 && axis < kMaxAxes && (bits_ >> axis) & 1u; }
  AxisSet With(int axis) const;
  bool empty() const { return bits_ == 0; }
  int count() const;
  // The smallest index in the set (kMaxAxes when empty).
  int lowest() const;
  // The largest index in the set (-1 when empty).
  int highest() const;
  uint64_t bits() const { return bits_; }

  friend AxisSet operator|(AxisSet a, AxisSet b) {
    a.bits_ |= b.bits_;
    return a;
  }

  friend bool operator==(AxisSet a, AxisSet b) { return a.bits_ == b.bits_; }
  friend bool operator!=(AxisSet a, AxisSet b) { return a.bits_ != b.bits_; }
  template <typename H>
  friend H AbslHashValue(H h, AxisSet s) {
    return H::combine(std::move(h), s.bits_);
  }

 private:
  uint64_t bits_ = 0;
};

// The group of one rank over a set of axes.
struct Group {
  // The group's global ranks in group order: local rank i is ranks[i].
  std::vector<int64_t> ranks;
  // The position of the queried rank in `ranks`.
  int64_t local_rank = 0;
  // The group's index among all groups of this kind: the row-major index of the rank's coordinates
  // over the axes NOT in the set. Every member of one group has the same index, so it is the color
  // of a communicator split.
  int64_t index = 0;
  // The number of groups of this kind (the layout size divided by the group size).
  int64_t count = 1;
};

class Layout;

// A group of one rank, evaluated lazily: O(ndim) to make, O(ndim) per member looked up, and no
// memory proportional to the group. It refers to its layout, which must outlive it.
class GroupView {
 public:
  // The number of ranks in the group.
  int64_t size() const { return size_; }
  // The queried rank's position in the group.
  int64_t local_rank() const { return local_rank_; }
  // The group's index among the groups of its kind (see Group::index).
  int64_t index() const { return index_; }
  // The number of groups of this kind.
  int64_t count() const;
  // The global rank with local rank `local`, which must be in [0, size()).
  int64_t RankAt(int64_t local) const;
  // Calls `visit` with each member's global rank, in group order. O(size).
  void ForEach(absl::FunctionRef<void(int64_t)> visit) const;
  // The members in group order. O(size) time and memory.
  std::vector<int64_t> Ranks() const;
  // Ranks() with the local rank, index and count.
  Group Materialize() const;

 private:
  friend class Layout;
  GroupView(const Layout* layout, AxisSet axes) : layout_(layout), axes_(axes) {}

  const Layout* layout_;
  AxisSet axes_;
  int64_t first_ = 0;  // the position of the member with local rank 0
  int64_t size_ = 1;
  int64_t local_rank_ = 0;
  int64_t index_ = 0;
};

class Layout {
 public:
  // A layout of shape `shape` with axis names `axis_names`, over ranks 0..size-1 or, when given,
  // over `ranks` reshaped row-major. Fails with InvalidArgument when:
  //   - there are no axes, more than AxisSet::kMaxAxes, or names and shape differ in length;
  //   - a name is empty or repeated ("mesh axis names must be unique, got 'tp' twice");
  //   - a shape entry is not positive, or the product overflows or exceeds
  //     validate::kMaxMeshSize (the message names the value);
  //   - `ranks` has the wrong length ("mesh ranks (n) must match mesh size (m)"), a negative rank,
  //     or a duplicate ("mesh ranks must be unique").
  // A rank list equal to 0..size-1 is dropped (the layout is then the implicit one). Costs O(ndim),
  // plus O(size) with a rank list (a rank -> position index is built once here).
  static absl::StatusOr<Layout> Create(std::vector<int64_t> shape,
                                       std::vector<std::string> axis_names,
                                       std::optional<std::vector<int64_t>> ranks = std::nullopt);
  // A layout like Create with the rank list 0..size-1 gathered by residue modulo `period`: every
  // rank r with r % period == 0 in increasing order, then those with residue 1, and so on. That is
  // the order of ranks dealt round-robin to `period` hosts (`mpirun --map-by node`) once packed
  // host by host: with q = size / period and m = size % period, host h holds q + (h < m) ranks,
  // the rank at position h * q + min(h, m) + l is l * period + h. Held in closed form: O(ndim)
  // memory and O(1) per rank or position looked up at any size, no list and no index (rank_list()
  // builds the list on its first call). InvalidArgument for a period that is not positive, and for
  // the shapes Create rejects. A period of 1, or of size or more, gives the identity layout.
  static absl::StatusOr<Layout> CreateGatheredByResidue(std::vector<int64_t> shape,
                                                        std::vector<std::string> axis_names,
                                                        int64_t period);

  int ndim() const { return static_cast<int>(shape_.size()); }
  // The number of ranks in the mesh.
  int64_t size() const { return size_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  // Row-major strides of positions: the last axis has stride 1.
  const std::vector<int64_t>& strides() const { return strides_; }
  const std::vector<std::string>& axis_names() const { return axis_names_; }
  // True when the rank at position p is p (no explicit rank list).
  bool is_identity() const { return table_ == nullptr; }
  // The explicit rank list in layout order, or nullptr for the identity layout. A closed-form
  // order (CreateGatheredByResidue) is listed on the first call, in O(size), and kept (shared by
  // the layouts derived from it; thread-safe).
  const std::vector<int64_t>* rank_list() const;
  // The largest rank of the layout (size() - 1 unless a list says otherwise). O(1).
  int64_t MaxRank() const;

  // The index of axis `name`, or NotFound naming the mesh's axes.
  absl::StatusOr<int> AxisIndex(std::string_view name) const;
  // The set of the named axes, in any order. InvalidArgument for an unknown or repeated name.
  absl::StatusOr<AxisSet> AxesOf(absl::Span<const std::string_view> names) const;
  // Like AxesOf, but the names must also be in mesh order (as when slicing a submesh).
  absl::StatusOr<AxisSet> AxesInMeshOrder(absl::Span<const std::string_view> names) const;

  // Ranks and positions. A position is the row-major index of a coordinate in [0, size()).
  int64_t RankAtPosition(int64_t position) const;
  // The position of global rank `rank`, or std::nullopt when it is not a member.
  std::optional<int64_t> PositionOf(int64_t rank) const;
  bool Contains(int64_t rank) const { return PositionOf(rank).has_value(); }
  // The coordinate of member `rank`; FailedPrecondition for a non-member. O(ndim).
  absl::StatusOr<std::vector<int64_t>> CoordinateOf(int64_t rank) const;
  // The rank at `coordinate`; InvalidArgument when it has the wrong length or is out of range.
  absl::StatusOr<int64_t> RankAt(absl::Span<const int64_t> coordinate) const;

  // Group kinds. `axes` must only hold axes of this layout (InvalidArgument otherwise).
  // The size of every group over `axes` (the product of their sizes). O(ndim).
  int64_t GroupSize(AxisSet axes) const;
  // The number of groups over `axes`. O(ndim).
  int64_t GroupCount(AxisSet axes) const { return size_ / GroupSize(axes); }
  // Every group has one rank (the empty set, or only size-1 axes).
  bool IsTrivial(AxisSet axes) const { return GroupSize(axes) == 1; }
  // One group holds every rank of the layout.
  bool IsWholeMesh(AxisSet axes) const { return GroupSize(axes) == size_; }

  // The group of member `rank` over `axes`, lazily: the rank's local rank, the group's index and
  // count, and its members on demand. FailedPrecondition for a non-member, InvalidArgument for bad
  // axes. O(ndim).
  absl::StatusOr<GroupView> ViewGroup(int64_t rank, AxisSet axes) const;
  // ViewGroup, materialized: the ordered global ranks too. O(ndim + group size).
  absl::StatusOr<Group> GroupOf(int64_t rank, AxisSet axes) const;
  absl::StatusOr<Group> GroupOf(int64_t rank, std::string_view axis) const;

  // The submesh containing member `rank` that spans the named axes (which must be in mesh order):
  // a layout of their sizes over the rank's group. O(ndim + group size).
  absl::StatusOr<Layout> Submesh(int64_t rank, absl::Span<const std::string_view> names) const;
  // The submesh containing member `rank` whose axis k spans the group over sets[k] and is named
  // names[k] (e.g. (dp_replicate, dp_shard_cp) with sets {dp_replicate} and {dp_shard, cp}). The
  // sets must be non-empty, disjoint and in mesh order (every axis of sets[k] before every axis of
  // sets[k+1]), so that the row-major order over their union is the row-major order over the new
  // axes: otherwise InvalidArgument "submesh (a, b) needs disjoint groups in mesh order (...)".
  // O(ndim * sets + group size).
  absl::StatusOr<Layout> SubmeshOfGroups(int64_t rank, absl::Span<const AxisSet> sets,
                                         std::vector<std::string> names) const;
  // The 1-D layout named `name` over the group of member `rank` across the named axes (in mesh
  // order). O(ndim + group size).
  absl::StatusOr<Layout> Flatten(int64_t rank, absl::Span<const std::string_view> names,
                                 std::string name) const;
  // The same ranks in the same order under a new shape and names; the sizes must have the same
  // product ("reshape to N ranks must keep the mesh size M"). O(ndim); shares the rank list.
  absl::StatusOr<Layout> Reshape(std::vector<int64_t> shape,
                                 std::vector<std::string> axis_names) const;
  // Replaces axis `axis` with sub-axes `names` of sizes `sizes` (row-major, the last fastest),
  // e.g. cp into (ring, ulysses). Fails with InvalidArgument when the axis is unknown, the lists
  // differ in length, a size is not positive, a name clashes, or the product is wrong: "the product
  // of the sizes (2 * 3 = 6) must equal the cp mesh size (4)". O(ndim); shares the rank list.
  absl::StatusOr<Layout> Unflatten(std::string_view axis, std::vector<int64_t> sizes,
                                   std::vector<std::string> names) const;

  // "(pp=2, dp=4, tp=2)".
  std::string DebugString() const;

 private:
  struct RankTable;

  Layout() = default;
  // The row-major index over the axes outside `axes` and the row-major index over `axes`, of the
  // coordinate at `position`. O(ndim).
  std::pair<int64_t, int64_t> IndexAndLocal(int64_t position, AxisSet axes) const;
  absl::Status CheckAxes(AxisSet axes) const;
  absl::StatusOr<int64_t> MemberPosition(int64_t rank) const;
  // Whether `a` and `b` hold the same rank array by construction (both implicit, one shared
  // table, equal lists or equal closed forms). O(1), or O(size) for two distinct lists.
  static bool SameRankArray(const Layout& a, const Layout& b);

  friend class GroupView;
  friend bool SamePartition(const Layout& a, AxisSet a_axes, const Layout& b, AxisSet b_axes);

  std::vector<int64_t> shape_;
  std::vector<int64_t> strides_;
  std::vector<std::string> axis_names_;
  int64_t size_ = 0;
  std::shared_ptr<const RankTable> table_;
};

// Whether the groups of `a` over `a_axes` and of `b` over `b_axes` are the same ordered groups of
// the same global ranks (so one communicator per group serves both: same members, same local
// ranks). Decided arithmetically, in O(ndim), when both layouts hold the same rank array (both
// implicit, one shared or equal rank list, or equal closed forms); otherwise by comparing every
// rank, in O(size).
// Axes outside a layout make the answer false.
bool SamePartition(const Layout& a, AxisSet a_axes, const Layout& b, AxisSet b_axes);

}  // namespace nmesh::mesh

#endif  // NMESH_MESH_LAYOUT_H_
