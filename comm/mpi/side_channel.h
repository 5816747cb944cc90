// The separate channel of comm/mpi's communicators (comm/watch/side_channel.h): a duplicate of the
// communicator, used by the watchdog thread only, over which ranks ask each other for their flight
// records. Not installed.
//
//   std::unique_ptr<MpiSideChannel> side = MakeSideChannel(comm);  // collective over comm
#ifndef NMESH_COMM_MPI_SIDE_CHANNEL_H_
#define NMESH_COMM_MPI_SIDE_CHANNEL_H_

#include <mpi.h>

#include <memory>

#include "nmesh/comm/watch/side_channel.h"

namespace nmesh::comm::mpi {

// A separate channel for `comm` (collective over it: every rank must call this together), or null
// when MPI does not grant the "multiple" thread level or the duplicate fails.
std::unique_ptr<internal::SideChannel> MakeSideChannel(MPI_Comm comm);

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_SIDE_CHANNEL_H_
