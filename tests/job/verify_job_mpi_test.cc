// The gather-v behind `nmesh run`'s report (comm::HostGatherV) over every backend factory, and
// job::VerifyJob over a started job, run under mpirun -np 1, 2, 4 and 8. Expected values come from
// the ranks' own arithmetic.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/comm/mpi/testing/session.h"
#include "nmesh/job/job.h"
#include "nmesh/job/verify_job.h"
#include "nmesh/tests/comm/backends.h"

namespace nmesh::job {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;

// Rank r's message: r * 3 bytes (none on rank 0), each 'a' + r.
std::string MessageOf(int rank) { return std::string(static_cast<size_t>(rank) * 3, 'a' + rank); }

class HostGatherVTest : public ::testing::TestWithParam<comm::testing::Backend> {};

TEST_P(HostGatherVTest, RootReceivesEveryRanksBytesInRankOrder) {
  std::string skip;
  auto made = GetParam().make("world", &skip);
  ASSERT_TRUE(made.ok()) << made.status();
  if (*made == nullptr) GTEST_SKIP() << skip;
  comm::Communicator& comm = **made;
  const int n = comm.size();
  for (int root : {0, n - 1, n / 2}) {
    SCOPED_TRACE(root);
    ASSERT_OK_AND_ASSIGN(std::vector<std::string> all,
                         comm::HostGatherV(comm, MessageOf(comm.rank()), root));
    if (comm.rank() != root) {
      EXPECT_TRUE(all.empty());
      continue;
    }
    ASSERT_EQ(all.size(), static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) EXPECT_EQ(all[static_cast<size_t>(r)], MessageOf(r)) << r;
  }
  EXPECT_THAT(comm::HostGatherV(comm, "x", n),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("root")));
}

INSTANTIATE_TEST_SUITE_P(Backends, HostGatherVTest, ::testing::ValuesIn(comm::testing::Backends()),
                         comm::testing::BackendName);

TEST(VerifyJobTest, RankZeroGetsEveryMembersGroupsAsPlanned) {
  comm::mpi::Session& session = comm::mpi::testing::TheSession();
  const int64_t n = session.world_size();
  const int64_t tp = n >= 2 ? 2 : 1;
  JobOptions options;
  options.mesh.sizes.tp = tp;
  options.backend = BackendChoice::kMpi;
  options.command = "verify_job_mpi_test";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Job> job, Job::Start(session, options));
  ASSERT_OK_AND_ASSIGN(JobVerification result, VerifyJob(*job));
  EXPECT_TRUE(result.verified);
  ASSERT_EQ(result.meshes.size(), 1u);
  const MeshVerification& mesh = result.meshes[0];
  EXPECT_GE(mesh.build_seconds, job->meshes()[0].build_seconds);
  if (job->rank() != 0) {
    EXPECT_TRUE(mesh.ranks.empty());
    return;
  }
  EXPECT_TRUE(mesh.verified);
  EXPECT_TRUE(mesh.warnings.empty());  // one host
  EXPECT_FALSE(mesh.placement.empty());
  ASSERT_EQ(mesh.ranks.size(), static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    const RankVerification& v = mesh.ranks[static_cast<size_t>(r)];
    EXPECT_EQ(v.rank, r);
    EXPECT_EQ(v.host, job->topology().host_names[static_cast<size_t>(r)]);
    EXPECT_EQ(v.local_rank, r);  // one host: the local rank is the rank
    EXPECT_TRUE(v.verified);
    EXPECT_TRUE(v.mismatches.empty());
    // tp is the innermost axis: consecutive ranks; dp_shard the ranks with the same tp index.
    std::vector<int64_t> tp_group;
    for (int64_t i = 0; i < tp; ++i) tp_group.push_back(r - r % tp + i);
    std::vector<int64_t> dp_group;
    for (int64_t i = r % tp; i < n; i += tp) dp_group.push_back(i);
    bool saw_tp = false;
    bool saw_dp_shard = false;
    for (const GroupCheck& check : v.groups) {
      EXPECT_TRUE(check.verified) << check.name;
      if (check.name == "tp") {
        saw_tp = true;
        EXPECT_EQ(check.observed, tp_group);
      } else if (check.name == "dp_shard") {
        saw_dp_shard = true;
        EXPECT_EQ(check.observed, dp_group);
      }
    }
    EXPECT_TRUE(saw_tp);
    EXPECT_TRUE(saw_dp_shard);
    EXPECT_FALSE(v.moe_groups.has_value());
  }
}

}  // namespace
}  // namespace nmesh::job
