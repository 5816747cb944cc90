#include "nmesh/mesh/layout.h"

#include <algorithm>
#include <bit>
#include <numeric>
#include <utility>

#include "absl/base/call_once.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/validate/checked_math.h"

namespace nmesh::mesh {

using validate::CheckedProduct;
using validate::kMaxMeshSize;

AxisSet AxisSet::Of(std::initializer_list<int> axes) {
  AxisSet set;
  for (int axis : axes) set = set.With(axis);
  return set;
}

AxisSet AxisSet::All(int ndim) {
  NMESH_CHECK(ndim >= 0 && ndim <= kMaxAxes) << "ndim " << ndim;
  AxisSet set;
  set.bits_ = ndim == kMaxAxes ? ~uint64_t{0} : (uint64_t{1} << ndim) - 1;
  return set;
}

AxisSet AxisSet::With(int axis) const {
  NMESH_CHECK(axis >= 0 && axis < kMaxAxes) << "axis index " << axis;
  AxisSet set;
  set.bits_ = bits_ | (uint64_t{1} << axis);
  return set;
}

int AxisSet::count() const { return std::popcount(bits_); }

int AxisSet::lowest() const { return std::countr_zero(bits_); }

int AxisSet::highest() const { return kMaxAxes - 1 - std::countl_zero(bits_); }

// The rank list and its inverse, built once per list and shared by every layout derived from it, so
// that a rank's position is a hash lookup rather than a scan. Or, with period > 0, the ranks
// 0..size-1 gathered by residue modulo period, in closed form: a permutation that a list and
// its index would cost O(size) to build (a 2^20-rank round-robin launch packed by host), where
// the arithmetic costs O(1) per lookup.
struct Layout::RankTable {
  std::vector<int64_t> ranks;  // empty in closed form
  absl::flat_hash_map<int64_t, int64_t> position;
  int64_t max_rank = 0;
  int64_t period = 0;     // closed form when positive
  int64_t size = 0;       // closed form: the number of ranks
  int64_t quotient = 0;   // closed form: size / period, the ranks of the smaller hosts
  int64_t remainder = 0;  // closed form: size % period, the hosts with one rank more
  // Closed form: the list, made by the first rank_list() call.
  mutable absl::once_flag list_once;
  mutable std::vector<int64_t> listed;

  bool closed_form() const { return period > 0; }

  int64_t RankAt(int64_t position_index) const {
    if (!closed_form()) return ranks[static_cast<size_t>(position_index)];
    // The first `remainder` residues hold quotient + 1 ranks each, the others quotient.
    const int64_t big = remainder * (quotient + 1);
    int64_t residue;
    int64_t index;
    if (position_index < big) {
      residue = position_index / (quotient + 1);
      index = position_index % (quotient + 1);
    } else {
      residue = remainder + (position_index - big) / quotient;
      index = (position_index - big) % quotient;
    }
    return index * period + residue;
  }

  std::optional<int64_t> PositionOf(int64_t rank) const {
    if (!closed_form()) {
      auto it = position.find(rank);
      if (it == position.end()) return std::nullopt;
      return it->second;
    }
    if (rank < 0 || rank >= size) return std::nullopt;
    const int64_t residue = rank % period;
    return residue * quotient + std::min(residue, remainder) + rank / period;
  }
};

namespace {

absl::Status CheckShape(const std::vector<int64_t>& shape,
                        const std::vector<std::string>& axis_names) {
  if (shape.empty()) return absl::InvalidArgumentError("a mesh needs at least one axis");
  if (shape.size() > AxisSet::kMaxAxes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a mesh has at most %d axes, got %d", AxisSet::kMaxAxes, shape.size()));
  }
  if (axis_names.size() != shape.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mesh has %d axis names (%s) for %d sizes", axis_names.size(),
                        absl::StrJoin(axis_names, ", "), shape.size()));
  }
  absl::flat_hash_set<std::string_view> seen;
  for (const std::string& name : axis_names) {
    if (name.empty()) return absl::InvalidArgumentError("mesh axis names must not be empty");
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("mesh axis names must be unique, got '%s' twice", name));
    }
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] <= 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "mesh size of axis '%s' must be a positive integer, got %d", axis_names[i], shape[i]));
    }
  }
  std::optional<int64_t> size = CheckedProduct(shape);
  if (!size.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mesh size (%s) overflows int64", absl::StrJoin(shape, " * ")));
  }
  if (*size > kMaxMeshSize) {
    return absl::InvalidArgumentError(absl::StrFormat("mesh size (%s = %d) must be at most %d",
                                                      absl::StrJoin(shape, " * "), *size,
                                                      kMaxMeshSize));
  }
  return absl::OkStatus();
}

