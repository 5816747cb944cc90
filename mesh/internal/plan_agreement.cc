#include "nmesh/mesh/internal/plan_agreement.h"

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/fingerprint.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/config/strategy.h"

namespace nmesh::mesh::internal {
namespace {

std::string TimeoutText(const std::optional<absl::Duration>& timeout) {
  return timeout.has_value() ? absl::FormatDuration(*timeout) : "none";
}

// What a rank believes the mesh is, in words, for the disagreement message.
std::string DescribePlan(const MeshPlan& plan, const DeviceMeshOptions& options) {
  const Layout& layout = plan.device_mesh();
  std::string text =
      absl::StrFormat("%s %s %s of world %d", options.name, config::StrategyName(plan.strategy()),
                      layout.DebugString(), plan.world_size());
  if (plan.has_explicit_ranks()) {
    constexpr int64_t kShown = 8;
    std::vector<int64_t> shown;
    for (int64_t i = 0; i < std::min(layout.size(), kShown); ++i) {
      shown.push_back(layout.RankAtPosition(i));
    }
    absl::StrAppend(&text, " on ranks [", absl::StrJoin(shown, ", "),
                    layout.size() > kShown ? ", ...]" : "]");
  }
  if (plan.moe_mesh().has_value()) {
    absl::StrAppend(&text, absl::StrFormat(", moe (ep_shard=%d, ep=%d)", plan.moe_mesh()->ep_shard,
                                           plan.moe_mesh()->ep));
  }
  absl::StrAppend(&text, ", timeout ", TimeoutText(options.timeout));
  if (options.isolate) absl::StrAppend(&text, ", isolated");
  if (options.comm_sharing == config::CommSharing::kName) {
    absl::StrAppend(&text, ", one communicator per name");
  }
  if (options.check_arguments) absl::StrAppend(&text, ", argument checks");
  if (const std::string nccl = comm::NcclSettingsMapText(options.nccl); !nccl.empty()) {
    absl::StrAppend(&text, ", nccl ", nccl);
  }
  return text;
}

// Everything the splits depend on: two ranks with equal fingerprints make the same splits.
uint64_t FingerprintOf(const MeshPlan& plan, const DeviceMeshOptions& options,
                       const comm::Communicator& world) {
  Fingerprint f;
  f.Add(options.name);
  f.Add(config::StrategyName(plan.strategy()));
  f.Add(plan.world_size());
  const Layout& layout = plan.device_mesh();
  for (int axis = 0; axis < layout.ndim(); ++axis) {
    f.Add(layout.axis_names()[axis]);
    f.Add(layout.shape()[axis]);
  }
  for (const FlattenedGroup& group : plan.flattened()) {
    f.Add(group.name);
    f.Add(static_cast<int64_t>(group.axes.bits()));
  }
  f.Add(plan.has_explicit_ranks() ? 1 : 0);
  if (plan.has_explicit_ranks()) {
    for (int64_t i = 0; i < layout.size(); ++i) f.Add(layout.RankAtPosition(i));
  }
  if (plan.moe_mesh().has_value()) {
    f.Add(plan.moe_mesh()->ep_shard);
    f.Add(plan.moe_mesh()->ep);
    f.Add(plan.moe_mesh()->stages);
  }
  // The timeouts and isolation decide whether the world communicator is reused, hence the number
  // of splits.
  for (const std::optional<absl::Duration>& timeout : {options.timeout, world.options().timeout}) {
    f.Add(timeout.has_value() ? absl::ToInt64Nanoseconds(*timeout) : -1);
  }
  f.Add(options.isolate ? 1 : 0);
  // The NCCL settings decide each split's config, and whether a whole-world group is split.
  f.Add(comm::NcclSettingsMapText(options.nccl));
  // The sharing decides the splits; argument checks add an exchange to every collective; the
  // names only change messages, but are cheap to agree on.
  f.Add(static_cast<int64_t>(options.comm_sharing));
  f.Add(options.check_arguments ? 1 : 0);
  f.Add(options.qualify_names ? 1 : 0);
  return f.value();
}

// The buffer and handle of an agreement that timed out: the backend may still write the buffer
// when the missing rank arrives, so they are never freed. Held in a process-wide list (until the
// process exits) rather than dropped, so that they stay reachable and leak checkers do not report
// them. Thread-safe.
void KeepUntilExit(comm::Buffer buffer, comm::Work work) {
  struct Pending {
    comm::Buffer buffer;
    comm::Work work;
  };
  static std::mutex mu;
  static auto* kept = new std::vector<Pending>();  // NOLINT: never destroyed (see above)
  std::lock_guard<std::mutex> lock(mu);
  kept->push_back(Pending{std::move(buffer), std::move(work)});
}

// An all-reduce of two uint64 values on host memory over `world`, issued asynchronously and
// waited for at most `timeout` (forever without one), whatever the world's own timeout: so that
// every rank makes the same backend call whatever its options, and a missing rank cannot hold the
// others beyond the mesh's timeout. On a timeout the operation stays pending: its buffer and
// handle are kept until the process exits (the backend may still use them).
absl::Status BoundedMinReduce(comm::Communicator& world, uint64_t values[2],
                              std::optional<absl::Duration> timeout) {
  const size_t bytes = 2 * sizeof(uint64_t);
  NMESH_ASSIGN_OR_RETURN(comm::Buffer buffer, world.AllocateBuffer(bytes));
  NMESH_RETURN_IF_ERROR(world.CopyFromHost(buffer.data(), values, bytes));
  NMESH_ASSIGN_OR_RETURN(comm::Work work,
                         world.AllReduceAsync(buffer.data(), buffer.data(), 2,
                                              comm::DataType::kUint64, comm::ReduceOp::kMin));
  absl::Status waited = work.Wait(timeout.value_or(absl::InfiniteDuration()));
  if (waited.code() == absl::StatusCode::kDeadlineExceeded) {
    KeepUntilExit(std::move(buffer), std::move(work));
    return absl::DeadlineExceededError(
        absl::StrFormat("not every rank of the world arrived within %s (rank %d of %d waited)",
                        absl::FormatDuration(*timeout), world.rank(), world.size()));
  }
  NMESH_RETURN_IF_ERROR(waited);
  return world.CopyToHost(values, buffer.data(), bytes);
}

}  // namespace

// Fails on every rank, together, when the ranks' fingerprints differ.
absl::Status AgreeOnPlan(const MeshPlan& plan, const DeviceMeshOptions& options,
                         comm::Communicator& world) {
  const uint64_t mine = FingerprintOf(plan, options, world);
  // min over {h, ~h} gives min(h) and ~max(h) in one all-reduce.
  uint64_t reduced[2] = {mine, ~mine};
  // An unusable timeout is reported after the agreement, by every rank alike; until then, no bound.
  const bool usable = CheckTimeout(options.timeout, "").ok();
  absl::Status status = BoundedMinReduce(world, reduced, usable ? options.timeout : std::nullopt);
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrFormat("checking that ranks agree on mesh '%s': %s",
                                                       options.name, status.message()));
  }
  if (reduced[0] == ~reduced[1]) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "ranks disagree on the mesh: rank %d of %d has %s, and another rank has a different mesh "
      "(every rank must build the same meshes, in the same order)",
      world.rank(), world.size(), DescribePlan(plan, options)));
}

}  // namespace nmesh::mesh::internal
