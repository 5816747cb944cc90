// Revoking and shrinking NCCL communicators (comm/nccl/recovery.h) over a scripted NCCL and CUDA
// runtime (SetLibraryForTesting): every call is recorded, so the tests check which NCCL calls a
// recovery makes, in which order, with which flags, and how errors come back. No GPU: the
// communicators are adopted handles of the script (nccl::AdoptComm).
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/nccl/library.h"
#include "nmesh/comm/nccl/native.h"
#include "nmesh/comm/nccl/recovery.h"
#include "nmesh/comm/nccl/runtime.h"

namespace nmesh::comm::nccl {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// One scripted NCCL communicator; its address is the ncclComm_t.
struct FakeComm {
  std::string name;
  int rank = 0;
  int size = 1;
  int device = 0;
  ncclResult_t async_state = ncclSuccess;
};

// What the scripted library answers, and the calls it saw (watchdog polls aside).
struct Script {
  std::mutex mu;
  std::vector<std::string> calls;
  std::deque<FakeComm> comms;
  int version = 22809;
  ncclResult_t shrink_result = ncclSuccess;
  std::string refuse_revoke_of;  // the name of a communicator whose revoke fails
  std::vector<int> shrink_exclude;
  int shrink_flags = -1;

  void Log(std::string call) {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back(std::move(call));
  }
  std::vector<std::string> Take() {
    std::lock_guard<std::mutex> lock(mu);
    return std::exchange(calls, {});
  }
  ncclComm_t New(std::string name, int rank, int size) {
    std::lock_guard<std::mutex> lock(mu);
    comms.push_back({std::move(name), rank, size, 0, ncclSuccess});
    return reinterpret_cast<ncclComm_t>(&comms.back());
  }
};

Script* script = nullptr;

FakeComm& Of(ncclComm_t comm) { return *reinterpret_cast<FakeComm*>(comm); }

cudaStream_t fake_stream = reinterpret_cast<cudaStream_t>(uintptr_t{0x5157});

// The table: every entry the backend calls in these tests.
Library ScriptedLibrary(bool with_revoke, bool with_shrink) {
  Library lib;
  lib.cudaSetDevice = [](int) { return cudaSuccess; };
  lib.cudaGetErrorString = [](cudaError_t) { return "scripted CUDA error"; };
  lib.cudaGetErrorName = [](cudaError_t) { return "cudaErrorScripted"; };
  lib.cudaFree = [](void*) { return cudaSuccess; };
  lib.cudaStreamCreateWithFlags = [](cudaStream_t* stream, unsigned int) {
    *stream = fake_stream;
    return cudaSuccess;
  };
  lib.cudaStreamDestroy = [](cudaStream_t) { return cudaSuccess; };
  lib.cudaStreamQuery = [](cudaStream_t) { return cudaSuccess; };
  lib.ncclGetVersion = [](int* version) {
    *version = script->version;
    return ncclSuccess;
  };
  lib.ncclGetErrorString = [](ncclResult_t) { return "scripted NCCL error"; };
  lib.ncclGetLastError = [](ncclComm_t) { return ""; };
  lib.ncclCommUserRank = [](ncclComm_t c, int* rank) {
    *rank = Of(c).rank;
    return ncclSuccess;
  };
  lib.ncclCommCount = [](ncclComm_t c, int* size) {
    *size = Of(c).size;
    return ncclSuccess;
  };
  lib.ncclCommCuDevice = [](ncclComm_t c, int* device) {
    *device = Of(c).device;
    return ncclSuccess;
  };
  lib.ncclCommGetAsyncError = [](ncclComm_t c, ncclResult_t* state) {
    std::lock_guard<std::mutex> lock(script->mu);
    *state = Of(c).async_state;
    return ncclSuccess;
  };
  lib.ncclCommFinalize = [](ncclComm_t c) {
    script->Log("finalize " + Of(c).name);
    return ncclSuccess;
  };
  lib.ncclCommDestroy = [](ncclComm_t c) {
    script->Log("destroy " + Of(c).name);
    return ncclSuccess;
  };
  lib.ncclCommAbort = [](ncclComm_t c) {
    script->Log("abort " + Of(c).name);
    return ncclSuccess;
  };
  lib.ncclGroupStart = [] {
    script->Log("group start");
    return ncclSuccess;
  };
  lib.ncclGroupEnd = [] {
    script->Log("group end");
    return ncclSuccess;
  };
  lib.ncclAllReduce = [](const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t c,
                         cudaStream_t) {
    script->Log("all_reduce " + Of(c).name);
    return ncclSuccess;
  };
  if (with_revoke) {
    lib.ncclCommRevoke = [](ncclComm_t c, int flags) {
      script->Log(absl::StrCat("revoke ", Of(c).name, " flags ", flags));
      return Of(c).name == script->refuse_revoke_of ? ncclInvalidUsage : ncclSuccess;
    };
  }
  if (with_shrink) {
    lib.ncclCommShrink = [](ncclComm_t c, int* exclude, int count, ncclComm_t* child,
                            ncclConfig_t* config, int flags) {
      const FakeComm parent = Of(c);
      script->Log(absl::StrCat("shrink ", parent.name, " flags ", flags,
                               config != nullptr && config->blocking == 0 ? " nonblocking" : ""));
      script->shrink_exclude.assign(exclude, exclude + count);
      script->shrink_flags = flags;
      if (script->shrink_result != ncclSuccess) return script->shrink_result;
      int below = 0;
      for (int i = 0; i < count; ++i) below += exclude[i] < parent.rank;
      *child = script->New(parent.name + "'", parent.rank - below, parent.size - count);
      return ncclSuccess;
    };
  }
  return lib;
}

class NcclRecoveryTest : public ::testing::Test {
 protected:
  void Install(bool with_revoke, bool with_shrink) {
    library_ = ScriptedLibrary(with_revoke, with_shrink);
    SetLibraryForTesting(&library_);
  }
  void SetUp() override {
    script = &script_;
    Install(true, true);
  }
  void TearDown() override {
    comms_.clear();  // before the table goes
    SetLibraryForTesting(nullptr);
    script = nullptr;
  }

