// The separate channel of comm/mpi's communicators (comm/watch/side_channel.h): a duplicate of the
// communicator, used by the watchdog thread (and, for revocation notices, by the communicator's own
// thread), over which ranks ask each other for their flight records and tell each other that the
// communicator was revoked. Not installed.
//
//   std::unique_ptr<MpiSideChannel> side = MakeSideChannel(comm, "tp");  // collective over comm
//   side->SetOnNotice([this](const std::string& cause) { RevokedByPeer(cause); });
//   side->Revoke("rank 3: all_reduce on axis 'tp' timed out after 2 s (rank 1 of 2)");
#ifndef NMESH_COMM_MPI_SIDE_CHANNEL_H_
#define NMESH_COMM_MPI_SIDE_CHANNEL_H_

#include <mpi.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "nmesh/comm/watch/side_channel.h"

namespace nmesh::comm::mpi {

// comm/watch's side channel, plus revocation notices: when a rank's communicator is revoked (a
// timeout, an abort, a notice for another communicator of its mesh), every other rank of it is
// told the cause, so that its operations fail at once instead of waiting for, or completing
// without, the ranks that gave up.
class MpiSideChannel : public internal::SideChannel {
 public:
  // What runs when a notice from another rank arrives (once: the first cause), on the thread that
  // took it off the channel (the watchdog's in Serve, or the caller of CheckNotices), with
  // MpiUseMutex held; it must not destroy this channel. Thread-safe.
  virtual void SetOnNotice(std::function<void(const std::string&)> on_notice) = 0;
  // Marks the channel revoked and queues a notice with `cause` (cut to 1 KiB) for every other rank,
  // sent by the next Serve or CheckNotices; only the first call (or notice received) counts.
  // Makes no MPI call: any thread.
  virtual void Revoke(std::string_view cause) = 0;
  // Whether Revoke was called or a notice arrived. Thread-safe.
  virtual bool revoked() const = 0;
  // Sends the queued notice and takes the arrived ones, as Serve does, from the communicator's
  // own thread; does nothing when another thread is making MPI calls for nmesh (MpiUseMutex).
  virtual void CheckNotices() = 0;
  // Stops using the channel and hands its duplicate communicator to the caller, who must never
  // free it (other ranks may still send to it: freeing it would let MPI give its context to a new
  // communicator that then receives their messages). Cancels the posted receives; sends in flight
  // complete on their own. The channel does nothing afterwards. MPI_COMM_NULL after MPI_Finalize.
  virtual MPI_Comm Retire() = 0;
};

// A separate channel for `comm`, named `name` (collective over it: every rank must call this
// together), or null when MPI does not grant the "multiple" thread level or the duplicate fails.
std::unique_ptr<MpiSideChannel> MakeSideChannel(MPI_Comm comm, std::string_view name);

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_SIDE_CHANNEL_H_
