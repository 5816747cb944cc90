#include "nmesh/mesh/device_mesh.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/config/strategy.h"
#include "nmesh/mesh/internal/plan_agreement.h"

namespace nmesh::mesh {

struct DeviceMesh::Shared {
  std::optional<absl::Duration> timeout;  // the mesh's (DeviceMesh::SetTimeout changes it)
  bool interruptible = false;
  bool check_arguments = false;
  // The names each communicator serves, in creation order (DeviceMesh::CommunicatorNames).
  std::vector<std::vector<std::string>> names;
  // "<mesh name>." when DeviceMeshOptions::qualify_names, else empty: communicator names' prefix.
  std::string name_prefix;
  std::atomic<int> communicators_created{0};
  std::mutex mu;
  // Every communicator any view of the mesh created, for Abort().
  std::vector<std::shared_ptr<comm::Communicator>> comms;  // guarded by mu
  // The caller's world communicator when a whole-world group reuses it (never aborted), and
  // whether it is still alive.
  const comm::Communicator* borrowed_world = nullptr;
  std::weak_ptr<const void> borrowed_world_lifetime;
  // The mesh's name, and the communicators Comm() handed out as plain pointers: when the last
  // view goes, those are released, not destroyed (ReleaseHandedOut).
  std::string name;
  std::set<const comm::Communicator*> handed_out;  // guarded by mu

  ~Shared() { ReleaseHandedOut(); }

  void HandOut(const comm::Communicator* comm) {
    std::lock_guard<std::mutex> lock(mu);
    handed_out.insert(comm);
  }

  // A plain pointer from Comm() may outlive the mesh: the communicator behind it frees its backend
  // resources (Communicator::Release) and stays, as a small object every call of which fails with
  // FailedPrecondition, until the process exits.
  void ReleaseHandedOut() {
    static std::mutex kept_mu;
    static auto* kept = new std::vector<std::shared_ptr<comm::Communicator>>();
    for (std::shared_ptr<comm::Communicator>& comm : comms) {
      if (handed_out.count(comm.get()) == 0 || comm.use_count() != 1) continue;
      if (!comm->Release(absl::StrFormat("its mesh '%s' has been destroyed", name))) continue;
      std::lock_guard<std::mutex> lock(kept_mu);
      kept->push_back(std::move(comm));
    }
  }

  void Keep(const std::shared_ptr<comm::Communicator>& comm, std::weak_ptr<Shared> self) {
    {
      std::lock_guard<std::mutex> lock(mu);
      comms.push_back(comm);
    }
    // A timeout on one of the mesh's communicators aborts them all, together.
    comm->SetAbortFamily([self] {
      if (std::shared_ptr<Shared> shared = self.lock()) (void)shared->AbortAll();
    });
  }

