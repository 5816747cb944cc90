#include "nmesh/comm/gloo/connections.h"

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <vector>

#include "gloo/context.h"
#include "gloo/transport/pair.h"
#include "gloo/transport/tcp/address.h"

namespace nmesh::comm::gloo {
namespace {

bool SameEndpoint(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port &&
           std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(x.sin6_addr)) == 0;
  }
  return false;
}

}  // namespace

void ShutdownConnections(::gloo::Context& context) {
  std::vector<sockaddr_storage> locals;
  for (int i = 0; i < context.size; ++i) {
    if (i == context.rank) continue;
    try {
      std::unique_ptr<::gloo::transport::Pair>& pair = context.getPair(i);
      if (pair == nullptr) continue;
      const ::gloo::transport::tcp::Address address(pair->address().bytes());
      sockaddr_storage ss = address.getSockaddr();
      const in_port_t port = ss.ss_family == AF_INET
                                 ? reinterpret_cast<sockaddr_in&>(ss).sin_port
                                 : reinterpret_cast<sockaddr_in6&>(ss).sin6_port;
      if (port != 0) locals.push_back(ss);
    } catch (const std::exception&) {
      // Not a TCP pair, or none for this rank: nothing to shut down.
    }
  }
  if (locals.empty()) return;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == own) continue;
    struct stat st;
    if (::fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (::getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &len) != 0) {
      continue;
    }
    sockaddr_storage peer{};
    len = sizeof(peer);
    // Connected sockets only: a pair's listening socket has the same local address.
    if (::getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
      continue;
    }
    for (const sockaddr_storage& want : locals) {
      if (SameEndpoint(local, want)) {
        ::shutdown(static_cast<int>(fd), SHUT_RDWR);
        break;
      }
    }
  }
  ::closedir(dir);
}

}  // namespace nmesh::comm::gloo