std::vector<int64_t> RowMajorStrides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

std::string AxesString(const std::vector<std::string>& names) {
  return absl::StrCat("(", absl::StrJoin(names, ", "), ")");
}

}  // namespace

absl::StatusOr<Layout> Layout::Create(std::vector<int64_t> shape,
                                      std::vector<std::string> axis_names,
                                      std::optional<std::vector<int64_t>> ranks) {
  NMESH_RETURN_IF_ERROR(CheckShape(shape, axis_names));
  Layout layout;
  layout.size_ = *CheckedProduct(shape);
  layout.strides_ = RowMajorStrides(shape);
  layout.shape_ = std::move(shape);
  layout.axis_names_ = std::move(axis_names);
  if (!ranks.has_value()) return layout;

  if (static_cast<int64_t>(ranks->size()) != layout.size_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mesh ranks (%d) must match mesh size (%d)", ranks->size(), layout.size_));
  }
  auto table = std::make_shared<RankTable>();
  table->position.reserve(ranks->size());
  bool identity = true;
  for (size_t i = 0; i < ranks->size(); ++i) {
    const int64_t rank = (*ranks)[i];
    if (rank < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("mesh ranks must be non-negative, got %d", rank));
    }
    if (!table->position.emplace(rank, static_cast<int64_t>(i)).second) {
      return absl::InvalidArgumentError("mesh ranks must be unique");
    }
    identity = identity && rank == static_cast<int64_t>(i);
    table->max_rank = std::max(table->max_rank, rank);
  }
  if (identity) return layout;
  table->ranks = *std::move(ranks);
  layout.table_ = std::move(table);
  return layout;
}

absl::StatusOr<Layout> Layout::CreateGatheredByResidue(std::vector<int64_t> shape,
                                                       std::vector<std::string> axis_names,
                                                       int64_t period) {
  if (period < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the period of a rank order must be a positive integer, got %d", period));
  }
  NMESH_ASSIGN_OR_RETURN(Layout layout, Create(std::move(shape), std::move(axis_names)));
  // One rank per residue at most: every rank keeps its place.
  if (period == 1 || period >= layout.size_) return layout;
  auto table = std::make_shared<RankTable>();
  table->period = period;
  table->size = layout.size_;
  table->quotient = layout.size_ / period;
  table->remainder = layout.size_ % period;
  table->max_rank = layout.size_ - 1;
  layout.table_ = std::move(table);
  return layout;
}

const std::vector<int64_t>* Layout::rank_list() const {
  if (table_ == nullptr) return nullptr;
  if (!table_->closed_form()) return &table_->ranks;
  // Listed once, for the callers that want the array itself; lookups stay arithmetic.
  const RankTable& table = *table_;
  absl::call_once(table.list_once, [&table] {
    table.listed.resize(static_cast<size_t>(table.size));
    for (int64_t p = 0; p < table.size; ++p) table.listed[static_cast<size_t>(p)] = table.RankAt(p);
  });
  return &table.listed;
}

int64_t Layout::MaxRank() const { return table_ == nullptr ? size_ - 1 : table_->max_rank; }

