// The recovery channel of a job launched by mpirun (comm/recovery_channel.h): a duplicate of MPI's
// world made when the channel is created, so that it survives the failure of any mesh
// communicator.
//
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<MpiRecoveryChannel> channel,
//                          MpiRecoveryChannel::Create(session));   // collective, at start-up
//   NMESH_RETURN_IF_ERROR(channel->Announce(0, "rank 3: all_reduce on axis 'tp' timed out"));
//   std::optional<std::string> cause = channel->Announced(0);       // any rank, polled
//   NMESH_ASSIGN_OR_RETURN(RecoveryVerdict verdict,
//                          channel->Meet(0, {.launch_rank = rank,
//                                            .launch_size = size,
//                                            .need_all = true,
//                                            .deadline = deadline}));
//
// Announce sends a notice (the epoch and the cause, cut to 1 KiB) to every other rank with
// nonblocking sends, completed by later calls (and left to MPI, never freed under it, when the
// channel goes). Announced takes the notices that have arrived (MPI_Iprobe) and answers from what
// this rank has seen: the first cause it saw for an epoch, its own or another rank's. Two ranks
// that announce at once may each see their own first; the meeting's verdict carries one cause, the
// coordinator's, the same on every rank.
//
// Meet is a bounded meeting decided by the coordinator (the lowest rank not gone: rank 0 under
// mpirun, where a rank that dies ends the job): every other rank sends it its arrival (and the
// cause it knows), the coordinator waits as RecoveryMeetOptions says and sends the verdict to every
// rank that arrived. Under mpirun every rank is alive, so a meeting ends with survivors = every
// rank not gone and dead = {}, unless a rank does not arrive in time: with need_all the meeting
// fails on every rank that arrived with DeadlineExceeded naming the missing ranks ("ranks [3] did
// not arrive at the meeting of failure 0 within 5 s"); without it they are counted dead. A rank
// that arrives after the meeting closed is told so (FailedPrecondition) when the coordinator next
// meets or polls Announced. RecoveryMeetOptions::deadline in the past (the default) means 60 s
// from the call. A rank other than the coordinator gives up 5 s after the deadline
// (DeadlineExceeded naming the coordinator).
//
// Threads: every method takes the channel's lock. Calling Announced from another thread than the
// one making the process's other MPI calls needs MPI's "multiple" thread level
// (Session::thread_level()).
#ifndef NMESH_COMM_MPI_RECOVERY_CHANNEL_H_
#define NMESH_COMM_MPI_RECOVERY_CHANNEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/comm/recovery_channel.h"

namespace nmesh::comm::mpi {

class MpiRecoveryChannel final : public RecoveryChannel {
 public:
  // Duplicates MPI_COMM_WORLD: collective over it. FailedPrecondition when MPI is not running;
  // MPI's error of MPI_Comm_dup otherwise. The session must outlive the channel.
  static absl::StatusOr<std::unique_ptr<MpiRecoveryChannel>> Create(Session& session);
  ~MpiRecoveryChannel() override;

  absl::Status Announce(int64_t epoch, std::string_view cause) override;
  std::optional<std::string> Announced(int64_t epoch) override;
  absl::StatusOr<RecoveryVerdict> Meet(int64_t epoch, const RecoveryMeetOptions& options) override;
  std::string Describe() const override { return "MPI's world"; }

 private:
  struct Native;
  MpiRecoveryChannel();
  // Takes the notices and (on the coordinator) the late arrivals that have come in. Needs mu_.
  void PollLocked();

  std::unique_ptr<Native> native_;
  std::mutex mu_;
  std::map<int64_t, std::string> announced_;  // guarded by mu_: the first cause seen per epoch
  int64_t closed_ = -1;  // guarded by mu_: the last epoch whose meeting this rank coordinated
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_RECOVERY_CHANNEL_H_
