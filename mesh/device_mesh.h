// DeviceMesh: a mesh layout with a live communicator per axis and per flattened group, built from
// a MeshPlan over any backend's world communicator.
//
//   config::MeshRequest request;
//   request.sizes.world_size = world->size();
//   request.sizes.tp = 2;
//   request.sizes.cp = 2;
//   NMESH_ASSIGN_OR_RETURN(MeshPlan plan, PlanMesh(request));
//   NMESH_ASSIGN_OR_RETURN(DeviceMesh mesh,
//                          DeviceMesh::Create(plan, *world, {.timeout = absl::Seconds(60)}));
//   NMESH_ASSIGN_OR_RETURN(comm::Communicator* tp, mesh.Comm("tp"));
//   NMESH_ASSIGN_OR_RETURN(DeviceMesh hsdp, mesh.Submesh({"dp_replicate", "dp_shard_cp"}));
//   NMESH_ASSIGN_OR_RETURN(DeviceMesh cp, mesh.Unflatten("cp", {1, 2}, {"ring", "ulysses"}));
//   std::optional<DeviceMesh> moe = mesh.moe_mesh();   // (ep_shard, ep) of this rank's stage
//
// Construction (collective over the world communicator, every rank of the job, members of the
// mesh or not, in the same order for every mesh):
//   1. Agreement: an all-reduce of the min and max of a fingerprint of the mesh (strategy, sizes,
//      shape, axis names, flattened groups, rank list, moe shape, timeout, isolation, NCCL
//      settings, sharing, argument checks). If ranks differ, every rank fails with InvalidArgument
//      "ranks disagree on the mesh: ..." describing its own mesh, before any split that could hang.
//      It is issued asynchronously and waited for at most the mesh's timeout, whatever the world's:
//      when a rank does not arrive in time, the others fail with DeadlineExceeded (and the job
//      should end: the exchange stays pending). Once every rank has arrived, the splits below
//      follow at once on every rank.
//   2. One collective split per communicator of PlanMeshCommunicators: by default one per
//      distinct group kind (DistinctGroupKinds: a partition of the ranks shared by every name that
//      splits them alike, e.g. dp and dp_shard when dp_replicate = 1), with
//      DeviceMeshOptions::comm_sharing = kName one per name, in that deterministic order: color =
//      the group's index, key = the local rank; non-members pass no color. Size-1 groups get a self
//      communicator of the world's memory kind (Communicator::NewSelf). Whole-world groups in world
//      order reuse the caller's world communicator when neither the world nor the mesh has a
//      timeout, the mesh does not ask for isolation or argument checks and shares by partition;
//      otherwise they get their own communicator (a split of the world), so that the mesh's timeout
//      applies and aborting the mesh never aborts the caller's world. communicators_created()
//      counts the splits.
// Each communicator is named after its group (CommOptions::name): the names sharing it joined
// with "/", e.g. "dp_shard/dp", so timeouts name the axis; each gets the mesh's timeout and the
// NCCL settings of its names (DeviceMeshOptions::nccl, PlanMeshCommunicators);
// CommunicatorNames() lists which names share one.
//
// Rank subsets: a plan over a rank list makes the other ranks non-members. They take part in
// construction (with no color) but hold no groups; asking one for a group, a coordinate or a
// submesh is FailedPrecondition naming the rank and the mesh. Two meshes over disjoint ranks (a
// student and a teacher) are built by every rank, in the same order.
//
// Views. A DeviceMesh is a cheap handle: copies, submeshes and unflattened meshes share the
// communicators of the mesh they came from (which live until the last handle is gone). The world
// communicator is not owned: a mesh that reuses it (see above) notices when the caller destroys it
// (Comm and Submesh on such a group are then FailedPrecondition), and never aborts it.
//
// Thread safety: const methods may be called concurrently, except that the communicators
// themselves are not thread-safe (comm/communicator.h). Abort() may be called from any thread.
#ifndef NMESH_MESH_DEVICE_MESH_H_
#define NMESH_MESH_DEVICE_MESH_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/config/sizes.h"
#include "nmesh/mesh/axis_name.h"
#include "nmesh/mesh/layout.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::mesh {

