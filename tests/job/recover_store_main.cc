// One rank of a store-launched job (gloo, RANK/WORLD_SIZE from scripts' environment) that loses a
// rank and recovers with job::Job::Recover; run at np 4 by recover_store.sh, which checks every
// process's exit code and that none is left behind.
//
//   recover_store_main SCENARIO STORE_URL
//
// Every scenario runs --tp 2 (dp 2) with a 2 s timeout; each step is an all_reduce on tp, then on
// dp, of (launch rank + 1), checked against the sums written out from the layout (tp pairs
// {0,1}, {2,3}; dp pairs {0,2}, {1,3}).
//   kill_shrink:    launch rank 2 SIGKILLs itself at step 3; on_failure shrink. The survivors
//                   (0, 1, 3) must get dead = {2}, world 4 -> 2, and rank 3 alone a spare; the
//                   new mesh (ranks 0 and 1, tp 2) must all_reduce right.
//   late_rebuild:   launch rank 1 sleeps 4 s before step 3's tp all_reduce; on_failure rebuild.
//                   Every rank must get dead = {}, world 4 -> 4, the same mesh again, and the late
//                   rank's operation must have failed with Aborted naming the announced cause.
//   dead_rebuild:   launch rank 2 SIGKILLs itself; on_failure rebuild. Every survivor's Recover
//   must
//                   fail with FailedPrecondition naming rank 2.
// Each survivor also gathers its event's digest over the new host world: every one must hold the
// same. Exit 0 when every check passes, 1 otherwise (the message on stderr).
#include <signal.h>

#include <cstdint>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "nmesh/nmesh.h"

namespace {

using nmesh::comm::Communicator;
using nmesh::comm::ReduceOp;
using nmesh::job::FailurePolicy;
using nmesh::job::Job;
using nmesh::job::RecoveryEvent;

absl::Status Check(bool ok, const std::string& what) {
  return ok ? absl::OkStatus() : absl::InternalError(what);
}

// An all_reduce (sum) of `launch rank + 1` over group `name` of the job's model, checked against
// the sum over `members` (launch ranks), written out by the caller.
absl::Status SumOver(Job& job, const std::string& name, const std::vector<int64_t>& members) {
  NMESH_ASSIGN_OR_RETURN(Communicator * comm, job.model().Comm(name));
  std::vector<int64_t> value = {job.launch_rank() + 1};
  NMESH_RETURN_IF_ERROR(comm->AllReduce<int64_t>(value, absl::MakeSpan(value), ReduceOp::kSum));
  int64_t expected = 0;
  for (int64_t r : members) expected += r + 1;
  return Check(value[0] == expected,
               absl::StrFormat("%s all_reduce gave %d, expected %d (launch ranks %s)", name,
                               value[0], expected, absl::StrJoin(members, ",")));
}

// One step on the mesh as launched (tp pairs {0,1}, {2,3}; dp pairs {0,2}, {1,3}).
absl::Status Step(Job& job) {
  const int64_t r = job.launch_rank();
  NMESH_RETURN_IF_ERROR(SumOver(job, "tp", {r - r % 2, r - r % 2 + 1}));
  return SumOver(job, "dp", {r % 2, r % 2 + 2});
}

// The event's digest, gathered over the new host world: every survivor must hold the same.
absl::Status SameEverywhere(Job& job, const RecoveryEvent& event) {
  std::vector<int64_t> mine = {event.epoch,
                               event.world_before,
                               event.world_after,
                               static_cast<int64_t>(event.dead.size()),
                               static_cast<int64_t>(std::hash<std::string>()(event.culprit)),
                               static_cast<int64_t>(event.action)};
  for (int64_t d : event.dead) mine[3] = mine[3] * 131 + d;
  std::vector<int64_t> all(mine.size() * static_cast<size_t>(job.world_size()));
  NMESH_RETURN_IF_ERROR(job.host_world().AllGather<int64_t>(mine, absl::MakeSpan(all)));
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] != mine[i % mine.size()]) {
      return absl::InternalError(
          absl::StrFormat("rank %d of the new world holds another event", i / mine.size()));
    }
  }
  return absl::OkStatus();
}

