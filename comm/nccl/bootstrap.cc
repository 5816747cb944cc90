#include "nmesh/comm/nccl/bootstrap.h"

#include <cstdint>

#include "absl/strings/str_format.h"

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

}  // namespace nmesh::comm::nccl
