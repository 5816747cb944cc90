// The MPI session: initialises MPI on construction and finalises it on destruction.
//
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<nmesh::comm::mpi::Session> session,
//                          nmesh::comm::mpi::Session::Init(&argc, &argv));
//   std::cout << "rank " << session->world_rank() << " of " << session->world_size();
//
// One Session per process. It must outlive every communicator created from it (a communicator
// destroyed after MPI_Finalize frees nothing). The world communicator comes from
// mpi::WorldCommunicator(session) (comm/mpi/communicator.h).
//
// nmesh's own traffic before any communicator exists (the start-up exchange, comm/mpi/rendezvous.h)
// goes over the session's private duplicate of MPI_COMM_WORLD, never over MPI_COMM_WORLD itself:
// an application's receive on MPI_COMM_WORLD (MPI_ANY_SOURCE, MPI_ANY_TAG) cannot take it.
#ifndef NMESH_COMM_MPI_SESSION_H_
#define NMESH_COMM_MPI_SESSION_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace nmesh::comm::mpi {

class Session {
 public:
  // Calls MPI_Init_thread asking for MPI_THREAD_MULTIPLE, unless MPI is already initialised (then
  // the session neither initialises nor finalises it). Sets MPI_ERRORS_RETURN on the world.
  // Not thread-safe; call once, from the main thread, before any other MPI use. Collective over
  // MPI_COMM_WORLD (every process calls it): it duplicates the world for nmesh's own traffic.
  static absl::StatusOr<std::unique_ptr<Session>> Init(int* argc, char*** argv);

  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Ends every process of the job (MPI_Abort on MPI_COMM_WORLD) with `exit_code`: the way out of
  // a failure that may leave other ranks blocked in a collective they can never finish. Does not
  // return. Thread-safe (MPI_Abort may be called from any thread).
  [[noreturn]] static void AbortJob(int exit_code);
  // Whether MPI is initialised and not finalised in this process. Thread-safe.
  static bool Running();

  int world_rank() const { return world_rank_; }
  int world_size() const { return world_size_; }
  // The thread level MPI granted: "single", "funneled", "serialized" or "multiple". MPI may grant
  // less than the "multiple" asked for; the communicators need only "single" as long as one thread
  // makes all MPI calls (Abort() makes none).
  const std::string& thread_level() const { return thread_level_; }

 private:
  struct Native;  // MPI handles (comm/mpi/session.cc)
  friend struct SessionNative;
  Session();

  std::unique_ptr<Native> native_;
  bool owns_mpi_ = false;
  int world_rank_ = 0;
  int world_size_ = 1;
  std::string thread_level_;
};

}  // namespace nmesh::comm::mpi

#endif  // NMESH_COMM_MPI_SESSION_H_