absl::StatusOr<int> Layout::AxisIndex(std::string_view name) const {
  for (int i = 0; i < ndim(); ++i) {
    if (axis_names_[i] == name) return i;
  }
  return absl::NotFoundError(
      absl::StrFormat("mesh %s has no axis '%s'", AxesString(axis_names_), name));
}

absl::StatusOr<AxisSet> Layout::AxesOf(absl::Span<const std::string_view> names) const {
  AxisSet set;
  for (std::string_view name : names) {
    absl::StatusOr<int> axis = AxisIndex(name);
    if (!axis.ok()) return absl::InvalidArgumentError(axis.status().message());
    if (set.Contains(*axis)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "axis '%s' is named twice in (%s)", name,
          absl::StrJoin(std::vector<std::string>(names.begin(), names.end()), ", ")));
    }
    set = set.With(*axis);
  }
  return set;
}

absl::StatusOr<AxisSet> Layout::AxesInMeshOrder(absl::Span<const std::string_view> names) const {
  NMESH_ASSIGN_OR_RETURN(AxisSet set, AxesOf(names));
  int previous = -1;
  for (std::string_view name : names) {
    const int axis = *AxisIndex(name);
    if (axis < previous) {
      return absl::InvalidArgumentError(
          absl::StrFormat("axes (%s) must be given in mesh order %s",
                          absl::StrJoin(std::vector<std::string>(names.begin(), names.end()), ", "),
                          AxesString(axis_names_)));
    }
    previous = axis;
  }
  return set;
}

int64_t Layout::RankAtPosition(int64_t position) const {
  NMESH_CHECK(position >= 0 && position < size_) << "position " << position << " of " << size_;
  return table_ == nullptr ? position : table_->RankAt(position);
}

std::optional<int64_t> Layout::PositionOf(int64_t rank) const {
  if (table_ == nullptr) {
    if (rank < 0 || rank >= size_) return std::nullopt;
    return rank;
  }
  return table_->PositionOf(rank);
}

absl::StatusOr<int64_t> Layout::MemberPosition(int64_t rank) const {
  std::optional<int64_t> position = PositionOf(rank);
  if (position.has_value()) return *position;
  if (table_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "rank %d is not a member of the mesh %s (ranks 0..%d)", rank, DebugString(), size_ - 1));
  }
  return absl::FailedPreconditionError(absl::StrFormat(
      "rank %d is not a member of the mesh %s over %d listed ranks", rank, DebugString(), size_));
}

absl::StatusOr<std::vector<int64_t>> Layout::CoordinateOf(int64_t rank) const {
  NMESH_ASSIGN_OR_RETURN(int64_t position, MemberPosition(rank));
  std::vector<int64_t> coordinate(shape_.size());
  for (size_t i = 0; i < shape_.size(); ++i) coordinate[i] = position / strides_[i] % shape_[i];
  return coordinate;
}

absl::StatusOr<int64_t> Layout::RankAt(absl::Span<const int64_t> coordinate) const {
  if (coordinate.size() != shape_.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("coordinate (%s) has %d entries for the %d axes of mesh %s",
                        absl::StrJoin(coordinate, ", "), coordinate.size(), ndim(), DebugString()));
  }
  int64_t position = 0;
  for (size_t i = 0; i < shape_.size(); ++i) {
    if (coordinate[i] < 0 || coordinate[i] >= shape_[i]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "coordinate (%s) is outside mesh %s: axis '%s' has size %d",
          absl::StrJoin(coordinate, ", "), DebugString(), axis_names_[i], shape_[i]));
    }
    position += coordinate[i] * strides_[i];
  }
  return RankAtPosition(position);
}

absl::Status Layout::CheckAxes(AxisSet axes) const {
  if (axes.highest() >= ndim()) {
    return absl::InvalidArgumentError(absl::StrFormat("axis index %d is outside mesh %s of %d axes",
                                                      axes.highest(), DebugString(), ndim()));
  }
  return absl::OkStatus();
}

