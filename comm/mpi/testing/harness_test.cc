// Tests of the MPI GoogleTest main (comm/mpi/testing/gtest_mpi_main.cc).
#include <mpi.h>

#include "gtest/gtest.h"

namespace {

int Rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int Size() {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

TEST(HarnessSelfTest, MpiIsInitialised) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  EXPECT_TRUE(initialized);
}

TEST(HarnessSelfTest, EveryRankTakesPart) {
  int one = 1, total = 0;
  MPI_Allreduce(&one, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(total, Size());
}

// Run only by the WILL_FAIL ctest entries: rank 0 passes, the last rank fails, so the reduced
// verdict (and the exit code of every rank) must be a failure.
TEST(HarnessSelfTest, DISABLED_FailsOnLastRankOnly) {
  EXPECT_NE(Rank(), Size() - 1) << "deliberate failure on the last rank";
}

}  // namespace
