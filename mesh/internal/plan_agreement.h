// Internal: the agreement that opens DeviceMesh::Create: every rank of the world checks, in one
// bounded all-reduce, that all ranks are building the same mesh. Not installed.
//
//   NMESH_RETURN_IF_ERROR(internal::AgreeOnPlan(plan, options, world));
#ifndef NMESH_MESH_INTERNAL_PLAN_AGREEMENT_H_
#define NMESH_MESH_INTERNAL_PLAN_AGREEMENT_H_

#include "absl/status/status.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::mesh::internal {

// Fails on every rank, together, when the ranks' fingerprints differ.
absl::Status AgreeOnPlan(const MeshPlan& plan, const DeviceMeshOptions& options,
                         comm::Communicator& world);

}  // namespace nmesh::mesh::internal

#endif  // NMESH_MESH_INTERNAL_PLAN_AGREEMENT_H_
