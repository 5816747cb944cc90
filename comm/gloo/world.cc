// Where gloo communicators start: WorldCommunicator (a TCP device to listen on, gloo's rendezvous
// through a store, the world watched through the same store), and the public native.h's
// NativeContext and AdoptContext (an engine's connected gloo context wrapped).
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gloo/context.h"
#include "gloo/rendezvous/context.h"
#include "gloo/transport/tcp/device.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/gloo/communicator.h"
#include "nmesh/comm/gloo/gloo_communicator.h"
#include "nmesh/comm/gloo/loop_ticker.h"
#include "nmesh/comm/gloo/native.h"
#include "nmesh/comm/gloo/store_adapter.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/watch/store_side_channel.h"

namespace nmesh::comm::gloo {
namespace {

namespace ci = ::nmesh::comm::internal;

// The TCP device a world listens on.
absl::StatusOr<std::shared_ptr<::gloo::transport::Device>> CreateDevice(const GlooOptions& gloo) {
  ::gloo::transport::tcp::attr attr;
  attr.hostname = gloo.hostname;
  attr.iface = gloo.interface;
  if (attr.hostname.empty() && attr.iface.empty()) {
    if (const char* env = std::getenv("GLOO_SOCKET_IFNAME"); env != nullptr && *env != '\0') {
      attr.iface = env;
    }
  }
  try {
    return ::gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrFormat("gloo: no address to listen on (hostname '%s', interface '%s'): %s",
                        attr.hostname, attr.iface, e.what()));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> WorldCommunicator(std::shared_ptr<Store> store,
                                                                int rank, int size,
                                                                CommOptions options,
                                                                GlooOptions gloo) {
  if (store == nullptr) return absl::InvalidArgumentError("gloo world: the store is null");
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "gloo world: rank %d of size %d (needs size >= 1 and 0 <= rank < size)", rank, size));
  }
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  NMESH_RETURN_IF_ERROR(CheckTimeout(gloo.rendezvous_timeout, "GlooOptions.rendezvous_timeout"));
  NMESH_ASSIGN_OR_RETURN(std::shared_ptr<::gloo::transport::Device> device, CreateDevice(gloo));
  auto context = std::make_shared<::gloo::rendezvous::Context>(rank, size);
  context->setTimeout(GlooTimeout(gloo.rendezvous_timeout));
  StoreAdapter adapter(store, gloo.prefix, absl::Now() + gloo.rendezvous_timeout);
  std::shared_ptr<LoopTicker> ticker = LoopTicker::For(device);
  try {
    FastTicks fast(ticker);
    context->connectFullMesh(adapter, device);
    ConfirmConnections(context, GlooTimeout(gloo.rendezvous_timeout));
  } catch (const std::exception& e) {
    absl::Status cause = adapter.error();
    std::string what = cause.ok() ? std::string(e.what()) : std::string(cause.message());
    if (absl::IsDeadlineExceeded(cause)) {
      // Name the ranks that never published their addresses.
      std::vector<int> missing;
      for (int r = 0; r < size && missing.size() < 16; ++r) {
        absl::StatusOr<bool> arrived = store->Check(absl::StrFormat("%s/%d", gloo.prefix, r));
        if (arrived.ok() && !*arrived) missing.push_back(r);
      }
      if (!missing.empty()) {
        what = absl::StrFormat("rank%s %s never arrived within %s (%s)",
                               missing.size() == 1 ? "" : "s", absl::StrJoin(missing, ", "),
                               ci::FormatTimeout(gloo.rendezvous_timeout), what);
      }
    }
    return absl::Status(cause.ok() ? absl::StatusCode::kUnavailable : cause.code(),
                        absl::StrFormat("gloo world rendezvous of rank %d of %d through %s: %s",
                                        rank, size, store->Describe(), what));
  }
  context->setTimeout(GlooTimeout(options.timeout));
  WatchSetup watch{
      std::make_shared<ci::StoreWatchHub>(store, gloo.prefix + "/watch"), gloo.prefix, {}};
  for (int r = 0; r < size; ++r) watch.global.push_back(r);
  return std::make_unique<GlooCommunicator>(std::move(context), std::move(options),
                                            std::move(ticker), std::move(watch));
}

absl::StatusOr<std::shared_ptr<::gloo::Context>> NativeContext(const Communicator& comm) {
  const auto* gloo_comm = dynamic_cast<const GlooCommunicator*>(&comm);
  if (gloo_comm == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("NativeContext: communicator '%s' is a %s communicator, not gloo",
                        comm.options().name, comm.backend()));
  }
  return gloo_comm->context();
}

absl::StatusOr<std::unique_ptr<Communicator>> AdoptContext(std::shared_ptr<::gloo::Context> context,
                                                           CommOptions options) {
  if (context == nullptr) return absl::InvalidArgumentError("AdoptContext: the context is null");
  if (context->getDevice() == nullptr) {
    return absl::InvalidArgumentError(
        "AdoptContext: the gloo context has no device (connect it first, e.g. connectFullMesh)");
  }
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  std::shared_ptr<LoopTicker> ticker = LoopTicker::For(context->getDevice());
  return std::make_unique<GlooCommunicator>(std::move(context), std::move(options),
                                            std::move(ticker));
}

}  // namespace nmesh::comm::gloo
