// The backend factories every parameterised communicator test runs over (gloo-style): the
// conformance suite (tests/comm/conformance_test.cc) and the DeviceMesh/MeshContext tests
// (tests/mesh). Link the test through nmesh::test_backends (tests/comm/CMakeLists.txt), which
// brings the backends the build has.
//
//   class MyTest : public ::testing::TestWithParam<nmesh::comm::testing::Backend> {...};
//   INSTANTIATE_TEST_SUITE_P(Backends, MyTest,
//                            ::testing::ValuesIn(nmesh::comm::testing::Backends()),
//                            nmesh::comm::testing::BackendName);
//
// Factories: "mpi" (the MPI world, blocking, explicitly without a timeout), "mpi_timed" (the MPI
// world with a timeout, watched by the watchdog), "self" (a one-rank communicator on every rank)
// and, where the build has NCCL, "nccl" (an NCCL world bootstrapped over MPI; it reports a skip,
// "no CUDA device
// ...", without a GPU). Each call makes a fresh communicator spanning every rank the backend
// spans.
#ifndef NMESH_TESTS_COMM_BACKENDS_H_
#define NMESH_TESTS_COMM_BACKENDS_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/testing/session.h"
#include "nmesh/comm/self.h"
#if NMESH_TEST_NCCL
#include "nmesh/comm/nccl/communicator.h"
#endif

namespace nmesh::comm::testing {

// A backend under test: makes a communicator over every rank it spans, named `comm_name`.
// Returns nullptr with the reason in *skip when the backend cannot run here.
struct Backend {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<Communicator>>(const std::string& comm_name,
                                                              std::string* skip)>
      make;
};

inline std::vector<Backend> Backends() {
  using ::nmesh::comm::mpi::testing::TheSession;
  std::vector<Backend> backends;
  backends.push_back({"mpi", [](const std::string& name, std::string*) {
                        return mpi::WorldCommunicator(TheSession(),
                                                      {.name = name, .timeout = std::nullopt});
                      }});
  backends.push_back({"mpi_timed", [](const std::string& name, std::string*) {
                        return mpi::WorldCommunicator(
                            TheSession(), {.name = name, .timeout = absl::Seconds(120)});
                      }});
  backends.push_back({"self", [](const std::string& name, std::string*) {
                        return absl::StatusOr<std::unique_ptr<Communicator>>(
                            NewSelfCommunicator({.name = name}));
                      }});
#if NMESH_TEST_NCCL
  backends.push_back(
      {"nccl",
       [](const std::string& name,
          std::string* skip) -> absl::StatusOr<std::unique_ptr<Communicator>> {
         auto bootstrap = mpi::WorldCommunicator(TheSession(), {.name = "bootstrap"});
         if (!bootstrap.ok()) return bootstrap.status();
         auto world = nccl::CreateWorld(**bootstrap,
                                        {.comm = {.name = name, .timeout = absl::Seconds(120)}});
         if (!world.ok() && world.status().code() == absl::StatusCode::kFailedPrecondition) {
           *skip = absl::StrFormat("no CUDA device (or too few for the ranks): %s",
                                   world.status().message());
           return std::unique_ptr<Communicator>();
         }
         return world;
       }});
#endif
  return backends;
}

inline void PrintTo(const Backend& backend, std::ostream* os) { *os << backend.name; }

// The test-name suffix of a backend, for INSTANTIATE_TEST_SUITE_P.
inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param.name;
}

}  // namespace nmesh::comm::testing

#endif  // NMESH_TESTS_COMM_BACKENDS_H_
