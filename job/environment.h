// Where a process launched without MPI stands in its job, from its launcher's environment
// (torchrun, Kubernetes, Slurm's srun), and where the job's store is:
//
//   NMESH_ASSIGN_OR_RETURN(LaunchEnvironment launch, ReadLaunchEnvironment());
//   std::optional<std::string> url = StoreUrlFrom(flags.store);  // --store, else NMESH_STORE
#ifndef NMESH_JOB_ENVIRONMENT_H_
#define NMESH_JOB_ENVIRONMENT_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace nmesh::job {

// Reads one environment variable: null when unset (std::getenv in a process; a map in tests).
using EnvironmentReader = std::function<const char*(const char*)>;
// std::getenv.
const char* ProcessEnvironment(const char* name);

// Where a process started without MPI stands in its job, from its launcher's environment.
struct LaunchEnvironment {
  int rank = 0;
  int size = 1;
  // This process's index among the processes of its host, and how many run there, when the
  // launcher says (LOCAL_RANK and LOCAL_WORLD_SIZE, SLURM_LOCALID); otherwise derived from the
  // host names at start-up.
  std::optional<int> local_rank;
  std::optional<int> local_size;
  // The variables the rank and the size came from, for messages: "RANK" and "WORLD_SIZE", or
  // "SLURM_PROCID" and "SLURM_NTASKS".
  std::string rank_variable = "RANK";
  std::string size_variable = "WORLD_SIZE";
};

// The type URL of the payload that marks an error found in this process's own launch
// environment (RANK, WORLD_SIZE, LOCAL_*, SLURM_*, NMESH_JOB_ID): the ranks of one job may have
// been started with different values, so each rank reports its own, and a caller tells such an
// error from one of the store (the same for every rank) without reading the message.
inline constexpr std::string_view kEnvironmentPayloadUrl = "nmesh.environment";
// `status` marked as an error of the environment (an OK status stays OK).
absl::Status MarkEnvironmentError(absl::Status status);
// Whether `status` is so marked.
bool IsEnvironmentError(const absl::Status& status);

// The largest world a store launch accepts (WORLD_SIZE, SLURM_NTASKS).
inline constexpr int kMaxLaunchWorldSize = 1 << 20;

// The launch environment of torchrun and Kubernetes (RANK, WORLD_SIZE, optional LOCAL_RANK and
// LOCAL_WORLD_SIZE) when RANK or WORLD_SIZE is set; otherwise srun's (SLURM_PROCID,
// SLURM_NTASKS, optional SLURM_LOCALID). The environment is untrusted: each value must be a
// decimal integer without sign or spaces, 0 <= rank < size <= kMaxLaunchWorldSize, and
// 0 <= local rank < local size <= size. InvalidArgument naming the variable and its value
// otherwise, or naming both sets of variables when neither is set, marked as an error of the
// environment (IsEnvironmentError). Thread-safe.
absl::StatusOr<LaunchEnvironment> ReadLaunchEnvironment(
    const EnvironmentReader& environment = ProcessEnvironment);

// Where the job's store is: `flag` (--store) when given, else NMESH_STORE when set and not empty,
// else nullopt (no store: the job starts over MPI). Thread-safe.
std::optional<std::string> StoreUrlFrom(const std::optional<std::string>& flag,
                                        const EnvironmentReader& environment = ProcessEnvironment);

}  // namespace nmesh::job

#endif  // NMESH_JOB_ENVIRONMENT_H_
