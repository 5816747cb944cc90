// `nmesh run`: builds the meshes on every rank of an MPI job and verifies every group of every rank
// through the real communicators (contract §9).
//
//   mpirun -np 8 nmesh run --tp 2 --cp 2 [--backend auto|mpi|nccl] [--timeout-s T]
//                          [--format text|json]
//   mpirun -np 8 nmesh run --config examples/fsdp2_tp2_cp2.yaml
//   scripts/launch.sh -n 8 -- nmesh run --tp 2 --cp 2 --backend gloo
//       --store redis://127.0.0.1:6379/job1        # (one line) no MPI: RANK/WORLD_SIZE, a store
//
// Steps, on every rank (the order the overview of docs/ARCHITECTURE.md gives; steps 1 to 3 are
// tools/mesh_job.h, shared with `nmesh bench`):
//   1. MPI session and world (or, with --store, the launch environment and the store, and gloo's
//      world); the mesh specs from the flags and --config (ResolveMeshSpecs with
//      all sections: a recipe with a teacher gives two meshes) and their plans. Every rank learns
//      every other rank's config error (comm::AgreeOnStatus), so all exit 2 together.
//   2. Backend: auto picks NCCL when it was built and every rank sees a GPU for its local rank,
//      MPI (gloo under --store) otherwise, and says why; --backend nccl without a GPU fails on
//      every rank (exit 1).
//   3. DeviceMesh::Create for each mesh (every rank, in order), timed; MeshContext on members.
//   4. Verification (job::VerifyJob): over each distinct communicator of this rank, an all-gather
//      of the global ranks (compared, in order, with the planned group) and an all-reduce of their
//      sum (compared with the planned sum). Buffers live in the backend's memory
//      (Communicator::AllocateBuffer).
//   5. Every rank's results go to rank 0 as structs (a host gather-v over the MPI world), which
//      prints the report: text tables, or JSON (below). The verdict is all-reduced, so every rank
//      exits with the same code.
//
// JSON (--format json) for one mesh: the plan object of §9 (tools/plan_command.h) plus "backend",
// "backend_reason", "verified", "communicators_created", "build_seconds" (the slowest rank's
// DeviceMesh::Create), "axes" ([{"name", "size", "groups", "intra_node"}] for every axis,
// flattened group and moe axis) and "per_rank" (every member in rank order, each with "host", its
// groups as observed through the communicators, and "verified"). With two meshes (a recipe with
// `teacher_distributed:`): {"meshes": [{"label": "distributed", ...}, {"label":
// "teacher_distributed", ...}], "backend": ..., "verified": ...}.
//
// Exit codes: 0 when every group of every rank verified; 1 on a runtime failure (communication,
// timeout, verification mismatch, no GPU for --backend nccl); 2 on a usage or config error
// ("nmesh: error: ..." on stderr from rank 0, and {"error": ...} on stdout under --format json). A
// rank whose communication fails while others may be blocked ends the job (MPI_Abort, exit 1).
#ifndef NMESH_TOOLS_RUN_COMMAND_H_
#define NMESH_TOOLS_RUN_COMMAND_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "nmesh/job/verify_job.h"
#include "nmesh/tools/mesh_options.h"

namespace nmesh::tools {

struct RunOptions {
  MeshOptions mesh;
  std::string backend = "auto";
  // --timeout-s (TimeoutFromFlag): overrides the recipe's dist_env.timeout_minutes.
  std::optional<std::string> timeout_s;
  // How long the ranks wait for each other at start-up (job::JobOptions::startup_timeout).
  std::optional<double> startup_timeout_s;
  // --store URL: a launch without MPI (job::StoreUrlFrom: else NMESH_STORE).
  std::optional<std::string> store;
  std::string format = "text";
  // --nccl-ranks-per-root K: one NCCL bootstrap root per K ranks (NCCL backend only).
  int nccl_ranks_per_root = 128;
  // Fault injection for the reliability tests (hidden flag --fault-skip RANK:GROUP): rank RANK
  // does not take part in the verification's collectives on its GROUP communicator (it skips the
  // first one and reports that on stderr), so the other members time out. Unset: no fault.
  std::optional<std::string> fault_skip;
  // Fault injection for the start-up tests (hidden flag --fault-late-s S): this rank waits S
  // seconds after MPI has started, before the start-up agreement (a rank slow to read its recipe).
  // From 0 to kMaxFaultLateSeconds.
  std::optional<double> fault_late_s;
  // --flight-recorder DIR: where ranks that report a timeout write their flight records.
  std::optional<std::string> flight_recorder;
};

// The longest --fault-late-s: a day.
inline constexpr double kMaxFaultLateSeconds = 86400;

// A parsed --fault-skip value (checked against the job by job::CheckFaultSkip).
using FaultSkip = job::FaultSkip;

// Parses "RANK:GROUP" (RANK a non-negative integer, GROUP a non-empty name). InvalidArgument naming
// the value otherwise. Whether RANK and GROUP exist is checked against the job and its plans.
absl::StatusOr<FaultSkip> ParseFaultSkip(std::string_view value);

// Registers the `run` subcommand and its flags on `app`; `options` must outlive the parse.
CLI::App* AddRunCommand(CLI::App& app, RunOptions& options);

// Runs `nmesh run` as one rank of the MPI job (initialising MPI, which it finalises on return) and
// returns the process exit code. Rank 0 writes the report to `out`; diagnostics go to `err`.
// Collective over MPI_COMM_WORLD: every rank of the job must call it with the same options.
int RunMeshes(const RunOptions& options, std::ostream& out, std::ostream& err);

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_RUN_COMMAND_H_
