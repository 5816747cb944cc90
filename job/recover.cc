// Job::Recover and the monitor that revokes a job's meshes when another rank announces a failure
// (job/job.h, job/recovery.h).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/mpi/communicator.h"
#include "nmesh/comm/mpi/recovery_channel.h"
#include "nmesh/comm/store/store.h"
#include "nmesh/job/job.h"
#include "nmesh/job/launch.h"
#include "nmesh/job/startup.h"

namespace nmesh::job {
namespace {

// How often the monitor looks for an announcement.
constexpr absl::Duration kMonitorPoll = absl::Milliseconds(100);

std::string RankText(absl::Span<const int64_t> ranks) {
  return absl::StrCat(ranks.size() == 1 ? "rank " : "ranks ", absl::StrJoin(ranks, ", "));
}

// The launch ranks of `mesh`'s members (its plan's layout over the job's current world, whose
// rank r is launch rank members[r]), ascending.
std::vector<int64_t> LaunchRanksOf(const JobMesh& mesh, absl::Span<const int64_t> members) {
  std::vector<int64_t> ranks;
  const mesh::Layout& layout = mesh.plan->device_mesh();
  for (int64_t p = 0; p < layout.size(); ++p) {
    ranks.push_back(members[static_cast<size_t>(layout.RankAtPosition(p))]);
  }
  std::sort(ranks.begin(), ranks.end());
  return ranks;
}

}  // namespace

int64_t Job::epoch() const {
  std::lock_guard<std::mutex> lock(state_mu_);
  return epoch_;
}

std::optional<std::string> Job::AnnouncedFailure() {
  if (recovery_channel_ == nullptr || options_.on_failure == FailurePolicy::kAbort) {
    return std::nullopt;
  }
  return recovery_channel_->Announced(epoch());
}

void Job::RevokeAllLocked(const std::string& cause) {
  for (JobMesh& job_mesh : meshes_) {
    if (job_mesh.mesh.has_value()) (void)job_mesh.mesh->Revoke(cause);
  }
  if (backend_.owned != nullptr) (void)backend_.owned->Revoke("the world was revoked: " + cause);
  if (host_world_ != nullptr) (void)host_world_->Revoke("the host world was revoked: " + cause);
  revoked_epoch_ = epoch_;
}

absl::Status Job::EnableMpiRecovery(comm::mpi::Session& session) {
  // Recovery under mpirun: the channel is a duplicate of MPI's world (its monitor probes it from
  // its own thread, so MPI must run at the "multiple" thread level), and the survivors' world is
  // MPI's world again: under mpirun a rank that is gone ends the job, so no world of fewer ranks
  // is ever made (a shrink fails naming that).
  if (options_.on_failure != FailurePolicy::kAbort && session.thread_level() == "multiple") {
    NMESH_ASSIGN_OR_RETURN(recovery_channel_, comm::mpi::MpiRecoveryChannel::Create(session));
    const int world_size = session.world_size();
    make_survivors_world_ = [&session, world_size](
                                int64_t, int, int size, std::optional<absl::Duration> timeout,
                                absl::Time) -> absl::StatusOr<std::unique_ptr<comm::Communicator>> {
      if (size != world_size) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "under mpirun a rank that is gone ends the job: no world of %d of the %d ranks can be "
            "made (shrink needs a store launch)",
            size, world_size));
      }
      return comm::mpi::WorldCommunicator(session, {.name = "world", .timeout = timeout});
    };
    StartMonitor();
  }
  return absl::OkStatus();
}

void Job::StartMonitor() {
  if (recovery_channel_ == nullptr || monitor_.joinable()) return;
  monitor_ = std::thread([this] { MonitorLoop(); });
}

void Job::StopMonitor() {
  {
    std::lock_guard<std::mutex> lock(monitor_mu_);
    monitor_stop_ = true;
  }
  monitor_cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
}

void Job::MonitorLoop() {
  std::unique_lock<std::mutex> wait(monitor_mu_);
  while (!monitor_stop_) {
    monitor_cv_.wait_for(wait, absl::ToChronoNanoseconds(kMonitorPoll),
                         [&] { return monitor_stop_; });
    if (monitor_stop_) return;
    wait.unlock();
    // This process still runs (also while Recover waits in a meeting): a slow rank is not dead.
    (void)recovery_channel_->Alive(launch_rank_);
    int64_t epoch = 0;
    bool revoked = false;
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      revoked = revoked_epoch_ >= epoch_;  // revoked already: Recover runs or will run
      epoch = epoch_;
    }
    if (!revoked) {
      std::optional<std::string> cause = recovery_channel_->Announced(epoch);
      if (cause.has_value()) {
        std::lock_guard<std::mutex> lock(state_mu_);
        // Recover may have moved to a newer epoch meanwhile: its meshes are not this failure's.
        if (epoch_ == epoch && revoked_epoch_ < epoch_) RevokeAllLocked(*cause);
      }
    }
    wait.lock();
  }
}