struct DeviceMeshOptions {
  // The mesh's name in messages ("rank 5 is not a member of mesh 'teacher_distributed' ...").
  // The moe mesh is called "moe_mesh", or "<name>.moe_mesh" for a mesh not named "device_mesh".
  std::string name = "device_mesh";
  // The timeout of every communicator the mesh creates (CommOptions::timeout), flattened and moe
  // ones included: comm::kDefaultTimeout (10 minutes) unless set; std::nullopt opts out (an
  // operation a peer never joins then waits forever).
  std::optional<absl::Duration> timeout = comm::kDefaultTimeout;
  // Give a whole-world group its own communicator even without a timeout (see the overview), so
  // that the mesh is independent of the caller's world communicator.
  bool isolate = false;
  // CommOptions::interruptible for every communicator the mesh creates: with a timeout, MPI
  // operations poll and return DeadlineExceeded instead of the watchdog ending the job.
  bool interruptible = false;
  // NCCL settings per native axis, flattened group or moe axis name ("tp", "dp_shard_cp", "ep"):
  // the CommOptions::nccl of the communicator that serves it (see PlanMeshCommunicators). Applied
  // by the NCCL backend to that group's split, ignored by MPI. A whole-world group with settings
  // gets its own communicator (the caller's world was created with its own); size-1 groups (self
  // communicators) and the sub-axes Unflatten makes have no NCCL communicator to apply them to.
  comm::NcclSettingsMap nccl = {};
  // kPartition: one communicator per distinct partition of the ranks, shared by the names that
  // split them alike (the fewest communicators). kName: one per name, so that two names can be
  // driven from two threads or streams at once; whole-world names then never reuse the caller's
  // world. Either way, names whose NCCL settings conflict get their own (PlanMeshCommunicators).
  config::CommSharing comm_sharing = config::CommSharing::kPartition;
  // CommOptions::check_arguments for every communicator the mesh creates (self ones included):
  // before each collective the ranks compare their arguments, and a mismatch fails on every rank
  // naming both ranks' values. A debugging aid: one small all_gather per collective.
  bool check_arguments = false;
  // Name each communicator "<mesh name>.<group>" ("teacher_distributed.tp") instead of "<group>",
  // so that timeouts and errors say which model's axis failed when a process holds two meshes
  // (job::Job::Start sets it when it builds more than one).
  bool qualify_names = false;
};

// One communicator a mesh holds: the group kind it serves, with the names it serves (every name
// of a DistinctGroupKinds kind, or some of them when their NCCL settings conflict), and its NCCL
// settings (the merge of those names' settings).
struct MeshCommunicatorPlan {
  GroupKind kind;
  comm::NcclSettings nccl;
};

// The communicators a mesh of `plan` holds, in creation order: one per kind of
// DistinctGroupKinds(plan, sharing), except that names of one kind whose NCCL settings set a field
// differently (or together give min_ctas > max_ctas) get communicators of their own. Names are
// placed in kind order, each joining the first communicator of its kind whose settings it does not
// conflict with (a name without settings joins the first), so every rank derives the same list.
// Fails with InvalidArgument, carrying the field "nccl.<name>" (validate::FieldsOf), for
//   - a name that is none of the plan's axes or groups: "NCCL settings for 'ep': mesh
//     'device_mesh' has no axis or group 'ep'; its axes and groups are [pp, dp_replicate, ...]";
//   - settings that fail comm::CheckNcclSettings (min_ctas > max_ctas).
// `mesh_name` names the mesh in messages. Pure; thread-safe.
absl::StatusOr<std::vector<MeshCommunicatorPlan>> PlanMeshCommunicators(
    const MeshPlan& plan, const comm::NcclSettingsMap& settings,
    config::CommSharing sharing = config::CommSharing::kPartition,
    std::string_view mesh_name = "device_mesh");

