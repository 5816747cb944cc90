// The MPI session of a test binary linked with the MPI GoogleTest main (nmesh::mpi_gtest_main).
//
//   auto world = nmesh::comm::mpi::WorldCommunicator(nmesh::comm::mpi::testing::TheSession());
//
// The test main has initialised MPI already, so this session neither initialises nor finalises
// it; it lives until the process exits. Aborts the test binary if MPI cannot be reached.
#ifndef NMESH_COMM_MPI_TESTING_SESSION_H_
#define NMESH_COMM_MPI_TESTING_SESSION_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "nmesh/comm/mpi/session.h"

namespace nmesh::comm::mpi::testing {

inline Session& TheSession() {
  static Session* session = [] {
    auto s = Session::Init(nullptr, nullptr);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", std::string(s.status().message()).c_str());
      std::abort();
    }
    return s->release();
  }();
  return *session;
}

}  // namespace nmesh::comm::mpi::testing

#endif  // NMESH_COMM_MPI_TESTING_SESSION_H_
