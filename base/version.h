// Version and build information of the nmesh library.
//
//   std::cout << nmesh::VersionString();   // "0.1.0"
//   if (nmesh::HaveNccl()) std::cout << " with NCCL";
#ifndef NMESH_BASE_VERSION_H_
#define NMESH_BASE_VERSION_H_

#include <string>

namespace nmesh {

// The library's version as "MAJOR.MINOR.PATCH". Thread-safe.
std::string VersionString();

// True when the NCCL backend was compiled into this build. Thread-safe.
bool HaveNccl();

}  // namespace nmesh

#endif  // NMESH_BASE_VERSION_H_