absl::Status Run(const std::string& scenario, const std::string& url) {
  const bool shrink = scenario == "kill_shrink";
  const bool late = scenario == "late_rebuild";
  const bool dead = scenario == "dead_rebuild";
  if (!shrink && !late && !dead) return absl::InvalidArgumentError("unknown scenario " + scenario);
  nmesh::job::JobOptions options;
  options.mesh.sizes.tp = 2;
  options.backend = nmesh::job::BackendChoice::kGloo;
  options.timeout = absl::Seconds(2);
  options.startup_timeout = absl::Seconds(dead ? 6 : 20);
  options.on_failure = shrink ? FailurePolicy::kShrink : FailurePolicy::kRebuild;
  nmesh::job::LaunchedJob started = nmesh::job::StartLaunchedJob(options, url);
  NMESH_RETURN_IF_ERROR(started.status);
  Job& job = *started.job;
  const int64_t me = job.launch_rank();

  absl::Status failure;
  for (int step = 0; step < 6 && failure.ok(); ++step) {
    if (step == 3 && (shrink || dead) && me == 2) raise(SIGKILL);
    if (step == 3 && late && me == 1) {
      absl::SleepFor(absl::Seconds(4));
      // The others gave up on this rank while it slept: its operation fails at once, naming the
      // failure they announced.
      failure = Step(job);
      NMESH_RETURN_IF_ERROR(
          Check(absl::IsAborted(failure) &&
                    absl::StrContains(failure.message(), "mesh 'device_mesh' was revoked: rank ") &&
                    absl::StrContains(failure.message(), "timed out after 2 s"),
                "the late rank's operation: " + failure.ToString()));
      break;
    }
    failure = Step(job);
  }
  NMESH_RETURN_IF_ERROR(Check(!failure.ok(), "no step failed"));
  std::cerr << absl::StrFormat("rank %d: step failed: %s\n", me, failure.ToString());

  absl::StatusOr<RecoveryEvent> event = job.Recover(failure);
  if (dead) {
    return Check(absl::IsFailedPrecondition(event.status()) &&
                     absl::StrContains(event.status().message(), "rank 2 did not arrive") &&
                     absl::StrContains(event.status().message(), "on_failure rebuild"),
                 "rebuild with a dead rank: " + event.status().ToString());
  }
  NMESH_RETURN_IF_ERROR(event.status());
  std::cerr << absl::StrFormat(
      "rank %d: recovered: epoch %d dead [%s] world %d -> %d spare %d (agree %.2f s, rebuild "
      "%.2f s) culprit: %s\n",
      me, event->epoch, absl::StrJoin(event->dead, ","), event->world_before, event->world_after,
      event->spare, event->agree_seconds, event->rebuild_seconds, event->culprit);
  NMESH_RETURN_IF_ERROR(Check(event->epoch == 0 && job.epoch() == 1, "epoch"));
  NMESH_RETURN_IF_ERROR(Check(job.launch_rank() == me, "launch rank changed"));
  NMESH_RETURN_IF_ERROR(Check(event->culprit.rfind("rank ", 0) == 0, "culprit: " + event->culprit));
  if (shrink) {
    NMESH_RETURN_IF_ERROR(Check(event->dead == std::vector<int64_t>{2}, "dead"));
    NMESH_RETURN_IF_ERROR(Check(event->world_before == 4 && event->world_after == 2, "sizes"));
    // The survivors 0, 1, 3 are the new world's ranks 0, 1, 2.
    NMESH_RETURN_IF_ERROR(
        Check(job.world_size() == 3 && job.rank() == (me == 3 ? 2 : me),
              absl::StrFormat("new world: rank %d of %d", job.rank(), job.world_size())));
    // The dp slice holding rank 2 (tp pair {2, 3}) is dropped: rank 3 is the spare.
    NMESH_RETURN_IF_ERROR(Check(event->spare == (me == 3), "spare"));
    if (me != 3) {
      NMESH_RETURN_IF_ERROR(Check(job.model().is_member() && job.model().mesh->size() == 2,
                                  "the new mesh: " + job.model().mesh->DebugString()));
      for (int step = 0; step < 3; ++step) NMESH_RETURN_IF_ERROR(SumOver(job, "tp", {0, 1}));
    }
  } else {
    NMESH_RETURN_IF_ERROR(Check(event->dead.empty(), "dead"));
    NMESH_RETURN_IF_ERROR(Check(event->world_before == 4 && event->world_after == 4, "sizes"));
    NMESH_RETURN_IF_ERROR(
        Check(job.world_size() == 4 && job.rank() == me && !event->spare, "new world"));
    for (int step = 0; step < 3; ++step) NMESH_RETURN_IF_ERROR(Step(job));
  }
  NMESH_RETURN_IF_ERROR(SameEverywhere(job, *event));
  return job.host_world().Barrier();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: recover_store_main kill_shrink|late_rebuild|dead_rebuild STORE_URL\n";
    return 2;
  }
  const absl::Status status = Run(argv[1], argv[2]);
  if (!status.ok()) {
    std::cerr << absl::StrFormat("rank %d: FAILED: %s\n", nmesh::job::LauncherRank(),
                                 status.ToString());
    return 1;
  }
  std::cerr << absl::StrFormat("rank %d: ok\n", nmesh::job::LauncherRank());
  return 0;
}