  // An adopted, owned communicator of the script.
  Communicator* Adopt(const std::string& name, int rank, int size) {
    absl::StatusOr<std::unique_ptr<Communicator>> comm =
        AdoptComm(script_.New(name, rank, size), 0, Ownership::kOwned, {.name = name});
    EXPECT_THAT(comm, IsOk());
    if (!comm.ok()) return nullptr;
    comms_.push_back(*std::move(comm));
    return comms_.back().get();
  }

  Script script_;
  Library library_;
  std::vector<std::unique_ptr<Communicator>> comms_;
};

// A device buffer as far as the checks can tell (never dereferenced by the script).
void* const kBuffer = reinterpret_cast<void*>(uintptr_t{0x1000});

TEST_F(NcclRecoveryTest, RevokesAMeshsCommunicatorsInOneGroup) {
  Communicator* tp = Adopt("tp", 1, 2);
  Communicator* dp = Adopt("dp", 0, 4);
  Communicator* dp_cp = Adopt("dp_cp", 3, 8);
  ASSERT_NE(dp_cp, nullptr);
  script_.Take();
  std::vector<Communicator*> family = {tp, dp, dp_cp};
  EXPECT_OK(nccl::RevokeTogether(family, "rank 5 died"));
  EXPECT_THAT(script_.Take(), ElementsAre("group start", "revoke tp flags 0", "revoke dp flags 0",
                                          "revoke dp_cp flags 0", "group end"));
  // Every later operation fails naming the reason; nothing reaches NCCL.
  EXPECT_THAT(dp->AllReduce(kBuffer, kBuffer, 4, DataType::kFloat32, ReduceOp::kSum),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("rank 5 died")));
  // Idempotent: a second revoke calls nothing.
  EXPECT_OK(nccl::RevokeTogether(family, "again"));
  EXPECT_THAT(script_.Take(), IsEmpty());
  // Revoked communicators are aborted when destroyed, never finalised.
  comms_.clear();
  EXPECT_THAT(script_.Take(), ElementsAre("abort tp", "abort dp", "abort dp_cp"));
}

