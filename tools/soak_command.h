// `nmesh soak`: a burn-in that runs one synthetic training step's communication per step over the
// mesh (perf/soak.h: pp send/recv, tp all_gather, ep all_to_all_v, dp_shard_cp reduce_scatter and
// all_gather, dp all_reduce; every result checked) and survives the failures it meets
// (job/soak.h: recovery by the --on-failure policy, then the same step again on the new mesh).
//
//   mpirun -np 8 nmesh soak --tp 2 --steps 1000 --on-failure rebuild --timeout-s 5 --backend mpi
//   scripts/launch.sh -n 8 -- nmesh soak --tp 2 --seconds 60 --on-failure shrink --timeout-s 2
//       --backend gloo --store redis://127.0.0.1:6379/job1 --report-dir /tmp/soak   # (one line)
//
// Flags: the mesh flags of `run` (tools/mesh_options.h; the first mesh of a recipe, or
// --section's), --steps N and/or --seconds S (whichever comes first; at least one),
// --on-failure abort|rebuild|shrink (default abort), --timeout-s (as `run`), --backend, --store,
// --startup-timeout-s, --elements E (float32 elements per operation and rank, default 1024),
// --recovery-quiet-s S (shrink: how long the survivors' meeting waits after the last arrival
// before it counts the ranks still missing as dead; default 1),
// --progress (the lowest rank prints each completed step), --report-dir DIR, --flight-recorder DIR.
//
// --report-dir DIR: every rank that started the job writes DIR/rank<R>.json (R its rank as
// launched), created new (never over an existing file, never through a link):
//   {"rank": R, "status": "completed"|"spare"|"failed", "steps": completed steps,
//    "events": [{"step", "action": "rebuild"|"shrink", "dead": [launch ranks], "culprit",
//                "world_before", "world_after", "resume_s", "agree_s", "rebuild_s",
//                "failed_unix_s", "resumed_unix_s"}],
//    "error": "..." (failed only)}
// resume_s is from the step's error to the next completed step (-1 when none completed after it).
//
// The lowest rank of the mesh at the end (rank 0, or the lowest surviving member after a
// recovery) prints a summary on stdout. Exit codes: 0 on every rank that completed or is a spare; 1
// on a rank whose step failed without recovery or whose recovery failed (under mpirun it ends the
// job, MPI_Abort, after the diagnosis) or that could not write its report (the path named); 2 on a
// usage or config error (printed once).
#ifndef NMESH_TOOLS_SOAK_COMMAND_H_
#define NMESH_TOOLS_SOAK_COMMAND_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "nmesh/tools/mesh_options.h"

namespace nmesh::tools {

struct SoakCommandOptions {
  MeshOptions mesh;
  std::optional<int64_t> steps;
  std::optional<double> seconds;
  std::string on_failure = "abort";
  std::string backend = "auto";
  // --timeout-s (TimeoutFromFlag): overrides the recipe's dist_env.timeout_minutes.
  std::optional<std::string> timeout_s;
  std::optional<double> startup_timeout_s;
  // --store URL: a launch without MPI (job::StoreUrlFrom: else NMESH_STORE).
  std::optional<std::string> store;
  std::optional<std::string> report_dir;
  std::optional<int64_t> elements;
  // --recovery-quiet-s: job::JobOptions::recovery_quiet (shrink).
  std::optional<double> recovery_quiet_s;
  bool progress = false;
  std::optional<std::string> flight_recorder;
};

// Registers the `soak` subcommand and its flags on `app`; `options` must outlive the parse.
CLI::App* AddSoakCommand(CLI::App& app, SoakCommandOptions& options);

// Runs `nmesh soak` as one rank of the job and returns the process exit code (see the overview).
int RunSoakCommand(const SoakCommandOptions& options, std::ostream& out, std::ostream& err);

}  // namespace nmesh::tools

#endif  // NMESH_TOOLS_SOAK_COMMAND_H_
