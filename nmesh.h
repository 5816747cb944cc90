// nmesh: n-dimensional device meshes with named axes over NCCL and MPI communicators.
//
// The umbrella header. Link the CMake target nmesh::nmesh (or `pkg-config nmesh`) and include this:
//
//   #include <nmesh/nmesh.h>
//   std::cout << "nmesh " << nmesh::VersionString() << "\n";
#ifndef NMESH_NMESH_H_
#define NMESH_NMESH_H_

#include "nmesh/base/build_config.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/version.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/comm/self.h"
#include "nmesh/comm/topology.h"
#include "nmesh/config/recipe.h"
#include "nmesh/config/strategy.h"
#include "nmesh/job/job.h"
#include "nmesh/job/launch.h"
#include "nmesh/job/spec.h"
#include "nmesh/job/verify.h"
#include "nmesh/mesh/axis_name.h"
#include "nmesh/mesh/context.h"
#include "nmesh/mesh/device_mesh.h"
#include "nmesh/mesh/layout.h"
#include "nmesh/mesh/plan.h"
#include "nmesh/mesh/planned_context.h"
#include "nmesh/validate/checked_math.h"
#include "nmesh/validate/error_fields.h"
#include "nmesh/validate/sizes.h"
#include "nmesh/validate/strategy.h"
#include "nmesh/validate/validate.h"

#if NMESH_HAVE_NCCL
#include "nmesh/comm/nccl/communicator.h"
#include "nmesh/comm/nccl/runtime.h"
#endif

#endif  // NMESH_NMESH_H_