TEST_F(NcclRecoveryTest, ARefusedRevokeIsAnAbort) {
  Communicator* tp = Adopt("tp", 0, 2);
  Communicator* dp = Adopt("dp", 0, 2);
  ASSERT_NE(dp, nullptr);
  script_.Take();
  script_.refuse_revoke_of = "dp";
  std::vector<Communicator*> family = {tp, dp};
  EXPECT_THAT(nccl::RevokeTogether(family, "rank 1 died"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ncclCommRevoke failed")));
  EXPECT_THAT(script_.Take(), ElementsAre("group start", "revoke tp flags 0", "revoke dp flags 0",
                                          "group end", "abort dp"));
  EXPECT_THAT(ShrinkComm(*dp, {1}, {.name = "dp"}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("nothing to shrink")));
  absl::StatusOr<std::unique_ptr<Communicator>> shrunk = ShrinkComm(*tp, {1}, {.name = "tp"});
  ASSERT_THAT(shrunk, IsOk());
  EXPECT_EQ(script_.shrink_flags, kNcclShrinkAbort);
  script_.Take();
  shrunk->reset();
  comms_.clear();
  EXPECT_THAT(script_.Take(), ElementsAre("finalize tp'", "destroy tp'", "abort tp"));
}

TEST_F(NcclRecoveryTest, WithoutRevokeTheMeshIsAbortedInOneGroup) {
  script_.version = 22605;
  Install(/*with_revoke=*/false, /*with_shrink=*/true);
  EXPECT_FALSE(HasCommRevoke());
  Communicator* tp = Adopt("tp", 0, 2);
  Communicator* dp = Adopt("dp", 0, 2);
  ASSERT_NE(dp, nullptr);
  script_.Take();
  std::vector<Communicator*> family = {tp, dp};
  EXPECT_OK(nccl::RevokeTogether(family, "rank 1 died"));
  EXPECT_THAT(script_.Take(), ElementsAre("group start", "abort tp", "abort dp", "group end"));
  // Nothing is left to shrink.
  EXPECT_THAT(ShrinkComm(*dp, {1}, {.name = "dp"}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("rank 1 died"), HasSubstr("nothing to shrink"))));
  comms_.clear();
  EXPECT_THAT(script_.Take(), IsEmpty());  // aborted already: neither finalised nor aborted again
}

TEST_F(NcclRecoveryTest, ShrinksAHealthyCommunicatorWithTheDefaultFlag) {
  Communicator* dp = Adopt("dp", 2, 4);
  ASSERT_NE(dp, nullptr);
  script_.Take();
  absl::StatusOr<std::unique_ptr<Communicator>> shrunk = ShrinkComm(*dp, {3, 1}, {.name = "dp2"});
  ASSERT_THAT(shrunk, IsOk());
  EXPECT_THAT(script_.Take(), ElementsAre("shrink dp flags 0 nonblocking"));
  EXPECT_THAT(script_.shrink_exclude, ElementsAre(1, 3));
  EXPECT_EQ((*shrunk)->rank(), 1);  // rank 2 of {0, 2}
  EXPECT_EQ((*shrunk)->size(), 2);
  EXPECT_EQ((*shrunk)->options().name, "dp2");
  EXPECT_EQ((*shrunk)->backend(), "nccl");
  // The parent is still usable, and both are finalised as usual.
  EXPECT_OK(dp->AllReduce(kBuffer, kBuffer, 4, DataType::kFloat32, ReduceOp::kSum));
  EXPECT_THAT(script_.Take(), ElementsAre("all_reduce dp"));
  shrunk->reset();
  comms_.clear();
  EXPECT_THAT(script_.Take(),
              ElementsAre("finalize dp'", "destroy dp'", "finalize dp", "destroy dp"));
}

TEST_F(NcclRecoveryTest, ShrinksARevokedCommunicatorWithAbortAndNeverDestroysTheParent) {
  Communicator* tp = Adopt("tp", 0, 2);
  Communicator* dp = Adopt("dp", 0, 4);
  ASSERT_NE(dp, nullptr);
  std::vector<Communicator*> family = {tp, dp};
  ASSERT_OK(nccl::RevokeTogether(family, "rank 2 died"));
  script_.Take();
  absl::StatusOr<std::unique_ptr<Communicator>> shrunk = ShrinkComm(*dp, {2}, {.name = "dp"});
  ASSERT_THAT(shrunk, IsOk());
  EXPECT_EQ(script_.shrink_flags, kNcclShrinkAbort);
  EXPECT_THAT(script_.shrink_exclude, ElementsAre(2));
  EXPECT_EQ((*shrunk)->size(), 3);
  EXPECT_EQ((*shrunk)->rank(), 0);
  EXPECT_OK((*shrunk)->AllReduce(kBuffer, kBuffer, 4, DataType::kFloat32, ReduceOp::kSum));
  EXPECT_THAT(script_.Take(), ElementsAre("shrink dp flags 1 nonblocking", "all_reduce dp'"));
  comms_.clear();  // the parents: aborted, never finalised or destroyed
  EXPECT_THAT(script_.Take(), ElementsAre("abort tp", "abort dp"));
}

TEST_F(NcclRecoveryTest, AnAsynchronousErrorRevokesSoThatTheCommunicatorCanStillShrink) {
  Communicator* dp = Adopt("dp", 0, 2);
  ASSERT_NE(dp, nullptr);
  {
    std::lock_guard<std::mutex> lock(script_.mu);
    script_.comms.back().async_state = ncclRemoteError;  // the peer died
  }
  EXPECT_THAT(dp->AllReduce(kBuffer, kBuffer, 4, DataType::kFloat32, ReduceOp::kSum),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("scripted NCCL error")));
  std::vector<std::string> calls = script_.Take();
  EXPECT_THAT(calls, ::testing::Contains("revoke dp flags 0"));
  EXPECT_THAT(calls, ::testing::Not(::testing::Contains("abort dp")));
  ASSERT_THAT(ShrinkComm(*dp, {1}, {.name = "dp"}), IsOk());
  EXPECT_EQ(script_.shrink_flags, kNcclShrinkAbort);
}