int64_t Layout::GroupSize(AxisSet axes) const {
  int64_t size = 1;
  for (int i = 0; i < ndim(); ++i) {
    if (axes.Contains(i)) size *= shape_[i];
  }
  return size;
}

std::pair<int64_t, int64_t> Layout::IndexAndLocal(int64_t position, AxisSet axes) const {
  int64_t index = 0;
  int64_t local = 0;
  for (int i = 0; i < ndim(); ++i) {
    const int64_t c = position / strides_[i] % shape_[i];
    if (axes.Contains(i)) {
      local = local * shape_[i] + c;
    } else {
      index = index * shape_[i] + c;
    }
  }
  return {index, local};
}

absl::StatusOr<GroupView> Layout::ViewGroup(int64_t rank, AxisSet axes) const {
  NMESH_RETURN_IF_ERROR(CheckAxes(axes));
  NMESH_ASSIGN_OR_RETURN(int64_t position, MemberPosition(rank));
  GroupView view(this, axes);
  std::tie(view.index_, view.local_rank_) = IndexAndLocal(position, axes);
  view.size_ = GroupSize(axes);
  view.first_ = position;
  for (int i = 0; i < ndim(); ++i) {
    if (axes.Contains(i)) view.first_ -= position / strides_[i] % shape_[i] * strides_[i];
  }
  return view;
}

absl::StatusOr<Group> Layout::GroupOf(int64_t rank, AxisSet axes) const {
  NMESH_ASSIGN_OR_RETURN(GroupView view, ViewGroup(rank, axes));
  return view.Materialize();
}

absl::StatusOr<Group> Layout::GroupOf(int64_t rank, std::string_view axis) const {
  absl::StatusOr<int> index = AxisIndex(axis);
  if (!index.ok()) return absl::InvalidArgumentError(index.status().message());
  return GroupOf(rank, AxisSet::Of({*index}));
}

int64_t GroupView::count() const { return layout_->size() / size_; }

int64_t GroupView::RankAt(int64_t local) const {
  NMESH_CHECK(local >= 0 && local < size_) << "local rank " << local << " of " << size_;
  const std::vector<int64_t>& shape = layout_->shape_;
  const std::vector<int64_t>& strides = layout_->strides_;
  int64_t position = first_;
  for (int i = layout_->ndim(); i-- > 0;) {
    if (!axes_.Contains(i)) continue;
    position += local % shape[i] * strides[i];
    local /= shape[i];
  }
  return layout_->RankAtPosition(position);
}

void GroupView::ForEach(absl::FunctionRef<void(int64_t)> visit) const {
  // An odometer over the set's axes (the last fastest) moves from member to member in O(1)
  // amortised, instead of decoding every local rank.
  const std::vector<int64_t>& shape = layout_->shape_;
  const std::vector<int64_t>& strides = layout_->strides_;
  std::vector<int> set_axes;
  for (int i = 0; i < layout_->ndim(); ++i) {
    if (axes_.Contains(i)) set_axes.push_back(i);
  }
  std::vector<int64_t> digits(set_axes.size(), 0);
  int64_t offset = 0;
  for (int64_t k = 0; k < size_; ++k) {
    visit(layout_->RankAtPosition(first_ + offset));
    for (size_t j = set_axes.size(); j-- > 0;) {
      const int axis = set_axes[j];
      offset += strides[axis];
      if (++digits[j] < shape[axis]) break;
      offset -= shape[axis] * strides[axis];
      digits[j] = 0;
    }
  }
}

std::vector<int64_t> GroupView::Ranks() const {
  std::vector<int64_t> ranks;
  ranks.reserve(size_);
  ForEach([&ranks](int64_t rank) { ranks.push_back(rank); });
  return ranks;
}

Group GroupView::Materialize() const { return Group{Ranks(), local_rank_, index_, count()}; }

