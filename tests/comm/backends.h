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
// world with a timeout, watched by the watchdog), "self" (a one-rank communicator on every rank),
// where the build has gloo, "gloo" (a gloo world that meets through a directory store under a fresh
// prefix, with rank and size from the launcher's environment; MPI only agrees on the directory
// once, and carries none of gloo's traffic) and, where the build has NCCL, "nccl" (an NCCL world
// bootstrapped over MPI; it reports a skip, "no CUDA device ...", without a GPU). Each call makes
// a fresh communicator spanning every rank the backend spans.
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
#if NMESH_TEST_GLOO
#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/gloo/communicator.h"
#include "nmesh/comm/store/store.h"
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

#if NMESH_TEST_GLOO
// This process's rank and world size as the launcher's environment gives them (Open MPI, then
// MPICH/PMI); 0 of 1 without a launcher.
inline int LauncherEnv(const char* ompi, const char* pmi, int fallback) {
  for (const char* name : {ompi, pmi}) {
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0') {
      return std::atoi(value);
    }
  }
  return fallback;
}

// A directory every rank of the test shares for gloo's store: made by rank 0 once, its name
// broadcast over MPI, removed by rank 0 at exit.
inline const std::string& GlooStoreDirectory() {
  static const std::string* path = [] {
    auto world =
        mpi::WorldCommunicator(::nmesh::comm::mpi::testing::TheSession(), {.name = "gloo_setup"});
    NMESH_CHECK(world.ok());
    std::vector<uint8_t> name(512, 0);
    if ((*world)->rank() == 0) {
      std::string made = (std::filesystem::temp_directory_path() / "nmesh_gloo_XXXXXX").string();
      NMESH_CHECK(mkdtemp(made.data()) != nullptr);
      std::copy(made.begin(), made.end(), name.begin());
    }
    NMESH_CHECK((*world)->Broadcast<uint8_t>(absl::MakeSpan(name), 0).ok());
    auto* p = new std::string(reinterpret_cast<const char*>(name.data()));
    if ((*world)->rank() == 0) {
      std::atexit([] {
        std::error_code ignored;
        std::filesystem::remove_all(GlooStoreDirectory(), ignored);
      });
    }
    return p;
  }();
  return *path;
}
#endif

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
#if NMESH_TEST_GLOO
  backends.push_back(
      {"gloo",
       [](const std::string& name, std::string*) -> absl::StatusOr<std::unique_ptr<Communicator>> {
         // Every rank makes its worlds in the same order: the n-th one meets under "world<n>".
         static int worlds = 0;
         auto root = store::OpenStore("file://" + GlooStoreDirectory());
         if (!root.ok()) return root.status();
         auto store = store::WithPrefix(*root, absl::StrCat("world", worlds++));
         if (!store.ok()) return store.status();
         return gloo::WorldCommunicator(
             *store, LauncherEnv("OMPI_COMM_WORLD_RANK", "PMI_RANK", 0),
             LauncherEnv("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", 1), {.name = name},
             {.hostname = "127.0.0.1", .rendezvous_timeout = absl::Seconds(120)});
       }});
#endif
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

// Backends() and "mpi_interruptible": the MPI world with a timeout and CommOptions::interruptible,
// whose operations run polled on a staging copy of their buffers (comm/mpi/interruptible.cc,
// RunInterruptible), a data path of its own. For the conformance suite.
inline std::vector<Backend> BackendsWithInterruptible() {
  std::vector<Backend> backends = Backends();
  backends.push_back({"mpi_interruptible", [](const std::string& name, std::string*) {
                        return mpi::WorldCommunicator(
                            ::nmesh::comm::mpi::testing::TheSession(),
                            {.name = name, .timeout = absl::Seconds(120), .interruptible = true});
                      }});
  return backends;
}

inline void PrintTo(const Backend& backend, std::ostream* os) { *os << backend.name; }

// The test-name suffix of a backend, for INSTANTIATE_TEST_SUITE_P.
inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param.name;
}

}  // namespace nmesh::comm::testing

#endif  // NMESH_TESTS_COMM_BACKENDS_H_
