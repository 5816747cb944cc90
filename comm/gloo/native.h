// The gloo context behind nmesh's gloo communicators, and gloo contexts an engine already has
// wrapped as nmesh Communicators. Public (installed); the only public header of comm/gloo that
// includes gloo, so a consumer that does not include it needs no gloo headers.
//
//   NMESH_ASSIGN_OR_RETURN(std::shared_ptr<::gloo::Context> raw, gloo::NativeContext(*tp));
//   const int peers = raw->size - 1;  // gloo's own calls (gloo::allreduce, ...) work on it too
//
//   // An engine's connected context, used through nmesh:
//   NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> dp,
//                          gloo::AdoptContext(engine_context, {.name = "dp"}));
#ifndef NMESH_COMM_GLOO_NATIVE_H_
#define NMESH_COMM_GLOO_NATIVE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "gloo/context.h"
#include "nmesh/comm/communicator.h"

namespace nmesh::comm::gloo {

// The gloo context `comm` runs its operations on (shared: it stays valid while the caller holds
// it). InvalidArgument when `comm` comes from another backend. Not collective; thread-safe. The
// caller must not run its own operations on it while nmesh's are in flight.
absl::StatusOr<std::shared_ptr<::gloo::Context>> NativeContext(const Communicator& comm);

// Wraps a connected gloo context (every pair connected, e.g. by gloo::rendezvous::Context::
// connectFullMesh over the TCP transport) as an nmesh Communicator: backend "gloo", host memory,
// every behaviour of comm/gloo/communicator.h; nmesh's operations wait at most options.timeout
// (30 days without one), whatever the context's own timeout. Not collective. A null context
// or one without a device is InvalidArgument. Split needs gloo's TCP transport (Unimplemented on
// another). The engine must not run operations of its own on the context while nmesh uses it.
absl::StatusOr<std::unique_ptr<Communicator>> AdoptContext(std::shared_ptr<::gloo::Context> context,
                                                           CommOptions options);

}  // namespace nmesh::comm::gloo

#endif  // NMESH_COMM_GLOO_NATIVE_H_