class DeviceMesh {
 public:
  // Builds the meshes of `plan` over `world` (see the overview): collective over `world`, whose
  // ranks are the global ranks of the plan. Fails with
  //   - InvalidArgument "ranks disagree on the mesh: ..." when the ranks' plans differ;
  //   - InvalidArgument when the plan needs more ranks than `world` has, or for NCCL settings
  //     PlanMeshCommunicators refuses (after the agreement, on every rank alike);
  //   - the communicators' errors (e.g. DeadlineExceeded from a split), prefixed with the mesh's
  //     name and the group being split.
  static absl::StatusOr<DeviceMesh> Create(const MeshPlan& plan, comm::Communicator& world,
                                           DeviceMeshOptions options = {});

  // The mesh's name (DeviceMeshOptions::name; "moe_mesh" for a moe mesh; unchanged by views).
  const std::string& name() const { return name_; }
  // The ranks of this mesh. For the mesh Create returns, every member; for a submesh, this rank's
  // slice; for a moe mesh, this rank's stage (stage 0's on a non-member).
  const Layout& layout() const { return layout_; }
  const std::vector<std::string>& axis_names() const { return layout_.axis_names(); }
  const std::vector<int64_t>& shape() const { return layout_.shape(); }
  int ndim() const { return layout_.ndim(); }
  int64_t size() const { return layout_.size(); }
  // This process's global rank (its rank in the world communicator).
  int64_t global_rank() const { return rank_; }
  // Whether this process is one of the mesh's ranks.
  bool is_member() const { return member_; }
  // This rank's coordinate along axis_names(); FailedPrecondition on a non-member.
  absl::StatusOr<std::vector<int64_t>> Coordinate() const;
  // The flattened groups this mesh offers, in their order (e.g. dp, dp_shard_cp, dp_cp).
  std::vector<std::string> FlattenedNames() const;
  // Whether `name` is a native axis / a native axis or flattened group of this mesh.
  bool HasAxis(std::string_view name) const;
  bool HasGroup(std::string_view name) const;

  // The communicator of native axis or flattened group `name` (owned by the mesh). Fails with
  // FailedPrecondition on a non-member, or NotFound naming the mesh's axes and groups. The names
  // exist as constants (mesh/axis_name.h: Comm(axis::kTp)), so that a typo does not compile.
  absl::StatusOr<comm::Communicator*> Comm(std::string_view name) const;
  absl::StatusOr<comm::Communicator*> Comm(MeshAxisName name) const;
  // Comm(name), or nullptr where Comm fails (a name this mesh lacks, a non-member): for call sites
  // that test instead of dereferencing a StatusOr (`*mesh.Comm("tp")` ends the process on an
  // error).
  comm::Communicator* FindComm(std::string_view name) const;

  // Which names share a communicator: one entry per communicator the mesh holds, in creation
  // order, each listing the native axes, flattened groups and moe axes it serves (e.g. {"tp",
  // "ep"}, {"dp_shard", "dp", "dp_shard_cp", "dp_cp"} at np 8 with tp=2 ep=2; one name per entry
  // with CommSharing::kName). The same on every rank, members or not. Views share their mesh's.
  const std::vector<std::vector<std::string>>& CommunicatorNames() const;

  // A view over the named groups of this rank, sharing their communicators. Native axes in mesh
  // order give a slice; one flattened name gives its 1-D group; (dp_replicate, dp_shard_cp) gives
  // the 2-D HSDP view whose axes use the native dp_replicate and the flattened dp_shard_cp
  // communicators. The groups' axes must be disjoint and in mesh order. Flattened groups made of
  // whole selected groups stay available in the view. Not collective. FailedPrecondition on a
  // non-member; NotFound for an unknown name; InvalidArgument for bad order or overlap.
  absl::StatusOr<DeviceMesh> Submesh(absl::Span<const std::string_view> names) const;