absl::StatusOr<RecoveryEvent> Job::Recover(const absl::Status& cause) {
  const FailurePolicy policy = options_.on_failure;
  if (policy == FailurePolicy::kAbort) {
    if (cause.ok()) {
      return absl::InvalidArgumentError(
          "Job::Recover: the job's failure policy is abort, and the cause given is OK");
    }
    return cause;
  }
  const std::string policy_name(FailurePolicyName(policy));
  if (recovery_channel_ == nullptr || !make_survivors_world_) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "on_failure %s: this job has no recovery channel (under mpirun it needs MPI's "
        "\"multiple\" thread level); the failure was: %s",
        policy_name, cause.ok() ? "(none given)" : std::string(cause.message())));
  }
  const absl::Time start = absl::Now();
  const int64_t epoch = this->epoch();
  comm::RecoveryChannel& channel = *recovery_channel_;

  // 1. Announce (unless a rank did), then revoke everything here with the announced cause.
  std::optional<std::string> announced = channel.Announced(epoch);
  if (!announced.has_value()) {
    if (cause.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "Job::Recover: no failure has been announced (failure %d of the job), and the cause "
          "given is OK",
          epoch));
    }
    const std::string mine = absl::StrFormat("rank %d: %s", launch_rank_, cause.message());
    NMESH_RETURN_IF_ERROR(channel.Announce(epoch, mine));
    announced = channel.Announced(epoch).value_or(mine);
  }
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    RevokeAllLocked(*announced);
  }

  // 2. The survivors' meeting.
  const bool rebuild = policy == FailurePolicy::kRebuild;
  absl::StatusOr<comm::RecoveryVerdict> verdict =
      channel.Meet(epoch, {.launch_rank = launch_rank_,
                           .launch_size = launch_size_,
                           .gone = gone_,
                           .need_all = rebuild,
                           .quiet = options_.recovery_quiet,
                           .deadline = absl::Now() + startup_timeout_});
  if (!verdict.ok()) {
    if (rebuild && absl::IsDeadlineExceeded(verdict.status())) {
      return MarkAgreed(absl::FailedPreconditionError(absl::StrFormat(
          "on_failure rebuild: %s; the meshes cannot be rebuilt without them (on_failure shrink "
          "goes on without dead ranks)",
          verdict.status().message())));
    }
    return verdict.status();
  }
  RecoveryEvent event;
  event.action = policy;
  event.epoch = epoch;
  event.dead = verdict->dead;
  event.culprit = verdict->cause;
  const absl::Time agreed = absl::Now();
  event.agree_seconds = absl::ToDoubleSeconds(agreed - start);

  // The launch ranks of the old meshes, and each survivor's new rank.
  std::set<int64_t> before;
  for (const JobMesh& job_mesh : meshes_) {
    for (int64_t r : LaunchRanksOf(job_mesh, launch_ranks_)) before.insert(r);
  }
  event.world_before = static_cast<int64_t>(before.size());
  const std::vector<int64_t>& survivors = verdict->survivors;
  const auto me = std::lower_bound(survivors.begin(), survivors.end(), launch_rank_);
  const int new_rank = static_cast<int>(me - survivors.begin());
  const int new_size = static_cast<int>(survivors.size());
  // Current world rank -> new world rank (-1: dead).
  std::vector<int64_t> renumber(launch_ranks_.size(), -1);
  for (size_t r = 0; r < launch_ranks_.size(); ++r) {
    auto at = std::lower_bound(survivors.begin(), survivors.end(), launch_ranks_[r]);
    if (at != survivors.end() && *at == launch_ranks_[r]) renumber[r] = at - survivors.begin();
  }

  // 3. The new meshes' specs and plans, over the survivors' world. Pure: every survivor reaches
  // the same ones, or the same error.
  std::vector<JobMesh> next;
  std::vector<int64_t> dead_here;  // the dead, as ranks of the current world
  for (size_t r = 0; r < launch_ranks_.size(); ++r) {
    if (renumber[r] < 0) dead_here.push_back(static_cast<int64_t>(r));
  }
  if (rebuild && !dead_here.empty()) {
    // The meeting waited for every rank, so this cannot happen; say so rather than go on.
    return MarkAgreed(absl::FailedPreconditionError(
        absl::StrFormat("on_failure rebuild: %s did not come back after failure %d",
                        RankText(verdict->dead), epoch)));
  }
  for (const JobMesh& old : meshes_) {
    JobMesh fresh;
    fresh.nccl_status = old.nccl_status;
    if (rebuild) {
      fresh.spec = old.spec;
      fresh.plan = old.plan;
      next.push_back(std::move(fresh));
      continue;
    }
    absl::StatusOr<ShrunkMesh> shrunk = PlanShrink(old.spec, *old.plan, dead_here);
    if (!shrunk.ok()) {
      return MarkAgreed(
          absl::Status(shrunk.status().code(),
                       absl::StrFormat("on_failure shrink after failure %d (%s lost): %s", epoch,
                                       RankText(verdict->dead), shrunk.status().message())));
    }
    fresh.spec = std::move(shrunk->spec);
    // The mesh's ranks, from the current world's numbering to the new world's.
    std::vector<int64_t> ranks;
    if (fresh.spec.request.ranks.has_value()) {
      ranks = *fresh.spec.request.ranks;
    } else {
      const mesh::Layout& layout = old.plan->device_mesh();
      for (int64_t p = 0; p < layout.size(); ++p) ranks.push_back(layout.RankAtPosition(p));
    }
    for (int64_t& r : ranks) {
      if (r < 0 || r >= static_cast<int64_t>(renumber.size()) ||
          renumber[static_cast<size_t>(r)] < 0) {
        return MarkAgreed(absl::InternalError(
            absl::StrFormat("on_failure shrink: mesh '%s' kept rank %d, which is not a survivor",
                            old.spec.label, r)));
      }
      r = renumber[static_cast<size_t>(r)];
    }
    fresh.spec.request.sizes.world_size = static_cast<int64_t>(ranks.size());
    fresh.spec.request.job_world_size = new_size;
    fresh.spec.request.ranks = std::move(ranks);
    absl::StatusOr<mesh::MeshPlan> plan = PlanMeshSpec(fresh.spec);
    if (!plan.ok()) {
      return MarkAgreed(absl::Status(
          plan.status().code(), absl::StrFormat("on_failure shrink: mesh '%s': %s", old.spec.label,
                                                plan.status().message())));
    }
    fresh.plan = *std::move(plan);
    next.push_back(std::move(fresh));
  }

  // 4. Tear down the old meshes and worlds, make the survivors' world, choose the backend again,
  // build the meshes as Start does.
  std::vector<int64_t> survivors_here;  // the survivors, as ranks of the current world
  for (size_t r = 0; r < renumber.size(); ++r) {
    if (renumber[r] >= 0) survivors_here.push_back(static_cast<int64_t>(r));
  }
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    for (JobMesh& job_mesh : meshes_) {
      job_mesh.context.reset();
      job_mesh.mesh.reset();
    }
    backend_ = Backend();
    host_world_.reset();
  }
  absl::Status built = [&]() -> absl::Status {
    NMESH_ASSIGN_OR_RETURN(host_world_, make_survivors_world_(epoch, new_rank, new_size, timeout_,
                                                              absl::Now() + startup_timeout_));
    std::vector<std::string> hosts;
    for (int64_t r : survivors_here) hosts.push_back(topology_.host_names[static_cast<size_t>(r)]);
    NMESH_ASSIGN_OR_RETURN(comm::Topology topo, comm::TopologyFromHostNames(hosts, new_rank));
    // The device this process drives does not change.
    topo.local_rank = topology_.local_rank;
    topo.local_size = topology_.local_size;
    topology_ = std::move(topo);
    std::shared_ptr<comm::Store> scoped;  // the backend's keys of this epoch (NCCL's bootstrap)
    if (store_ != nullptr) {
      NMESH_ASSIGN_OR_RETURN(
          scoped, comm::store::WithPrefix(store_, absl::StrCat("recover/", epoch, "/backend")));
    }
    NMESH_ASSIGN_OR_RETURN(backend_,
                           ChooseBackend(options_.backend, *host_world_, topology_, timeout_,
                                         options_.nccl_ranks_per_root, scoped.get()));
    rank_ = new_rank;
    world_size_ = new_size;
    launch_ranks_ = survivors;
    meshes_ = std::move(next);
    return BuildMeshes();
  }();
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    for (int64_t r : verdict->dead) gone_.push_back(r);
    std::sort(gone_.begin(), gone_.end());
    epoch_ = epoch + 1;
  }
  if (!built.ok()) {
    for (JobMesh& job_mesh : meshes_) {
      job_mesh.context.reset();
      job_mesh.mesh.reset();
    }
    return absl::Status(built.code(), absl::StrFormat("on_failure %s after failure %d: %s",
                                                      policy_name, epoch, built.message()));
  }
  std::set<int64_t> after;
  bool member = false;
  for (const JobMesh& job_mesh : meshes_) {
    member = member || job_mesh.is_member();
    for (int64_t r : LaunchRanksOf(job_mesh, launch_ranks_)) after.insert(r);
  }
  event.world_after = static_cast<int64_t>(after.size());
  event.spare = !member;
  event.rebuild_seconds = absl::ToDoubleSeconds(absl::Now() - agreed);
  return event;
}

}  // namespace nmesh::job