TEST_F(NcclRecoveryTest, ShrinkErrorsComeBackAsStatus) {
  Communicator* dp = Adopt("dp", 1, 4);
  ASSERT_NE(dp, nullptr);
  script_.Take();
  EXPECT_THAT(ShrinkComm(*dp, {1}, {.name = "dp"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("rank 1 is excluded, so it must not call ShrinkComm")));
  EXPECT_THAT(ShrinkComm(*dp, {4}, {.name = "dp"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("excluded rank 4 is outside the communicator's 4 ranks")));
  EXPECT_THAT(
      ShrinkComm(*dp, {0, 0}, {.name = "dp"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("excluded rank 0 is listed twice")));
  EXPECT_THAT(script_.Take(), IsEmpty());  // none reached NCCL

  script_.shrink_result = ncclRemoteError;
  EXPECT_THAT(
      ShrinkComm(*dp, {0}, {.name = "dp"}),
      StatusIs(absl::StatusCode::kUnavailable, AllOf(HasSubstr("ncclCommShrink failed on rank 1"),
                                                     HasSubstr("scripted NCCL error"))));

  script_.version = 22605;
  Install(/*with_revoke=*/false, /*with_shrink=*/false);
  EXPECT_THAT(ShrinkComm(*dp, {0}, {.name = "dp"}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("needs ncclCommShrink (NCCL 2.27 or later); the loaded NCCL is "
                                 "2.26.5")));
}

TEST_F(NcclRecoveryTest, AbortRevokesWhereNcclCan) {
  Communicator* dp = Adopt("dp", 0, 2);
  ASSERT_NE(dp, nullptr);
  script_.Take();
  ASSERT_OK(dp->Abort());
  EXPECT_THAT(script_.Take(), ElementsAre("revoke dp flags 0"));
  EXPECT_THAT(dp->AllReduce(kBuffer, kBuffer, 4, DataType::kFloat32, ReduceOp::kSum),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("Abort() was called")));
  ASSERT_THAT(ShrinkComm(*dp, {1}, {.name = "dp"}), IsOk());
  EXPECT_EQ(script_.shrink_flags, kNcclShrinkAbort);
}

TEST_F(NcclRecoveryTest, AnAbortedCommunicatorCannotShrink) {
  // NCCL 2.27: ncclCommShrink, no ncclCommRevoke.
  script_.version = 22703;
  Install(/*with_revoke=*/false, /*with_shrink=*/true);
  Communicator* dp = Adopt("dp", 0, 2);
  ASSERT_NE(dp, nullptr);
  script_.Take();
  ASSERT_OK(dp->Abort());
  EXPECT_THAT(script_.Take(), ElementsAre("abort dp"));
  EXPECT_THAT(ShrinkComm(*dp, {1}, {.name = "dp"}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("Abort() was called"), HasSubstr("nothing to shrink"))));
  EXPECT_THAT(script_.Take(), IsEmpty());
}

}  // namespace
}  // namespace nmesh::comm::nccl