absl::StatusOr<Layout> Layout::Submesh(int64_t rank,
                                       absl::Span<const std::string_view> names) const {
  NMESH_ASSIGN_OR_RETURN(AxisSet axes, AxesInMeshOrder(names));
  NMESH_ASSIGN_OR_RETURN(Group group, GroupOf(rank, axes));
  std::vector<int64_t> shape;
  std::vector<std::string> sub_names;
  for (std::string_view name : names) {
    shape.push_back(shape_[*AxisIndex(name)]);
    sub_names.emplace_back(name);
  }
  return Create(std::move(shape), std::move(sub_names), std::move(group.ranks));
}

absl::StatusOr<Layout> Layout::SubmeshOfGroups(int64_t rank, absl::Span<const AxisSet> sets,
                                               std::vector<std::string> names) const {
  if (sets.empty() || sets.size() != names.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "a submesh needs one name per group, at least one; got %d names for %d groups",
        names.size(), sets.size()));
  }
  AxisSet all;
  int previous_highest = -1;
  std::vector<int64_t> shape;
  for (AxisSet set : sets) {
    NMESH_RETURN_IF_ERROR(CheckAxes(set));
    // Each group's axes must follow the previous group's, without overlap, so that the group of
    // their union, row-major, is the row-major order over the groups.
    if (set.empty() || set.lowest() <= previous_highest) {
      return absl::InvalidArgumentError(
          absl::StrFormat("submesh (%s) needs disjoint groups in mesh order %s",
                          absl::StrJoin(names, ", "), DebugString()));
    }
    previous_highest = set.highest();
    all = all | set;
    shape.push_back(GroupSize(set));
  }
  NMESH_ASSIGN_OR_RETURN(Group group, GroupOf(rank, all));
  return Create(std::move(shape), std::move(names), std::move(group.ranks));
}

absl::StatusOr<Layout> Layout::Flatten(int64_t rank, absl::Span<const std::string_view> names,
                                       std::string name) const {
  NMESH_ASSIGN_OR_RETURN(AxisSet axes, AxesInMeshOrder(names));
  NMESH_ASSIGN_OR_RETURN(Group group, GroupOf(rank, axes));
  const auto size = static_cast<int64_t>(group.ranks.size());
  return Create({size}, {std::move(name)}, std::move(group.ranks));
}

absl::StatusOr<Layout> Layout::Reshape(std::vector<int64_t> shape,
                                       std::vector<std::string> axis_names) const {
  NMESH_RETURN_IF_ERROR(CheckShape(shape, axis_names));
  const int64_t size = *CheckedProduct(shape);
  if (size != size_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("reshape to (%s) = %d ranks must keep the mesh size %d",
                        absl::StrJoin(shape, ", "), size, size_));
  }
  Layout layout = *this;
  layout.strides_ = RowMajorStrides(shape);
  layout.shape_ = std::move(shape);
  layout.axis_names_ = std::move(axis_names);
  return layout;
}

absl::StatusOr<Layout> Layout::Unflatten(std::string_view axis, std::vector<int64_t> sizes,
                                         std::vector<std::string> names) const {
  absl::StatusOr<int> index = AxisIndex(axis);
  if (!index.ok()) return absl::InvalidArgumentError(index.status().message());
  if (sizes.size() != names.size() || sizes.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unflattening axis '%s' needs as many sizes (%s) as names (%s), at least one", axis,
        absl::StrJoin(sizes, ", "), absl::StrJoin(names, ", ")));
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] <= 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "unflatten size of '%s' must be a positive integer, got %d", names[i], sizes[i]));
    }
  }
  const std::optional<int64_t> product = CheckedProduct(sizes);
  if (!product.has_value() || *product != shape_[*index]) {
    const std::string value =
        product.has_value() ? absl::StrCat(*product) : std::string("overflows int64");
    if (names.size() == 2 && names[0] == "ring" && names[1] == "ulysses") {
      // create_ring_ulysses_mesh's message (contract §5).
      return absl::InvalidArgumentError(absl::StrFormat(
          "ring_degree (%d) * ulysses_degree (%d) must equal the %s mesh size (%d).", sizes[0],
          sizes[1], axis, shape_[*index]));
    }
    return absl::InvalidArgumentError(
        absl::StrFormat("the product of the sizes (%s = %s) must equal the %s mesh size (%d)",
                        absl::StrJoin(sizes, " * "), value, axis, shape_[*index]));
  }
  std::vector<int64_t> shape(shape_.begin(), shape_.begin() + *index);
  std::vector<std::string> axis_names(axis_names_.begin(), axis_names_.begin() + *index);
  shape.insert(shape.end(), sizes.begin(), sizes.end());
  axis_names.insert(axis_names.end(), names.begin(), names.end());
  shape.insert(shape.end(), shape_.begin() + *index + 1, shape_.end());
  axis_names.insert(axis_names.end(), axis_names_.begin() + *index + 1, axis_names_.end());
  return Reshape(std::move(shape), std::move(axis_names));
}

