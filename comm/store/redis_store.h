// A store on a Redis server (hiredis): SET, EXISTS, GETRANGE (values read are bounded),
// INCRBY. Values are binary-safe (commands are sent as argument vectors, never formatted). One
// connection, guarded by a mutex; a connection that fails is reopened by the next call. Get and
// Wait poll with a growing pause (1 ms up to 20 ms) until the deadline. Thread-safe.
#ifndef NMESH_COMM_STORE_REDIS_STORE_H_
#define NMESH_COMM_STORE_REDIS_STORE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/comm/store.h"
#include "nmesh/comm/store/store.h"

struct redisContext;

namespace nmesh::comm::store {

class RedisStore final : public Store {
 public:
  // Connects to HOST:PORT within options.connect_timeout; Unavailable naming
  // "redis://HOST:PORT" when that fails.
  static absl::StatusOr<std::unique_ptr<RedisStore>> Connect(std::string host, int port,
                                                             StoreOptions options = {});
  ~RedisStore() override;

  absl::Status Set(std::string_view key, std::string_view value) override;
  absl::StatusOr<std::string> Get(std::string_view key, absl::Time deadline) override;
  absl::Status Wait(absl::Span<const std::string> keys, absl::Time deadline) override;
  absl::StatusOr<int64_t> Add(std::string_view key, int64_t delta) override;
  absl::StatusOr<bool> Check(std::string_view key) override;
  // "redis://HOST:PORT".
  std::string Describe() const override;

 private:
  RedisStore(std::string host, int port, StoreOptions options);
  absl::Status ConnectLocked();
  // The value of `key` if set (nullopt-like: NotFound when not), in one round trip.
  absl::StatusOr<std::string> TryGetLocked(std::string_view key);
  absl::StatusOr<bool> ExistsLocked(std::string_view key);

  std::string host_;
  int port_;
  StoreOptions options_;
  std::mutex mu_;
  redisContext* context_ = nullptr;  // guarded by mu_; null when disconnected
};

}  // namespace nmesh::comm::store

#endif  // NMESH_COMM_STORE_REDIS_STORE_H_
