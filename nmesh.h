// nmesh: n-dimensional device meshes with named axes over NCCL and MPI communicators.
//
// The umbrella header. Link the CMake target nmesh::nmesh (or `pkg-config nmesh`) and include this:
//
//   #include <nmesh/nmesh.h>
//   std::cout << "nmesh " << nmesh::VersionString() << "\n";
#ifndef NMESH_NMESH_H_
#define NMESH_NMESH_H_

#include "base/build_config.h"
#include "base/status_macros.h"
#include "base/version.h"
#include "comm/communicator.h"
#include "comm/host_collectives.h"
#include "comm/mpi/communicator.h"
#include "comm/mpi/session.h"
#include "comm/self.h"
#include "comm/topology.h"
#include "config/recipe.h"
#include "config/strategy.h"
#include "mesh/axis_name.h"
#include "mesh/checked_math.h"
#include "mesh/context.h"
#include "mesh/device_mesh.h"
#include "mesh/layout.h"
#include "mesh/plan.h"
#include "mesh/planned_context.h"
#include "validate/validate.h"

#if NMESH_HAVE_NCCL
#include "comm/nccl/communicator.h"
#include "comm/nccl/runtime.h"
#endif

#endif  // NMESH_NMESH_H_