  // Aborts every communicator together; with a cause, revokes them (comm::RevokeAll).
  absl::Status AbortAll(std::optional<std::string_view> cause = std::nullopt) {
    std::vector<std::shared_ptr<comm::Communicator>> all;
    {
      std::lock_guard<std::mutex> lock(mu);
      all = comms;
    }
    std::vector<comm::Communicator*> family;
    family.reserve(all.size());
    for (const std::shared_ptr<comm::Communicator>& comm : all) family.push_back(comm.get());
    if (cause.has_value()) {
      return comm::RevokeAll(family, absl::StrFormat("mesh '%s' was revoked: %s", name, *cause));
    }
    return comm::AbortTogether(family);
  }
};

namespace {

std::string MoeMeshName(std::string_view name) {
  return name == "device_mesh" ? "moe_mesh" : absl::StrFormat("%s.moe_mesh", name);
}

// `axes` of a layout after axis `axis` became `count` consecutive axes.
AxisSet ExpandAxis(AxisSet axes, int axis, int count) {
  AxisSet out;
  for (int a = 0; a < AxisSet::kMaxAxes; ++a) {
    if (!axes.Contains(a)) continue;
    if (a < axis) {
      out = out.With(a);
    } else if (a == axis) {
      for (int k = 0; k < count; ++k) out = out.With(axis + k);
    } else {
      out = out.With(a + count - 1);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<DeviceMesh> DeviceMesh::Create(const MeshPlan& plan, comm::Communicator& world,
                                              DeviceMeshOptions options) {
  NMESH_RETURN_IF_ERROR(internal::AgreeOnPlan(plan, options, world));
  // After agreeing, so that every rank fails alike.
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "DeviceMeshOptions.timeout"));
  // From here on every rank holds the same plan and options, so every check below fails on all
  // ranks alike, and every rank makes the same splits in the same order.
  if (plan.world_size() > world.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "mesh '%s' spans ranks of a world of %d, but the world communicator has %d ranks",
        options.name, plan.world_size(), world.size()));
  }
  const int64_t rank = world.rank();
  auto shared = std::make_shared<Shared>();
  shared->name = options.name;
  shared->timeout = options.timeout;
  shared->interruptible = options.interruptible;
  shared->check_arguments = options.check_arguments;
  shared->name_prefix = options.qualify_names ? absl::StrCat(options.name, ".") : "";
  // The world is not owned: a no-op deleter.
  std::shared_ptr<comm::Communicator> world_ref(&world, [](comm::Communicator*) {});
  // Reused by one group at most: with names of one partition split apart (conflicting NCCL
  // settings), the others get communicators of their own.
  bool world_reusable = !options.timeout.has_value() && !world.options().timeout.has_value() &&
                        !options.isolate && !options.check_arguments &&
                        options.comm_sharing == config::CommSharing::kPartition;
  NMESH_ASSIGN_OR_RETURN(
      const std::vector<MeshCommunicatorPlan> planned,
      PlanMeshCommunicators(plan, options.nccl, options.comm_sharing, options.name));

  // Group name -> communicator. Names are unique across the device and moe meshes, and one kind
  // may hold names of both (ep's blocks can be tp's groups).
  std::vector<std::pair<std::string, std::shared_ptr<comm::Communicator>>> comms;
  // Each kind's communicator: made here (trivial groups, the reused world) or by one split of the
  // world among all the splits below, made together (Communicator::SplitAgreedMany).
  std::vector<std::shared_ptr<comm::Communicator>> kind_comm(planned.size());
  std::vector<comm::AgreedSplit> splits;
  std::vector<size_t> split_kind;  // splits[i] makes kind_comm[split_kind[i]]
  std::vector<std::string> split_names;
  for (size_t k = 0; k < planned.size(); ++k) {
    const GroupKind& kind = planned[k].kind;
    shared->names.push_back(kind.names);
    const Layout& layout = plan.LayoutOf(kind.mesh);
    const std::string comm_name = absl::StrCat(shared->name_prefix, absl::StrJoin(kind.names, "/"));
    const comm::CommOptions comm_options{.name = comm_name,
                                         .timeout = options.timeout,
                                         .check_arguments = options.check_arguments,
                                         .interruptible = options.interruptible,
                                         .nccl = planned[k].nccl};
    std::optional<GroupView> group;
    if (layout.Contains(rank)) group = *layout.ViewGroup(rank, kind.axes);
    if (kind.trivial) {
      if (group.has_value()) kind_comm[k] = world.NewSelf(comm_options);
    } else if (kind.whole_world && layout.size() == world.size() && world_reusable &&
               planned[k].nccl.empty()) {
      world_reusable = false;
      kind_comm[k] = world_ref;
      shared->borrowed_world = &world;
      shared->borrowed_world_lifetime = world.lifetime();
    } else {
      // The agreement check above covers the groups: every rank derives them from the same plan,
      // so each member passes the same list and backends may build the group from it alone.
      comm::AgreedSplit split{.members = {}, .options = comm_options};
      if (group.has_value()) {
        split.members.reserve(static_cast<size_t>(group->size()));
        group->ForEach([&split](int64_t r) { split.members.push_back(static_cast<int>(r)); });
      }
      splits.push_back(std::move(split));
      split_kind.push_back(k);
      split_names.push_back(comm_name);
    }
  }
  if (!splits.empty()) {
    absl::StatusOr<std::vector<std::unique_ptr<comm::Communicator>>> made =
        world.SplitAgreedMany(splits);
    if (!made.ok()) {
      return absl::Status(
          made.status().code(),
          absl::StrFormat("building mesh '%s', group%s %s: %s", options.name,
                          split_names.size() == 1 ? "" : "s", absl::StrJoin(split_names, ", "),
                          made.status().message()));
    }
    for (size_t i = 0; i < made->size(); ++i) {
      kind_comm[split_kind[i]] = std::move((*made)[i]);
      ++shared->communicators_created;
    }
  }
  for (size_t k = 0; k < planned.size(); ++k) {
    const std::shared_ptr<comm::Communicator>& comm = kind_comm[k];
    if (comm != nullptr && comm != world_ref) shared->Keep(comm, shared);
    for (const std::string& name : planned[k].kind.names) comms.push_back({name, comm});
  }
  auto comm_of = [&comms](std::string_view name) {
    for (const auto& [n, c] : comms) {
      if (n == name) return c;
    }
    return std::shared_ptr<comm::Communicator>();
  };

