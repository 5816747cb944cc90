// The channel over which the ranks of a job that lost a communicator (a timeout, a peer that died,
// an asynchronous error) tell one another, and then agree on what failed. It must survive the
// failure it reports, so it never runs over the meshes' communicators: under a store launch it is
// the job's store (StoreRecoveryChannel, below); under mpirun it is a duplicate of MPI's world
// made at start-up (comm::mpi::MpiRecoveryChannel in comm/mpi/recovery_channel.h).
//
//   // The rank that saw the failure first (any rank may; the first announcement of an epoch wins):
//   NMESH_RETURN_IF_ERROR(channel.Announce(epoch, "rank 3: all_reduce on axis 'tp' timed out"));
//   // Every other rank, from a thread that polls (job::Job's monitor):
//   if (std::optional<std::string> cause = channel.Announced(epoch)) (void)mesh.Revoke(*cause);
//   // Then every surviving rank, together:
//   NMESH_ASSIGN_OR_RETURN(RecoveryVerdict verdict, channel.Meet(epoch, options));
//
// Epochs number the failures of one job (0 for the first); every key or message of an epoch is
// its own, so that a late rank that reports an old epoch is told it is late instead of
// corrupting a newer meeting. Methods are thread-safe.
#ifndef NMESH_COMM_RECOVERY_CHANNEL_H_
#define NMESH_COMM_RECOVERY_CHANNEL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/comm/store.h"

namespace nmesh::comm {

// How a meeting of the survivors waits for one another.
struct RecoveryMeetOptions {
  // This rank in the job as launched (stable across recoveries), and the job's size then.
  int64_t launch_rank = 0;
  int64_t launch_size = 1;
  // The ranks already lost at earlier epochs (launch ranks): never waited for.
  std::vector<int64_t> gone = {};
  // Whether every rank not gone must arrive (rebuild: the same ranks again) or the meeting may
  // close without the ranks that do not arrive in time (shrink: they are counted dead).
  bool need_all = false;
  // Without need_all: the meeting closes when no new rank has arrived for `quiet` and no rank still
  // missing has beaten (RecoveryChannel::Alive) for `quiet` either (or every rank not gone has
  // arrived), and never later than `deadline`. With need_all: it waits until
  // `deadline` for every rank not gone, and fails naming the missing ones (DeadlineExceeded).
  absl::Duration quiet = absl::Seconds(1);
  absl::Time deadline = absl::InfinitePast();
};

// What the survivors agreed on: the same on every rank that took part.
struct RecoveryVerdict {
  int64_t epoch = 0;
  // The launch ranks that arrived, ascending (this rank among them), and those that did not
  // (dead, or too late: told so when they arrive, see Meet).
  std::vector<int64_t> survivors;
  std::vector<int64_t> dead;
  // The first announcement of the epoch, in words ("rank 3: all_reduce on axis 'tp' timed out after
  // 2 s (rank 3 of 8)").
  std::string cause;
};

class RecoveryChannel {
 public:
  virtual ~RecoveryChannel() = default;
  // Tells every rank that epoch `epoch` failed, with `cause` in words (printable, cut to 1 KiB).
  // The first announcement of an epoch is the one every rank sees; later ones change nothing. Never
  // waits for another rank.
  virtual absl::Status Announce(int64_t epoch, std::string_view cause) = 0;
  // The cause announced for `epoch`, or nullopt when none has been yet. Never waits; cheap enough
  // to be polled every 100 ms.
  virtual std::optional<std::string> Announced(int64_t epoch) = 0;
  // The meeting of the survivors of `epoch` (see RecoveryMeetOptions): every rank that calls it
  // before the meeting closes gets the same verdict. A rank that arrives after it closed gets
  // FailedPrecondition "rank R arrived after the survivors of failure E agreed without it (...)".
  // Fails with the channel's own errors (a store that is gone: Unavailable naming it).
  virtual absl::StatusOr<RecoveryVerdict> Meet(int64_t epoch,
                                               const RecoveryMeetOptions& options) = 0;
  // Tells the others that this rank's process still runs (job::Job's monitor calls it every
  // 100 ms). A meeting without need_all does not close while a rank that has not arrived still
  // beats: a rank that is only slow (a loaded machine, a long step) is waited for until the
  // deadline, and one that stopped beating for `quiet` is counted dead. Never waits for another
  // rank. Default: nothing (a channel whose ranks cannot die alone, as MPI's under mpirun).
  virtual absl::Status Alive(int64_t /*launch_rank*/) { return absl::OkStatus(); }
  // How the channel is named in messages: "the store redis://h:6379/job1", "MPI's world".
  virtual std::string Describe() const = 0;
};

// The recovery channel over a job's store: keys "recover/<epoch>/..." in `store` (shared).
std::unique_ptr<RecoveryChannel> StoreRecoveryChannel(std::shared_ptr<Store> store);

}  // namespace nmesh::comm

#endif  // NMESH_COMM_RECOVERY_CHANNEL_H_
