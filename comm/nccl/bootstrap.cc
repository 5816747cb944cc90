#include "nmesh/comm/nccl/bootstrap.h"

#include <algorithm>
#include <cstdint>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/store_exchange.h"

namespace nmesh::comm::nccl {

BootstrapPlan PlanBootstrap(int size, const BootstrapOptions& options, int nccl_version) {
  BootstrapPlan plan;
  const int k = options.ranks_per_root;
  if (nccl_version < kScalableInitVersion) {
    plan.roots = {0};
    plan.reason =
        absl::StrFormat("1 root (NCCL %d.%d.%d predates ncclCommInitRankScalable)",
                        nccl_version / 10000, nccl_version / 100 % 100, nccl_version % 100);
    return plan;
  }
  if (k < 1 || size <= k) {
    plan.roots = {0};
    plan.reason = k < 1 ? "1 root (ranks per root not set)"
                        : absl::StrFormat("1 root (%d ranks <= %d per root)", size, k);
    return plan;
  }
  for (int64_t root = 0; root < size; root += k) plan.roots.push_back(static_cast<int>(root));
  plan.scalable = true;
  plan.reason = absl::StrFormat("%d roots, one per %d ranks", plan.roots.size(), k);
  return plan;
}

absl::StatusOr<std::vector<std::string>> ShareUniqueIds(Store& store, std::string_view name,
                                                        const BootstrapPlan& plan, int rank,
                                                        std::string_view my_id, size_t id_bytes,
                                                        absl::Time deadline) {
  const absl::Time start = absl::Now();
  const std::string prefix = absl::StrCat(std::string(name), "/id");
  const auto root = std::find(plan.roots.begin(), plan.roots.end(), rank);
  if (root != plan.roots.end()) {
    if (my_id.size() != id_bytes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "ShareUniqueIds: rank %d's id has %d bytes, not %d", rank, my_id.size(), id_bytes));
    }
    NMESH_RETURN_IF_ERROR(store.Set(absl::StrCat(prefix, "/", root - plan.roots.begin()), my_id));
  }
  NMESH_ASSIGN_OR_RETURN(
      std::vector<std::optional<std::string>> ids,
      StoreCollect(store, prefix, static_cast<int>(plan.roots.size()), deadline));
  std::vector<std::string> missing;
  std::vector<std::string> all;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!ids[i].has_value()) {
      missing.push_back(absl::StrFormat("%d (rank %d)", i, plan.roots[i]));
      continue;
    }
    if (ids[i]->size() != id_bytes) {
      return absl::DataLossError(absl::StrFormat(
          "%s: root %d (rank %d) published an id of %d bytes at the store %s, not %d", name, i,
          plan.roots[i], ids[i]->size(), store.Describe(), id_bytes));
    }
    all.push_back(*std::move(ids[i]));
  }
  if (!missing.empty()) {
    return absl::DeadlineExceededError(absl::StrFormat(
        "%s: NCCL bootstrap %s %s did not publish a unique id at the store %s within %s", name,
        missing.size() == 1 ? "root" : "roots", absl::StrJoin(missing, ", "), store.Describe(),
        absl::FormatDuration(absl::Ceil(deadline - start, absl::Milliseconds(100)))));
  }
  return all;
}

}  // namespace nmesh::comm::nccl
