// A key-value store that the processes of one job share to meet when no MPI launcher connects them
// (torchrun, Kubernetes, Slurm without PMI): the start-up agreement, host names, the NCCL unique
// ids and the gloo backend's addresses all pass through one. Implementations (Redis, a shared
// directory) live outside the core; this is the interface the core, the backends and the job
// layer use.
//
//   NMESH_RETURN_IF_ERROR(store.Set("rank3/host", "node07"));
//   NMESH_ASSIGN_OR_RETURN(std::string host, store.Get("rank0/host", absl::Now() + timeout));
//
// Keys are short printable strings chosen by nmesh; values are bytes. A key, once set, keeps its
// value until the store (or its prefix) is cleared: every rendezvous writes each key once. Every
// wait is bounded by a deadline, and a deadline that passes is DeadlineExceeded naming the store
// and the keys still missing. A store that cannot be reached is Unavailable naming it. Methods are
// thread-safe.
#ifndef NMESH_COMM_STORE_H_
#define NMESH_COMM_STORE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace nmesh::comm {

class Store {
 public:
  virtual ~Store() = default;

  // Sets `key` to `value`, visible to every process of the job once this returns.
  virtual absl::Status Set(std::string_view key, std::string_view value) = 0;
  // The value of `key`, waiting until some process sets it or `deadline` passes.
  virtual absl::StatusOr<std::string> Get(std::string_view key, absl::Time deadline) = 0;
  // Waits until every key in `keys` is set, or `deadline` passes.
  virtual absl::Status Wait(absl::Span<const std::string> keys, absl::Time deadline) = 0;
  // Adds `delta` to the integer counter `key` (0 when unset) atomically across processes and
  // returns the new value.
  virtual absl::StatusOr<int64_t> Add(std::string_view key, int64_t delta) = 0;
  // Whether `key` is set now; never waits.
  virtual absl::StatusOr<bool> Check(std::string_view key) = 0;
  // How the store is named in messages (its URL, with no credentials), e.g.
  // "redis://127.0.0.1:6379/job1".
  virtual std::string Describe() const = 0;
};

}  // namespace nmesh::comm

#endif  // NMESH_COMM_STORE_H_