  DeviceMesh mesh(plan.device_mesh());
  mesh.shared_ = shared;
  mesh.name_ = options.name;
  mesh.rank_ = rank;
  mesh.member_ = plan.Contains(rank);
  for (const std::string& axis : mesh.layout_.axis_names()) {
    mesh.axis_comms_.push_back(comm_of(axis));
  }
  for (const FlattenedGroup& group : plan.flattened()) {
    mesh.flattened_.push_back({group.name, group.axes, comm_of(group.name)});
  }
  if (plan.moe_mesh().has_value()) {
    const Layout& moe_layout = plan.moe_mesh()->layout;
    // A non-member has no stage of its own; it is shown stage 0.
    const int64_t anchor = mesh.member_ ? rank : plan.device_mesh().RankAtPosition(0);
    NMESH_ASSIGN_OR_RETURN(Layout stage, moe_layout.Submesh(anchor, {"ep_shard", "ep"}));
    DeviceMesh moe(std::move(stage));
    moe.shared_ = shared;
    moe.name_ = MoeMeshName(options.name);
    moe.rank_ = rank;
    moe.member_ = mesh.member_;
    for (const std::string& axis : moe.layout_.axis_names()) {
      moe.axis_comms_.push_back(comm_of(axis));
    }
    mesh.moe_ = std::make_shared<const DeviceMesh>(std::move(moe));
  }
  return mesh;
}

absl::Status DeviceMesh::CheckMember(std::string_view what) const {
  if (member_) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrFormat("rank %d is not a member of mesh '%s' %s, so it has no %s", rank_, name_,
                      layout_.DebugString(), what));
}

absl::Status DeviceMesh::UnknownGroup(std::string_view name) const {
  return absl::NotFoundError(absl::StrFormat(
      "mesh '%s' has no axis or group '%s'; its axes are [%s] and its flattened groups [%s]", name_,
      name, absl::StrJoin(layout_.axis_names(), ", "), absl::StrJoin(FlattenedNames(), ", ")));
}

absl::StatusOr<DeviceMesh::Resolved> DeviceMesh::Resolve(std::string_view name) const {
  for (int axis = 0; axis < ndim(); ++axis) {
    if (layout_.axis_names()[axis] == name) {
      return Resolved{AxisSet::Of({axis}), axis_comms_[static_cast<size_t>(axis)]};
    }
  }
  for (const Flattened& group : flattened_) {
    if (group.name == name) return Resolved{group.axes, group.comm};
  }
  return UnknownGroup(name);
}

absl::StatusOr<std::vector<int64_t>> DeviceMesh::Coordinate() const {
  NMESH_RETURN_IF_ERROR(CheckMember("coordinate"));
  return layout_.CoordinateOf(rank_);
}

