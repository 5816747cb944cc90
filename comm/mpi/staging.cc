#include "nmesh/comm/mpi/staging.h"

#include <memory>
#include <utility>
#include <vector>

namespace nmesh::comm::mpi {

Scratch StagingPool::Take(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (kept_ != nullptr && kept_->size() >= bytes) return std::move(kept_);
  }
  return std::make_shared<std::vector<std::byte>>(bytes);
}

void StagingPool::Give(Scratch area) {
  if (area == nullptr || area.use_count() != 1 || area->size() > kMaxKept) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (kept_ == nullptr || kept_->size() < area->size()) kept_ = std::move(area);
}

}  // namespace nmesh::comm::mpi
