#include "nmesh/job/environment.h"

#include <cstdlib>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_format.h"
#include "nmesh/base/abbreviate.h"

namespace nmesh::job {
namespace {

// The value of `name` as an integer in [min, max], strictly: decimal digits only. nullopt when
// unset; InvalidArgument naming the variable and its (escaped, shortened) value otherwise.
absl::StatusOr<std::optional<int>> StrictInt(const EnvironmentReader& environment, const char* name,
                                             long min, long max, std::string_view bound) {
  const char* value = environment(name);
  if (value == nullptr) return std::nullopt;
  const std::string_view text(value);
  bool digits = !text.empty() && text.size() <= 9;
  for (char c : text) digits = digits && c >= '0' && c <= '9';
  long number = digits ? std::strtol(value, nullptr, 10) : -1;
  if (!digits || number < min || number > max) {
    return absl::InvalidArgumentError(
        absl::StrFormat("environment variable %s='%s' is not %s", name, Abbreviate(text), bound));
  }
  return static_cast<int>(number);
}

// ReadLaunchEnvironment, its errors not yet marked.
absl::StatusOr<LaunchEnvironment> ReadUnmarked(const EnvironmentReader& environment);

}  // namespace

const char* ProcessEnvironment(const char* name) { return std::getenv(name); }

absl::Status MarkEnvironmentError(absl::Status status) {
  if (!status.ok()) status.SetPayload(std::string(kEnvironmentPayloadUrl), absl::Cord());
  return status;
}

bool IsEnvironmentError(const absl::Status& status) {
  return status.GetPayload(std::string(kEnvironmentPayloadUrl)).has_value();
}

absl::StatusOr<LaunchEnvironment> ReadLaunchEnvironment(const EnvironmentReader& environment) {
  absl::StatusOr<LaunchEnvironment> launch = ReadUnmarked(environment);
  if (!launch.ok()) return MarkEnvironmentError(launch.status());
  return launch;
}

namespace {

absl::StatusOr<LaunchEnvironment> ReadUnmarked(const EnvironmentReader& environment) {
  LaunchEnvironment launch;
  const bool torchrun = environment("RANK") != nullptr || environment("WORLD_SIZE") != nullptr;
  if (!torchrun && environment("SLURM_PROCID") == nullptr) {
    return absl::InvalidArgumentError(
        "a store launch takes its rank from the environment, but neither RANK and WORLD_SIZE "
        "(torchrun, Kubernetes) nor SLURM_PROCID and SLURM_NTASKS (srun) are set");
  }
  launch.rank_variable = torchrun ? "RANK" : "SLURM_PROCID";
  launch.size_variable = torchrun ? "WORLD_SIZE" : "SLURM_NTASKS";
  const std::string size_bound = absl::StrFormat("an integer from 1 to %d", kMaxLaunchWorldSize);
  absl::StatusOr<std::optional<int>> size =
      StrictInt(environment, launch.size_variable.c_str(), 1, kMaxLaunchWorldSize, size_bound);
  if (!size.ok()) return size.status();
  if (!size->has_value()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("environment variable %s is not set (%s is): a store launch needs both",
                        launch.size_variable, launch.rank_variable));
  }
  launch.size = **size;
  absl::StatusOr<std::optional<int>> rank =
      StrictInt(environment, launch.rank_variable.c_str(), 0, launch.size - 1,
                absl::StrFormat("an integer from 0 to %d (%s=%d)", launch.size - 1,
                                launch.size_variable, launch.size));
  if (!rank.ok()) return rank.status();
  if (!rank->has_value()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("environment variable %s is not set (%s is): a store launch needs both",
                        launch.rank_variable, launch.size_variable));
  }
  launch.rank = **rank;
  if (torchrun) {
    absl::StatusOr<std::optional<int>> local_size = StrictInt(
        environment, "LOCAL_WORLD_SIZE", 1, launch.size,
        absl::StrFormat("an integer from 1 to %d (WORLD_SIZE=%d)", launch.size, launch.size));
    if (!local_size.ok()) return local_size.status();
    launch.local_size = *local_size;
    const int local_max = launch.local_size.value_or(launch.size) - 1;
    absl::StatusOr<std::optional<int>> local_rank = StrictInt(
        environment, "LOCAL_RANK", 0, local_max,
        absl::StrFormat("an integer from 0 to %d (%s=%d)", local_max,
                        launch.local_size ? "LOCAL_WORLD_SIZE" : "WORLD_SIZE", local_max + 1));
    if (!local_rank.ok()) return local_rank.status();
    launch.local_rank = *local_rank;
  } else {
    absl::StatusOr<std::optional<int>> local_rank = StrictInt(
        environment, "SLURM_LOCALID", 0, launch.size - 1,
        absl::StrFormat("an integer from 0 to %d (SLURM_NTASKS=%d)", launch.size - 1, launch.size));
    if (!local_rank.ok()) return local_rank.status();
    launch.local_rank = *local_rank;
  }
  return launch;
}

}  // namespace

std::optional<std::string> StoreUrlFrom(const std::optional<std::string>& flag,
                                        const EnvironmentReader& environment) {
  if (flag.has_value()) return flag;
  const char* url = environment("NMESH_STORE");
  if (url == nullptr || *url == '\0') return std::nullopt;
  return std::string(url);
}

}  // namespace nmesh::job
