// The start-up agreement over a store at scale: one process of a store launch (RANK, WORLD_SIZE
// from the environment; bench/store_startup.sh starts N of them with scripts/launch.sh) opens the
// store, runs job::AgreeAtStartup over it with the record `nmesh run --tp 2` sends, and rank 0
// prints how long it took, from its own arrival to the verdict, as one JSON line:
//   {"world": 64, "agree_seconds": 0.0123, "open_seconds": 0.0004}
// The time includes waiting for the last process to arrive (process start skew on a loaded host).
//   build/bench/store_startup_bench redis://127.0.0.1:6379/bench64
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/job/environment.h"
#include "nmesh/job/launch.h"
#include "nmesh/job/startup.h"
#include "nmesh/mesh/plan.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: store_startup_bench URL (with RANK and WORLD_SIZE set)\n";
    return 2;
  }
  absl::StatusOr<nmesh::job::LaunchEnvironment> env = nmesh::job::ReadLaunchEnvironment();
  if (!env.ok()) {
    std::cerr << env.status().message() << "\n";
    return 2;
  }
  const absl::Time opening = absl::Now();
  absl::StatusOr<std::shared_ptr<nmesh::comm::Store>> store = nmesh::job::OpenJobStore(argv[1]);
  if (!store.ok()) {
    std::cerr << store.status().message() << "\n";
    return 1;
  }
  const absl::Time start = absl::Now();
  nmesh::config::MeshRequest request;
  request.sizes.world_size = env->size;
  request.sizes.tp = env->size % 2 == 0 ? 2 : 1;
  absl::StatusOr<nmesh::mesh::MeshPlan> plan = nmesh::mesh::PlanMesh(request);
  std::vector<const nmesh::mesh::MeshPlan*> plans;
  if (plan.ok()) plans.push_back(&*plan);
  const std::vector<std::string> names = {"device_mesh"};
  std::unique_ptr<nmesh::job::StartupExchange> exchange =
      nmesh::job::StoreStartupExchange(**store, env->rank, env->size, env->size_variable);
  absl::Status agreed = nmesh::job::AgreeAtStartup(
      *exchange,
      nmesh::job::MakeStartupRecord("run", "gloo", std::nullopt, plan.status(), plans, names),
      absl::Seconds(300));
  const absl::Time end = absl::Now();
  if (!agreed.ok()) {
    std::cerr << absl::StrFormat("rank %d: %s\n", env->rank, agreed.message());
    return 1;
  }
  if (env->rank == 0) {
    std::cout << absl::StrFormat(
        "{\"world\": %d, \"agree_seconds\": %.4f, \"open_seconds\": %.4f}\n", env->size,
        absl::ToDoubleSeconds(end - start), absl::ToDoubleSeconds(start - opening));
  }
  return 0;
}
