// The job's start-up and its communicators in hostile conditions: an application's wildcard
// receive on MPI_COMM_WORLD, the default timeout, a plain communicator pointer used after its
// mesh is gone, the bench's memory check per host.
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/mpi/testing/session.h"
#include "nmesh/comm/options.h"
#include "nmesh/job/job.h"

namespace nmesh::job {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;

JobOptions Options() {
  JobOptions options;
  options.mesh.sizes.tp = comm::mpi::testing::TheSession().world_size() >= 2 ? 2 : 1;
  options.backend = BackendChoice::kMpi;
  options.command = "job_hostile_mpi_test";
  options.startup_timeout = absl::Seconds(20);
  return options;
}

// An engine that posted MPI_Irecv(MPI_ANY_SOURCE, MPI_ANY_TAG) on MPI_COMM_WORLD before starting
// the job: nmesh's start-up records travelled on MPI_COMM_WORLD, rank 0's pending receive took
// one of them, and the healthy rank that sent it was named late ("start-up: rank 1 of 2 did not
// arrive within 20s"). nmesh's own traffic goes over its own duplicate now.
TEST(JobHostileTest, AnApplicationsWildcardReceiveOnTheWorldTakesNoneOfNmeshsTraffic) {
  comm::mpi::Session& session = comm::mpi::testing::TheSession();
  std::vector<char> buffer(4096);
  MPI_Request pending = MPI_REQUEST_NULL;
  ASSERT_EQ(MPI_Irecv(buffer.data(), static_cast<int>(buffer.size()), MPI_CHAR, MPI_ANY_SOURCE,
                      MPI_ANY_TAG, MPI_COMM_WORLD, &pending),
            MPI_SUCCESS);
  absl::StatusOr<std::unique_ptr<Job>> job = Job::Start(session, Options());
  EXPECT_OK(job.status());
  int taken = 0;
  MPI_Status status;
  MPI_Test(&pending, &taken, &status);
  EXPECT_EQ(taken, 0) << "the application's receive took a message of nmesh's from rank "
                      << status.MPI_SOURCE << " with tag " << status.MPI_TAG;
  if (!taken) {
    MPI_Cancel(&pending);
    MPI_Wait(&pending, MPI_STATUS_IGNORE);
  }
  if (job.ok()) job->reset();
}

// Every communicator of a job has a timeout unless the caller opts out: a collective a rank never
// joins ends the job with a report instead of hanging it silently.
TEST(JobHostileTest, EveryCommunicatorOfAJobHasTheDefaultTimeoutUnlessOptedOut) {
  comm::mpi::Session& session = comm::mpi::testing::TheSession();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Job> job, Job::Start(session, Options()));
  EXPECT_EQ(job->timeout(), absl::Minutes(10));
  EXPECT_EQ(job->mpi_world().options().timeout, absl::Minutes(10));
  const JobMesh& mesh = job->meshes().front();
  ASSERT_OK_AND_ASSIGN(comm::Communicator * tp, mesh.mesh->Comm("tp"));
  EXPECT_EQ(tp->options().timeout, absl::Minutes(10));
  job.reset();

  JobOptions none = Options();
  none.no_timeout = true;
  none.timeout = absl::Seconds(5);  // the opt-out wins over a value
  ASSERT_OK_AND_ASSIGN(job, Job::Start(session, none));
  EXPECT_EQ(job->timeout(), std::nullopt);
  ASSERT_OK_AND_ASSIGN(tp, job->meshes().front().mesh->Comm("tp"));
  EXPECT_EQ(tp->options().timeout, std::nullopt);
}

// A plain pointer from DeviceMesh::Comm used after every handle of its mesh is gone: it read freed
// memory (a segfault, or a call on a freed MPI communicator). Now the communicator stays, released,
// and says why it cannot run.
TEST(JobHostileTest, ACommunicatorPointerUsedAfterItsMeshIsGoneFailsCleanly) {
  comm::mpi::Session& session = comm::mpi::testing::TheSession();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Job> job, Job::Start(session, Options()));
  ASSERT_OK_AND_ASSIGN(comm::Communicator * tp, job->meshes().front().mesh->Comm("tp"));
  const int size = tp->size();
  job.reset();  // the meshes and their communicators go with the job
  std::vector<float> send(4, 1.0f), recv(4);
  EXPECT_THAT(tp->AllReduce<float>(send, absl::MakeSpan(recv), comm::ReduceOp::kSum),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("its mesh 'device_mesh' has been destroyed")));
  EXPECT_EQ(tp->size(), size);
}

}  // namespace
}  // namespace nmesh::job
