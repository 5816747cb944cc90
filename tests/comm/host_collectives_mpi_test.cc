// AgreeOnStatus, the host collectives and SplitAgreed over MPI, at np 1, 2 and 4.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/session.h"

namespace nmesh::comm {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;

std::unique_ptr<Communicator> World(CommOptions options = {.name = "world"}) {
  static mpi::Session* session = [] {
    auto s = mpi::Session::Init(nullptr, nullptr);  // MPI is already up: neither inits nor ends
    if (!s.ok()) std::abort();
    return s->release();
  }();
  auto world = mpi::WorldCommunicator(*session, std::move(options));
  if (!world.ok()) std::abort();
  return *std::move(world);
}

TEST(AgreeOnStatusTest, EveryRankLearnsTheFirstFailure) {
  auto world = World();
  const int n = world->size(), r = world->rank();
  EXPECT_OK(AgreeOnStatus(*world, absl::OkStatus()));
  const absl::Status mine =
      r == n - 1 ? absl::InvalidArgumentError("tp_size must be a positive integer, got 0")
                 : absl::OkStatus();
  absl::Status agreed = AgreeOnStatus(*world, mine);
  if (r == n - 1) {
    EXPECT_EQ(agreed, mine);
  } else {
    EXPECT_THAT(agreed, StatusIs(absl::StatusCode::kInvalidArgument,
                                 absl::StrFormat("tp_size must be a positive integer, got 0 "
                                                 "[reported by rank %d of %d]",
                                                 n - 1, n)));
  }
}

TEST(HostCollectivesMpiTest, HostMemoryGoesStraightThrough) {
  auto world = World();
  const int n = world->size();
  const int64_t r = world->rank();
  std::vector<int64_t> all(static_cast<size_t>(n), -1);
  ASSERT_OK(HostAllGather<int64_t>(*world, absl::MakeConstSpan(&r, 1), absl::MakeSpan(all)));
  for (int i = 0; i < n; ++i) EXPECT_EQ(all[static_cast<size_t>(i)], i);
  int64_t sum = r;
  ASSERT_OK(HostAllReduce<int64_t>(*world, absl::MakeConstSpan(&r, 1), absl::MakeSpan(&sum, 1),
                                   ReduceOp::kSum));
  EXPECT_EQ(sum, static_cast<int64_t>(n) * (n - 1) / 2);
  ASSERT_OK_AND_ASSIGN(Buffer buffer, world->AllocateBuffer(64));
  EXPECT_NE(buffer.data(), nullptr);
}

// SplitAgreed makes the same groups as Split, with and without a timeout on the parent.
TEST(SplitAgreedTest, SameGroupsAsSplit) {
  for (std::optional<absl::Duration> timeout :
       {std::optional<absl::Duration>(), std::optional<absl::Duration>(absl::Seconds(30))}) {
    auto world = World({.name = "world", .timeout = timeout});
    const int r = world->rank();
    const std::optional<int> color = r % 3 == 2 ? std::nullopt : std::optional<int>(r % 2);
    ASSERT_OK_AND_ASSIGN(auto agreed, world->SplitAgreed(color, -r, {.name = "agreed"}));
    ASSERT_OK_AND_ASSIGN(auto plain, world->Split(color, -r, {.name = "plain"}));
    ASSERT_EQ(agreed == nullptr, plain == nullptr);
    if (agreed == nullptr) continue;
    EXPECT_EQ(agreed->options().name, "agreed");
    std::vector<int64_t> a(static_cast<size_t>(agreed->size())), p(a.size());
    const int64_t me = r;
    ASSERT_OK(agreed->AllGather<int64_t>(absl::MakeConstSpan(&me, 1), absl::MakeSpan(a)));
    ASSERT_OK(plain->AllGather<int64_t>(absl::MakeConstSpan(&me, 1), absl::MakeSpan(p)));
    EXPECT_EQ(a, p);
    EXPECT_TRUE(std::is_sorted(a.rbegin(), a.rend()));  // key -r: descending ranks
  }
}

// SplitAgreed by member lists makes exactly the listed groups, in the listed order, with and
// without a timeout on the parent (MPI_Comm_create_group without one, a split with one). Groups
// here: ranks r with the same r % 3, in descending order; rank 2 of every 4 joins none. Expected
// members are computed from the ranks, not read back from nmesh.
TEST(SplitAgreedTest, MemberListsMakeThoseGroups) {
  for (std::optional<absl::Duration> timeout :
       {std::optional<absl::Duration>(), std::optional<absl::Duration>(absl::Seconds(30))}) {
    auto world = World({.name = "world", .timeout = timeout});
    const int r = world->rank();
    const int n = world->size();
    auto joins = [](int q) { return q % 4 != 2; };
    std::vector<int> members;
    if (joins(r)) {
      for (int q = n - 1; q >= 0; --q) {
        if (q % 3 == r % 3 && joins(q)) members.push_back(q);
      }
    }
    ASSERT_OK_AND_ASSIGN(auto child, world->SplitAgreed(members, {.name = "listed"}));
    ASSERT_EQ(child == nullptr, members.empty());
    if (child == nullptr) continue;
    EXPECT_EQ(child->options().name, "listed");
    ASSERT_EQ(child->size(), static_cast<int>(members.size()));
    std::vector<int64_t> got(members.size());
    const int64_t me = r;
    ASSERT_OK(child->AllGather<int64_t>(absl::MakeConstSpan(&me, 1), absl::MakeSpan(got)));
    EXPECT_EQ(got, std::vector<int64_t>(members.begin(), members.end()));
    EXPECT_EQ(got[static_cast<size_t>(child->rank())], r);
  }
}

// A member list that leaves out the caller, repeats a rank or names one outside the world is
// InvalidArgument before any communication (so the checks run alone on one rank).
TEST(SplitAgreedTest, BadMemberListsAreRejected) {
  auto world = World({.name = "world"});
  const int r = world->rank();
  const int n = world->size();
  const std::vector<int> without_me = {(r + 1) % n == r ? n : (r + 1) % n};
  const std::vector<int> twice = {r, r};
  const std::vector<int> outside = {r, n};
  const std::vector<int> negative = {-1, r};
  for (const std::vector<int>& bad : {without_me, twice, outside, negative}) {
    absl::StatusOr<std::unique_ptr<Communicator>> child = world->SplitAgreed(bad, {.name = "bad"});
    EXPECT_EQ(child.status().code(), absl::StatusCode::kInvalidArgument)
        << absl::StrJoin(bad, ",") << ": " << child.status();
  }
}

}  // namespace
}  // namespace nmesh::comm
