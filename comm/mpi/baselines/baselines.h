// Raw-MPI baselines for the mesh-build benchmark (bench/mesh_build_bench.cc): the same
// communicators nmesh creates, made with bare MPI calls and none of nmesh's checks, so that the
// benchmark can report nmesh's overhead as a ratio. Not for production use.
//
//   std::vector<RawSplit> splits = ...;                  // this rank's color/key per split
//   NMESH_ASSIGN_OR_RETURN(RawComms comms, SplitEach(splits));   // P1: MPI_Comm_split each
//   NMESH_ASSIGN_OR_RETURN(RawComms naive, CreateEachGroup(groups));  // P2: MPI_Comm_create each
//
// SplitEach and CreateEachGroup are collective over MPI_COMM_WORLD: every rank calls them with the
// same number of entries (and, for CreateEachGroup, the same groups), in the same order;
// CreateGroupEach over each group's members. MPI must be initialised.
#ifndef NMESH_COMM_MPI_BASELINES_BASELINES_H_
#define NMESH_COMM_MPI_BASELINES_BASELINES_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace nmesh::comm::mpi::baselines {

// This rank's part in one MPI_Comm_split of MPI_COMM_WORLD: std::nullopt joins none
// (MPI_UNDEFINED).
struct RawSplit {
  std::optional<int> color;
  int key = 0;
};

// Communicators made by a baseline; freed (MPI_Comm_free) on destruction. Move-only.
class RawComms {
 public:
  RawComms();
  ~RawComms();
  RawComms(RawComms&&) noexcept;
  RawComms& operator=(RawComms&&) noexcept;

  // The number of communicators this rank holds (it is a member of).
  size_t size() const;

 private:
  friend absl::StatusOr<RawComms> SplitEach(absl::Span<const RawSplit> splits);
  friend absl::StatusOr<RawComms> CreateEachGroup(absl::Span<const std::vector<int>> groups);
  friend absl::StatusOr<RawComms> CreateGroupEach(absl::Span<const std::vector<int>> mine);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// P1: one MPI_Comm_split of MPI_COMM_WORLD per entry, nothing else.
absl::StatusOr<RawComms> SplitEach(absl::Span<const RawSplit> splits);

// P2: the naive way of PyTorch's and Megatron's `new_group` loops: for every group (world ranks
// in group order), every rank of the world takes part in MPI_Comm_create over MPI_COMM_WORLD with
// that group (MPI_Group_incl); members receive a communicator.
absl::StatusOr<RawComms> CreateEachGroup(absl::Span<const std::vector<int>> groups);

// P1's other bare form: for each entry of `mine` (this rank's group of each split, world ranks
// in group order; empty: none), MPI_Comm_create_group over MPI_COMM_WORLD, in which only the
// group's members take part. What nmesh's MPI backend does when it knows the groups.
absl::StatusOr<RawComms> CreateGroupEach(absl::Span<const std::vector<int>> mine);

}  // namespace nmesh::comm::mpi::baselines

#endif  // NMESH_COMM_MPI_BASELINES_BASELINES_H_
