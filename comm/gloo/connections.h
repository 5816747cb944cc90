// Ending a gloo context's connections from any thread (internal to comm/gloo): each connected TCP
// socket of the context is shut down (shutdown(2), both ways). gloo's own event loop then sees the
// connection end and fails every transfer in flight on it, here (with gloo::IoException, so a
// blocked gloo call returns) and on the peer (which reads the end of the stream). gloo's TCP pair
// has no public call that does this; the sockets are found by the local address each connected
// pair reports (gloo sets it from getsockname once connected).
#ifndef NMESH_COMM_GLOO_CONNECTIONS_H_
#define NMESH_COMM_GLOO_CONNECTIONS_H_

#include "gloo/context.h"

namespace nmesh::comm::gloo {

// Shuts down every connected socket of `context`'s pairs. Idempotent; thread-safe.
void ShutdownConnections(::gloo::Context& context);

}  // namespace nmesh::comm::gloo

#endif  // NMESH_COMM_GLOO_CONNECTIONS_H_
