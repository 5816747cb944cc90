#include "nmesh/comm/mpi/session.h"

#include <mpi.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "absl/strings/str_format.h"
#include "nmesh/comm/mpi/quarantine.h"
#include "nmesh/comm/mpi/session_native.h"
#include "nmesh/comm/mpi/status.h"

namespace nmesh::comm::mpi {
namespace {

std::string ThreadLevelName(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "single";
    case MPI_THREAD_FUNNELED:
      return "funneled";
    case MPI_THREAD_SERIALIZED:
      return "serialized";
    case MPI_THREAD_MULTIPLE:
      return "multiple";
  }
  return absl::StrFormat("unknown(%d)", level);
}

std::atomic<bool> finalizing{false};

int OnFinalize(MPI_Comm, int, void*, void*) {
  std::lock_guard<std::recursive_mutex> lock(MpiUseMutex());
  finalizing.store(true, std::memory_order_release);
  return MPI_SUCCESS;
}

}  // namespace

std::recursive_mutex& MpiUseMutex() {
  static auto* mu = new std::recursive_mutex();
  return *mu;
}

bool MpiFinalizing() { return finalizing.load(std::memory_order_acquire); }

void WatchFinalize() {
  static std::once_flag once;
  std::call_once(once, [] {
    int keyval = MPI_KEYVAL_INVALID;
    if (MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, OnFinalize, &keyval, nullptr) ==
        MPI_SUCCESS) {
      MPI_Comm_set_attr(MPI_COMM_SELF, keyval, nullptr);
    }
  });
}

struct Session::Native {
  MPI_Comm comm = MPI_COMM_NULL;
};

Session::Session() : native_(std::make_unique<Native>()) {}

MPI_Comm SessionNative::Comm(const Session& session) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized ? MPI_COMM_NULL : session.native_->comm;
}

absl::StatusOr<std::unique_ptr<Session>> Session::Init(int* argc, char*** argv) {
  std::unique_ptr<Session> session(new Session);
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = MPI_THREAD_SINGLE;
  if (initialized) {
    MPI_Query_thread(&provided);
  } else {
    if (int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided); rc != MPI_SUCCESS) {
      absl::Status status = MpiStatus(rc, "MPI_Init_thread", -1);
      return absl::UnavailableError(status.message());
    }
    session->owns_mpi_ = true;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &session->world_rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &session->world_size_);
  session->thread_level_ = ThreadLevelName(provided);
  WatchFinalize();
  // nmesh's own channel: no message of the application on MPI_COMM_WORLD can match ours.
  MPI_Comm comm = MPI_COMM_NULL;
  if (int rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm); rc != MPI_SUCCESS) {
    return MpiStatus(rc, "MPI_Comm_dup", session->world_rank_);
  }
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  session->native_->comm = comm;
  return session;
}

bool Session::Running() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized != 0 && finalized == 0;
}

void Session::AbortJob(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this is for an MPI that does
}

Session::~Session() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && native_->comm != MPI_COMM_NULL) MPI_Comm_free(&native_->comm);
  // Operations abandoned on a failure that a late peer has completed since are done with; the
  // others stay pending on their never-freed communicators (comm/mpi/quarantine.h).
  if (owns_mpi_ && !finalized) {
    DrainQuarantine(absl::Milliseconds(100));
    MPI_Finalize();
  }
}

}  // namespace nmesh::comm::mpi
