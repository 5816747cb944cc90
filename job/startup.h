// The start-up agreement: before anything backend- or command-specific, every rank of a job
// tells rank 0 what it is about to do, and rank 0 tells every rank whether they agree, over a
// bounded exchange that has the same shape whatever the ranks were started with (a
// StartupExchange: MPI's comm::mpi::Rendezvous under mpirun, comm::StoreRendezvous over the store
// of a job launched without MPI). Job::Start runs it first; engines that start their own way can
// too:
//
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<comm::mpi::Session> session,
//                          comm::mpi::Session::Init(&argc, &argv));
//   absl::StatusOr<mesh::MeshPlan> plan = mesh::PlanMesh(request);  // the same on every rank?
//   std::vector<const mesh::MeshPlan*> plans;
//   if (plan.ok()) plans.push_back(&*plan);
//   const std::vector<std::string> names = {"device_mesh"};
//   const StartupRecord mine = MakeStartupRecord("my-engine train lr=3e-4", "mpi",
//                                                absl::Seconds(60), plan.status(), plans, names);
//   absl::Status agreed = AgreeAtStartup(*session, mine, absl::Seconds(60));
//   if (!agreed.ok() && !IsAgreed(agreed)) comm::mpi::Session::AbortJob(1);  // someone missing
//   NMESH_RETURN_IF_ERROR(agreed);  // the same error on every rank: exit in order
//
// What is compared, in this order (the first difference is the answer):
//   0. the world size each rank was launched with (a store launch's WORLD_SIZE or SLURM_NTASKS;
//      always equal under MPI): a rank whose size differs from rank 0's is named;
//   1. every rank arrived before the deadline (otherwise: Unavailable naming the missing ranks,
//      not agreed: the job must end with MPI_Abort);
//   2. the nmesh version;
//   3. each rank's own configuration error, if any (the lowest rank's is everyone's): a bad flag
//      or recipe on one rank of a multi-program launch is reported like one on every rank;
//   4. the command (what the caller runs, e.g. "run" or "bench ..."), the backend choice;
//   5. the timeout and the meshes (count, strategy, shape, flattened groups, rank lists, moe).
// A difference in 2-5 is an agreed InvalidArgument ("ranks disagree on the mesh: rank 0 builds
// ..., rank 4 builds ...") or the agreed configuration error, which every rank returns, so that
// every rank can exit in order.
#ifndef NMESH_JOB_STARTUP_H_
#define NMESH_JOB_STARTUP_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/comm/store.h"
#include "nmesh/mesh/plan.h"

namespace nmesh::job {

// Whether every rank of the job holds this same error (see Job::Start). OK statuses are not.
bool IsAgreed(const absl::Status& status);
// `status` marked as agreed by every rank.
absl::Status MarkAgreed(absl::Status status);

// What one rank is about to do, as sent to rank 0 (Serialize: at most 1 KiB).
struct StartupRecord {
  std::string version;
  std::string command;
  std::string backend;  // "auto", "mpi" or "nccl"
  std::string timeout;  // "none" or a duration
  // This rank's configuration error (code 0: none), its message cut to fit.
  int code = 0;
  std::string error;
  // Every mesh this rank plans, in words (cut to fit) and as a hash of every detail.
  int64_t meshes = 0;
  std::string mesh_words;
  uint64_t mesh_hash = 0;
  uint64_t command_hash = 0;
  // The world size as this rank was launched with it, in words ("8", "WORLD_SIZE=8"); set by
  // AgreeAtStartup from the exchange.
  std::string world;