  // This mesh with axis `axis` replaced by sub-axes `names` of sizes `sizes` (row-major, the last
  // fastest), e.g. cp into (ring, ulysses). Collective over the members of the mesh: each splits
  // its own `axis` communicator once per new sub-axis that is neither of size 1 (self) nor the
  // whole axis (reused). Non-members communicate nothing and get a non-member view. Fails with
  // InvalidArgument for a bad axis, a name clash, or a wrong product: "the product of the sizes
  // (2 * 3 = 6) must equal the cp mesh size (4)"; or with a split's error.
  absl::StatusOr<DeviceMesh> Unflatten(std::string_view axis, std::vector<int64_t> sizes,
                                       std::vector<std::string> names) const;

  // The moe mesh (ep_shard, ep) of this rank's pipeline stage, sharing this mesh's state;
  // std::nullopt when the plan has none, and on views made by Submesh.
  std::optional<DeviceMesh> moe_mesh() const;

  // The number of collective splits made for this mesh so far (by Create and Unflatten, shared by
  // every view and the moe mesh). A plan makes one per distinct kind that is neither trivial nor
  // the whole world in order.
  int communicators_created() const;

  // Aborts every communicator the mesh created, together (comm::AbortTogether: on NCCL, one
  // grouped ncclCommAbort of the split family). Runs on its own, too, when one of them times out
  // or reports an asynchronous error (comm/watch/watchdog.h). A world
  // communicator the mesh reuses is the caller's and is left alone. Idempotent; any thread;
  // returns the first error of a backend.
  absl::Status Abort() const;
  // Abort() with a cause (comm::RevokeTogether): every pending and later operation on any of the
  // mesh's communicators fails with Aborted "<op> on axis '<name>': mesh '<mesh name>' was
  // revoked: <cause>". For a job whose ranks learned that the mesh failed elsewhere
  // (job::Job::Recover and its monitor). The first cause wins; the caller's world, when reused, is
  // left alone as by Abort(). Idempotent; any thread; returns the first error of a backend.
  absl::Status Revoke(std::string_view cause) const;

  // Sets the timeout of every communicator the mesh uses (Communicator::SetTimeout; flattened,
  // moe and unflattened ones included, and the world communicator when a whole-world group reuses
  // it), for the operations issued from then on; std::nullopt: none. Not collective: every rank
  // should set the same. A timeout that is zero, negative, infinite or rounds to zero is
  // InvalidArgument and changes nothing. Not while another thread runs operations on the mesh.
  absl::Status SetTimeout(std::optional<absl::Duration> timeout) const;

  // "device_mesh (pp=1, dp_replicate=1, dp_shard=2, cp=2, tp=2) + dp, dp_shard_cp, dp_cp".
  std::string DebugString() const;

 private:
  struct Shared;
  struct Flattened {
    std::string name;
    AxisSet axes;
    std::shared_ptr<comm::Communicator> comm;
  };

  explicit DeviceMesh(Layout layout) : layout_(std::move(layout)) {}
  absl::Status CheckMember(std::string_view what) const;
  absl::Status UnknownGroup(std::string_view name) const;
  // FailedPrecondition when `comm` is the caller's world communicator, reused, and destroyed.
  absl::Status CheckAlive(std::string_view name,
                          const std::shared_ptr<comm::Communicator>& comm) const;
  // The axes of a native axis or flattened group, with its communicator (null on non-members).
  struct Resolved {
    AxisSet axes;
    std::shared_ptr<comm::Communicator> comm;
  };
  absl::StatusOr<Resolved> Resolve(std::string_view name) const;

  std::shared_ptr<Shared> shared_;
  std::string name_;
  Layout layout_;
  int64_t rank_ = 0;
  bool member_ = false;
  // One per native axis; null on non-members.
  std::vector<std::shared_ptr<comm::Communicator>> axis_comms_;
  std::vector<Flattened> flattened_;
  std::shared_ptr<const DeviceMesh> moe_;
};

}  // namespace nmesh::mesh

#endif  // NMESH_MESH_DEVICE_MESH_H_
