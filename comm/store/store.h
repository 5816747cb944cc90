// The key-value stores a store-launched job meets through (comm/store.h is the interface): a shared
// directory (FileStore), a Redis server (RedisStore), a prefix that lets several jobs share one
// store (PrefixStore), and OpenStore, which opens one from its URL.
//
//   NMESH_ASSIGN_OR_RETURN(std::shared_ptr<comm::Store> store,
//                          store::OpenStore("redis://10.0.0.1:6379/job1"));
//   NMESH_RETURN_IF_ERROR(store->Set("rank3/host", "node07"));
//
// URLs:
//   redis://HOST:PORT[/PREFIX]   a Redis server (HOST a name, an IPv4 address or [IPv6]); the
//                                optional PREFIX scopes every key (a PrefixStore).
//   file:///ABS/DIR              a directory every process of the job can reach (a shared
//                                filesystem across hosts), created when missing.
// A URL that cannot be parsed (another scheme, a missing or bad port, a relative path, a host in
// a file URL, credentials, control characters) is InvalidArgument naming the URL; a store that
// cannot be reached or created is Unavailable naming it.
//
// Store contents are untrusted: a value read is at most StoreOptions::max_value_bytes (larger is
// DataLoss naming the key), a counter that does not hold an integer is DataLoss, and the file store
// never follows a symbolic link inside its directory.
#ifndef NMESH_COMM_STORE_STORE_H_
#define NMESH_COMM_STORE_STORE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nmesh/comm/store.h"

namespace nmesh::comm::store {

struct StoreOptions {
  // How long connecting to a server may take (Redis), and each command's socket timeout.
  absl::Duration connect_timeout = absl::Seconds(10);
  // The largest value read back; larger is DataLoss.
  size_t max_value_bytes = size_t{64} << 20;
};

// Opens the store named by `url` (above). Connects (Redis) or creates the directory (file) now,
// so an unreachable store fails here.
absl::StatusOr<std::shared_ptr<Store>> OpenStore(std::string_view url, StoreOptions options = {});

// Every key of `base` seen through this one is "PREFIX/KEY". `prefix` must be non-empty printable
// ASCII without spaces (InvalidArgument otherwise). Describe() is base's followed by "/PREFIX".
absl::StatusOr<std::shared_ptr<Store>> WithPrefix(std::shared_ptr<Store> base,
                                                  std::string_view prefix);

}  // namespace nmesh::comm::store

#endif  // NMESH_COMM_STORE_STORE_H_