  std::string Serialize() const;
  // nullopt for a record that does not parse (e.g. sent by another nmesh version).
  static std::optional<StartupRecord> Parse(std::string_view text);
};

// The record of a rank that plans `plans` (or failed to plan with `planned`), runs `command` on
// `backend` with `timeout`. `plans` is ignored when `planned` is an error.
StartupRecord MakeStartupRecord(std::string_view command, std::string_view backend,
                                std::optional<absl::Duration> timeout, const absl::Status& planned,
                                absl::Span<const mesh::MeshPlan* const> plans,
                                absl::Span<const std::string> mesh_names);

// Rank 0's decision over every rank's record (nullopt: did not arrive), as the status every rank
// returns; OK when they agree. `where` says where the ranks meet in the message about missing
// ranks (e.g. " at the store redis://h:6379/job1"; empty under MPI). Pure: unit-tested without
// MPI.
absl::Status DecideStartup(absl::Span<const std::optional<std::string>> records,
                           absl::Duration timeout, std::string_view where = "");

// The bounded meeting the agreement runs over: every rank sends a record to rank 0, rank 0 decides
// over all of them (nullopt: did not arrive in time) and every rank that arrived returns rank 0's
// verdict (the contract of comm::mpi::Rendezvous). One per job; used by one thread.
class StartupExchange {
 public:
  using Decision = std::function<std::string(absl::Span<const std::optional<std::string>> records)>;
  virtual ~StartupExchange() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The world size as the launcher gave it, in words: "8" (MPI), "WORLD_SIZE=8" (a store).
  virtual std::string WorldWords() const = 0;
  // Where the ranks meet, for messages: "" (MPI) or " at the store redis://h:6379/job1".
  virtual std::string Where() const = 0;
  virtual absl::StatusOr<std::string> Rendezvous(std::string_view record, absl::Duration timeout,
                                                 const Decision& decide) = 0;
};

// The exchange over MPI_COMM_WORLD (comm::mpi::Rendezvous). `session` outlives it.
std::unique_ptr<StartupExchange> MpiStartupExchange(comm::mpi::Session& session);

// The exchange over `store` for rank `rank` of `size` (comm::StoreRendezvous under the key
// "startup"), the size named `size_variable` in messages. Before it meets, the rank claims its
// number (an Add on "claim/<rank>"): a number claimed before, by another process with the same
// rank or by a job that used the same store prefix, is InvalidArgument naming both causes.
// `store` outlives it.
std::unique_ptr<StartupExchange> StoreStartupExchange(comm::Store& store, int rank, int size,
                                                      std::string size_variable);

// Collective over the exchange's ranks (see the overview): sends `mine`, waits at most `timeout`
// for the others (a rank other than 0 waits for rank 0's answer up to twice as long), returns the
// agreed verdict (IsAgreed) or a failure of the exchange itself (not agreed). A rank launched
// with a world size other than rank 0's gets InvalidArgument naming both (not agreed: rank 0 may
// never have read its record).
absl::Status AgreeAtStartup(StartupExchange& exchange, StartupRecord mine, absl::Duration timeout);
// AgreeAtStartup over MpiStartupExchange(session).
absl::Status AgreeAtStartup(comm::mpi::Session& session, const StartupRecord& mine,
                            absl::Duration timeout);

// After the agreement, under MPI: every rank meets once more (a second comm::mpi::Rendezvous)
// before the first collective that has no deadline of its own (the world's MPI_Comm_dup). A rank
// stopped or dead since it sent its record (inside the agreement) is then named by rank 0 by
// `deadline` (Unavailable: "start-up: rank 3 of 4 did not come back from the agreement within
// 10s ..."), on every rank that came, instead of holding them in MPI_Comm_dup. Not agreed: the job
// must end (MustEndJob).
absl::Status MeetAfterAgreement(comm::mpi::Session& session, absl::Time deadline);

// The start-up deadline of a job: `startup_timeout` when given; otherwise the job's timeout, but
// at least kMinStartupTimeout (ranks of one job start seconds apart on a loaded host); otherwise
// kDefaultStartupTimeout.
inline constexpr absl::Duration kMinStartupTimeout = absl::Seconds(10);
inline constexpr absl::Duration kDefaultStartupTimeout = absl::Seconds(300);
absl::Duration StartupTimeout(std::optional<absl::Duration> startup_timeout,
                              std::optional<absl::Duration> timeout);

}  // namespace nmesh::job

#endif  // NMESH_JOB_STARTUP_H_