std::string Layout::DebugString() const {
  std::vector<std::string> parts;
  for (int i = 0; i < ndim(); ++i) parts.push_back(absl::StrCat(axis_names_[i], "=", shape_[i]));
  return absl::StrCat("(", absl::StrJoin(parts, ", "), ")");
}

namespace {

// The mixed-radix digits of a position that a set of axes varies, as alternating blocks: size-1
// axes are dropped and neighbours on the same side of the set are merged. Two pairs over the same
// rank array have the same ordered groups exactly when their blocks are equal.
std::vector<std::pair<int64_t, bool>> CanonicalBlocks(const std::vector<int64_t>& shape,
                                                      AxisSet axes) {
  std::vector<std::pair<int64_t, bool>> blocks;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    if (shape[i] == 1) continue;
    const bool in = axes.Contains(i);
    if (!blocks.empty() && blocks.back().second == in) {
      blocks.back().first *= shape[i];
    } else {
      blocks.emplace_back(shape[i], in);
    }
  }
  return blocks;
}

}  // namespace

bool Layout::SameRankArray(const Layout& a, const Layout& b) {
  if (a.table_ == b.table_) return true;
  if (a.table_ == nullptr || b.table_ == nullptr) return false;
  const RankTable& x = *a.table_;
  const RankTable& y = *b.table_;
  if (x.closed_form() || y.closed_form()) {
    // A closed form is never the identity, and a list is compared rank by rank by the caller.
    return x.closed_form() && y.closed_form() && x.period == y.period && x.size == y.size;
  }
  return x.ranks == y.ranks;
}

bool SamePartition(const Layout& a, AxisSet a_axes, const Layout& b, AxisSet b_axes) {
  if (!a.CheckAxes(a_axes).ok() || !b.CheckAxes(b_axes).ok()) return false;
  if (a.size() != b.size() || a.GroupSize(a_axes) != b.GroupSize(b_axes)) return false;
  const bool same_ranks = Layout::SameRankArray(a, b);
  if (same_ranks) {
    return CanonicalBlocks(a.shape_, a_axes) == CanonicalBlocks(b.shape_, b_axes);
  }
  // Different rank arrays: the groups match when every rank has the same local rank in both and
  // the group indices correspond one to one.
  absl::flat_hash_map<int64_t, int64_t> a_to_b;
  absl::flat_hash_map<int64_t, int64_t> b_to_a;
  for (int64_t position = 0; position < a.size(); ++position) {
    const std::optional<int64_t> b_position = b.PositionOf(a.RankAtPosition(position));
    if (!b_position.has_value()) return false;
    const auto [a_index, a_local] = a.IndexAndLocal(position, a_axes);
    const auto [b_index, b_local] = b.IndexAndLocal(*b_position, b_axes);
    if (a_local != b_local) return false;
    if (a_to_b.emplace(a_index, b_index).first->second != b_index) return false;
    if (b_to_a.emplace(b_index, a_index).first->second != a_index) return false;
  }
  return true;
}

}  // namespace nmesh::mesh
