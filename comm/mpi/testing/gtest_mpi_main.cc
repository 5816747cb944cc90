// GoogleTest main for multi-process tests run under `mpirun -np N`.
//
// - Initialises MPI (MPI_THREAD_MULTIPLE requested) before any test and finalises it after.
// - Reduces every test's verdict across ranks (MPI_MIN over "passed"): a rank whose own run passed
//   records a failure naming the ranks that failed, so every rank, and rank 0's report, agrees.
// - Rank 0 prints the usual GoogleTest output. Other ranks stay quiet except for their own
//   failures, which they print prefixed with "[rank k]".
// - The process exit code is reduced the same way.
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace {

int WorldRank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int WorldSize() {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// Reduces each test's verdict across ranks. Runs before the result printer at OnTestEnd (GoogleTest
// calls *End events in reverse registration order), so an added failure shows in rank 0's report.
class VerdictReducer : public testing::EmptyTestEventListener {
  void OnTestEnd(const testing::TestInfo& info) override {
    int passed = info.result()->Failed() ? 0 : 1;
    std::vector<int> all(static_cast<size_t>(WorldSize()));
    MPI_Allgather(&passed, 1, MPI_INT, all.data(), 1, MPI_INT, MPI_COMM_WORLD);
    std::string failed_ranks;
    for (size_t r = 0; r < all.size(); ++r) {
      if (all[r] == 0) failed_ranks += (failed_ranks.empty() ? "" : ",") + std::to_string(r);
    }
    if (passed && !failed_ranks.empty()) {
      ADD_FAILURE() << "failed on rank(s) " << failed_ranks << " of " << all.size();
    }
  }
};

// On ranks other than 0: print only this rank's failures.
class QuietFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit QuietFailurePrinter(int rank) : rank_(rank) {}

  // GoogleTest holds its lock while reporting a part result, so the test's name is remembered here
  // rather than asked for in OnTestPartResult.
  void OnTestStart(const testing::TestInfo& info) override {
    current_test_ = std::string(info.test_suite_name()) + "." + info.name();
  }

  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::string message = result.message();
    if (message.find("failed on rank(s)") != std::string::npos) return;  // rank 0 says this
    std::fprintf(stderr, "[rank %d] %s: %s:%d: Failure\n%s\n", rank_, current_test_.c_str(),
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 message.c_str());
  }

 private:
  int rank_;
  std::string current_test_;
};

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  testing::InitGoogleTest(&argc, argv);

  const int rank = WorldRank();
  testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new QuietFailurePrinter(rank));
  }
  listeners.Append(new VerdictReducer);

  int local_ok = RUN_ALL_TESTS() == 0 ? 1 : 0;
  int global_ok = 0;
  MPI_Allreduce(&local_ok, &global_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Finalize();
  return global_ok ? 0 : 1;
}