std::vector<std::string> DeviceMesh::FlattenedNames() const {
  std::vector<std::string> names;
  for (const Flattened& group : flattened_) names.push_back(group.name);
  return names;
}

bool DeviceMesh::HasAxis(std::string_view name) const { return layout_.AxisIndex(name).ok(); }

bool DeviceMesh::HasGroup(std::string_view name) const { return Resolve(name).ok(); }

absl::Status DeviceMesh::CheckAlive(std::string_view name,
                                    const std::shared_ptr<comm::Communicator>& comm) const {
  if (comm == nullptr || comm.get() != shared_->borrowed_world ||
      !shared_->borrowed_world_lifetime.expired()) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrFormat(
      "mesh '%s': group '%s' reuses the world communicator the mesh was built over, which has "
      "been destroyed (keep it alive, or build the mesh with a timeout or isolate = true)",
      name_, name));
}

absl::StatusOr<comm::Communicator*> DeviceMesh::Comm(std::string_view name) const {
  NMESH_ASSIGN_OR_RETURN(Resolved resolved, Resolve(name));
  NMESH_RETURN_IF_ERROR(CheckMember(absl::StrFormat("'%s' group", name)));
  NMESH_RETURN_IF_ERROR(CheckAlive(name, resolved.comm));
  shared_->HandOut(resolved.comm.get());
  return resolved.comm.get();
}

absl::StatusOr<comm::Communicator*> DeviceMesh::Comm(MeshAxisName name) const {
  return Comm(MeshAxisNameString(name));
}

comm::Communicator* DeviceMesh::FindComm(std::string_view name) const {
  absl::StatusOr<comm::Communicator*> comm = Comm(name);
  return comm.ok() ? *comm : nullptr;
}

const std::vector<std::vector<std::string>>& DeviceMesh::CommunicatorNames() const {
  return shared_->names;
}

absl::StatusOr<DeviceMesh> DeviceMesh::Submesh(absl::Span<const std::string_view> names) const {
  std::vector<AxisSet> sets;
  std::vector<std::shared_ptr<comm::Communicator>> comms;
  for (std::string_view name : names) {
    NMESH_ASSIGN_OR_RETURN(Resolved resolved, Resolve(name));
    NMESH_RETURN_IF_ERROR(CheckAlive(name, resolved.comm));
    sets.push_back(resolved.axes);
    comms.push_back(std::move(resolved.comm));
  }
  NMESH_RETURN_IF_ERROR(CheckMember("submesh"));
  NMESH_ASSIGN_OR_RETURN(
      Layout layout,
      layout_.SubmeshOfGroups(rank_, sets, std::vector<std::string>(names.begin(), names.end())));
  DeviceMesh view(std::move(layout));
  view.shared_ = shared_;
  view.name_ = name_;
  view.rank_ = rank_;
  view.member_ = true;
  view.axis_comms_ = std::move(comms);
  // A flattened group stays when it is made of whole selected groups (and is not one of them).
  for (const Flattened& group : flattened_) {
    if (std::find(names.begin(), names.end(), group.name) != names.end()) continue;
    AxisSet covered, axes;
    for (size_t k = 0; k < sets.size(); ++k) {
      if ((sets[k] | group.axes) == group.axes) {
        covered = covered | sets[k];
        axes = axes.With(static_cast<int>(k));
      }
    }
    if (covered == group.axes) view.flattened_.push_back({group.name, axes, group.comm});
  }
  return view;
}

