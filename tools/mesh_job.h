// The start shared by the verbs that run as a job (`nmesh run`, `nmesh bench`), under mpirun or
// over a store (--store): the job layer's start (job::StartLaunchedJob) and failure policy
// (job/launch.h), with their outcomes turned into what the CLI prints and its exit code.
//
//   std::variant<CliJob, int> started =
//       StartJob({.mesh = options.mesh, .backend = job::BackendChoice::kAuto}, reporter);
//   if (const int* code = std::get_if<int>(&started)) return *code;
//   job::Job& job = *std::get<CliJob>(started).job;
//
// An error every rank agreed on is reported once by rank 0 and gives the exit code; an error of
// this rank alone, while others may be blocked in a collective, ends the job (MPI_Abort, exit 1).
#ifndef NMESH_TOOLS_MESH_JOB_H_
#define NMESH_TOOLS_MESH_JOB_H_

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <variant>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/job/job.h"
#include "nmesh/job/launch.h"

namespace nmesh::tools {

using job::Job;
using job::JobMesh;

// The exit code of a failed status: kExitUsage for a config error (job::IsConfigError), otherwise
// kExitRuntimeFailure.
int ExitCodeOf(const absl::Status& status);

// The --timeout-s flag of `run` and `bench`, as given.
struct TimeoutFlag {
  // A positive, finite number of seconds; unset: the default (job::JobTimeout).
  std::optional<absl::Duration> timeout;
  // "0" or "none": the explicit opt-out (job::JobOptions::no_timeout).
  bool none = false;
};

// Registers --timeout-s on a verb that starts a job; `default_text` says what applies without it.
void AddTimeoutFlag(CLI::App& verb, std::optional<std::string>& value,
                    const std::string& default_text);
// The --timeout-s flag: unset, a positive finite number of seconds, or "0"/"none" (no timeout).
// InvalidArgument naming the flag and the value otherwise.
absl::StatusOr<TimeoutFlag> TimeoutFromFlag(const std::optional<std::string>& text);

// Registers --store URL on a verb that starts a job (`run`, `bench`).
void AddStoreFlag(CLI::App& verb, std::optional<std::string>& url);

// Registers --startup-timeout-s on a verb that starts a job (`run`, `bench`).
void AddStartupTimeoutFlag(CLI::App& verb, std::optional<double>& seconds);
// The --startup-timeout-s flag: like --timeout-s, named in errors.
absl::StatusOr<std::optional<absl::Duration>> StartupTimeoutFromFlag(std::optional<double> seconds);

// Reports an error in the flags of `run` or `bench` (exit code kExitUsage), agreed on by the
// launcher's job (job::AgreeOnFlagError): printed once, by rank 0, even when only some ranks of a
// multi-program launch have it; a failed agreement ends the job (JobReporter::Abort).
// With `store_url` the agreement meets at the store (a store launch).
int ReportFlagError(const absl::Status& status, bool json, std::ostream& out, std::ostream& err,
                    const std::optional<std::string>& store_url = std::nullopt);

class JobReporter {
 public:
  JobReporter(int rank, bool json, std::ostream& out, std::ostream& err)
      : rank_(rank), json_(json), out_(out), err_(err) {}

  int rank() const { return rank_; }
  void set_rank(int rank) { rank_ = rank; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // An error every rank has: rank 0 writes "nmesh: error: <message>" (and {"error": ...} under
  // JSON); returns ExitCodeOf(status).
  int Fail(const absl::Status& status);

  // An error of this rank alone, while other ranks may be blocked in a collective waiting for it:
  // reports it here (naming the rank) and ends the whole job (job::EndJob, exit 1).
  [[noreturn]] void Abort(const absl::Status& status);

  // "nmesh: <line>" on stderr, from rank 0.
  void Note(const std::string& line);

 private:
  int rank_;
  bool json_;
  std::ostream& out_;
  std::ostream& err_;
};

// A started job and the MPI session or the store under it (destroyed after the job).
using CliJob = job::LaunchedJob;

// The --flight-recorder flag of `run` and `bench`: job::StartTimeoutReporting with `dir`; a
// directory that cannot be written is reported once ("nmesh: error: --flight-recorder: ...") and
// the job runs on without dumps.
void ApplyFlightRecorderFlag(const std::optional<std::string>& dir, JobReporter& reporter);

// job::StartLaunchedJob as one rank of the CLI's job (over the store `store_url` when given, else
// MPI). Recipe warnings are noted on stderr from rank 0. Returns the job (and sets the reporter's
// rank), or the exit code after an agreed failure was reported; a failure of this rank alone ends
// the job (JobReporter::Abort). A failure to start MPI is reported by every rank (exit 1); a store
// launch's bad environment by every rank it concerns, its store's failure by rank 0 (exit 2 for a
// bad URL or variable, 1 for a store that cannot be reached). `late` (fault injection) delays
// this rank before the start-up agreement.
std::variant<CliJob, int> StartJob(job::JobOptions options, JobReporter& reporter,
                                   const std::optional<std::string>& store_url = std::nullopt,
                                   absl::Duration late = absl::ZeroDuration());

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_MESH_JOB_H_
