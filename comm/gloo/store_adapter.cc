#include "nmesh/comm/gloo/store_adapter.h"

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gloo/common/error.h"

namespace nmesh::comm::gloo {

void StoreAdapter::Fail(absl::Status status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.ok()) error_ = status;
  }
  throw ::gloo::IoException(std::string(status.message()));
}

absl::Status StoreAdapter::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void StoreAdapter::set(const std::string& key, const std::vector<char>& data) {
  absl::Status status = store_->Set(Key(key), std::string_view(data.data(), data.size()));
  if (!status.ok()) Fail(std::move(status));
}

std::vector<char> StoreAdapter::get(const std::string& key) {
  absl::StatusOr<std::string> value = store_->Get(Key(key), deadline_);
  if (!value.ok()) Fail(value.status());
  return std::vector<char>(value->begin(), value->end());
}

void StoreAdapter::wait(const std::vector<std::string>& keys) {
  std::vector<std::string> full;
  full.reserve(keys.size());
  for (const std::string& key : keys) full.push_back(Key(key));
  absl::Status status = store_->Wait(full, deadline_);
  if (!status.ok()) Fail(std::move(status));
}

void StoreAdapter::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) {
  wait(keys);
}

}  // namespace nmesh::comm::gloo