absl::StatusOr<DeviceMesh> DeviceMesh::Unflatten(std::string_view axis, std::vector<int64_t> sizes,
                                                 std::vector<std::string> names) const {
  // Like Comm, Submesh and Coordinate: a non-member has no groups to unflatten (issue 14).
  NMESH_RETURN_IF_ERROR(CheckMember(absl::StrFormat("axis '%s' to unflatten", axis)));
  for (const std::string& name : names) {
    if (std::find_if(flattened_.begin(), flattened_.end(), [&](const Flattened& group) {
          return group.name == name;
        }) != flattened_.end()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "cannot unflatten '%s' into '%s': mesh '%s' already has a flattened group of that name",
          axis, name, name_));
    }
  }
  const int count = static_cast<int>(names.size());
  NMESH_ASSIGN_OR_RETURN(Layout layout, layout_.Unflatten(axis, std::move(sizes), names));
  const int index = *layout_.AxisIndex(axis);
  DeviceMesh view(std::move(layout));
  view.shared_ = shared_;
  view.name_ = name_;
  view.rank_ = rank_;
  view.member_ = member_;
  view.moe_ = moe_;
  for (const Flattened& group : flattened_) {
    view.flattened_.push_back({group.name, ExpandAxis(group.axes, index, count), group.comm});
  }
  view.axis_comms_.assign(axis_comms_.begin(), axis_comms_.begin() + index);
  const std::shared_ptr<comm::Communicator>& parent = axis_comms_[static_cast<size_t>(index)];
  NMESH_RETURN_IF_ERROR(CheckAlive(axis, parent));
  for (int k = 0; k < count; ++k) {
    std::shared_ptr<comm::Communicator> comm;
    if (member_) {
      const comm::CommOptions options{
          .name = absl::StrCat(shared_->name_prefix, names[static_cast<size_t>(k)]),
          .timeout = shared_->timeout,
          .check_arguments = shared_->check_arguments,
          .interruptible = shared_->interruptible};
      NMESH_ASSIGN_OR_RETURN(GroupView group,
                             view.layout_.ViewGroup(rank_, AxisSet::Of({index + k})));
      if (group.size() == 1) {
        comm = parent->NewSelf(options);
      } else if (group.size() == parent->size()) {
        comm = parent;
      } else {
        // Sub-axis groups partition the parent axis group; their global indices are distinct
        // colors within it.
        absl::StatusOr<std::unique_ptr<comm::Communicator>> split = parent->Split(
            static_cast<int>(group.index()), static_cast<int>(group.local_rank()), options);
        if (!split.ok()) {
          return absl::Status(split.status().code(),
                              absl::StrFormat("unflattening '%s' of mesh '%s' into '%s': %s", axis,
                                              name_, options.name, split.status().message()));
        }
        comm = std::move(*split);
        ++shared_->communicators_created;
      }
      if (comm != parent) shared_->Keep(comm, shared_);
    }
    view.axis_comms_.push_back(std::move(comm));
  }
  view.axis_comms_.insert(view.axis_comms_.end(), axis_comms_.begin() + index + 1,
                          axis_comms_.end());
  return view;
}

std::optional<DeviceMesh> DeviceMesh::moe_mesh() const {
  if (moe_ == nullptr) return std::nullopt;
  return *moe_;
}

int DeviceMesh::communicators_created() const { return shared_->communicators_created.load(); }

absl::Status DeviceMesh::Abort() const { return shared_->AbortAll(); }

absl::Status DeviceMesh::Revoke(std::string_view cause) const { return shared_->AbortAll(cause); }

absl::Status DeviceMesh::SetTimeout(std::optional<absl::Duration> timeout) const {
  NMESH_RETURN_IF_ERROR(CheckTimeout(timeout, absl::StrFormat("the timeout of mesh '%s'", name_)));
  std::vector<std::shared_ptr<comm::Communicator>> comms;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    comms = shared_->comms;
  }
  for (const std::shared_ptr<comm::Communicator>& comm : comms) {
    NMESH_RETURN_IF_ERROR(comm->SetTimeout(timeout));
  }
  shared_->timeout = timeout;
  return absl::OkStatus();
}

std::string DeviceMesh::DebugString() const {
  std::string text = absl::StrCat(name_, " ", layout_.DebugString());
  if (!flattened_.empty()) absl::StrAppend(&text, " + ", absl::StrJoin(FlattenedNames(), ", "));
  if (!member_) absl::StrAppend(&text, " (rank ", rank_, " is not a member)");
  return text;
}

}  // namespace nmesh::mesh
