// gloo's rendezvous store over an nmesh store (comm/store.h), for gloo's connectFullMesh (internal
// to comm/gloo). Every key is put under `prefix`; every wait ends at the adapter's deadline. gloo
// reports failures by exception: the adapter throws gloo::IoException and keeps the nmesh status
// (DeadlineExceeded naming the store and the missing keys, Unavailable naming the store) for the
// caller to return instead of the exception's text.
#ifndef NMESH_COMM_GLOO_STORE_ADAPTER_H_
#define NMESH_COMM_GLOO_STORE_ADAPTER_H_

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gloo/rendezvous/store.h"
#include "nmesh/comm/store.h"

namespace nmesh::comm::gloo {

class StoreAdapter final : public ::gloo::rendezvous::Store {
 public:
  StoreAdapter(std::shared_ptr<comm::Store> store, std::string prefix, absl::Time deadline)
      : store_(std::move(store)), prefix_(std::move(prefix)), deadline_(deadline) {}

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) override;

  // The first failure (OK when none).
  absl::Status error() const;

 private:
  std::string Key(const std::string& key) const { return prefix_ + "/" + key; }
  // Records `status` (the first one wins) and throws it as a gloo::IoException.
  [[noreturn]] void Fail(absl::Status status);

  std::shared_ptr<comm::Store> store_;
  std::string prefix_;
  absl::Time deadline_;
  mutable std::mutex mu_;
  absl::Status error_;  // guarded by mu_
};

}  // namespace nmesh::comm::gloo

#endif  // NMESH_COMM_GLOO_STORE_ADAPTER_H_
