// An engine's start-up and one fake training step over nmesh's communicators, every result
// checked. Run from the repository root (the default recipe is a path from there):
//
//   scripts/mpirun.sh -np 8 build/examples/engine_step [RECIPE]
//
// The step does what a training step's communication does, on small host buffers (the MPI
// backend; on NCCL the same calls take device buffers, see Communicator::AllocateBuffer):
//   1. pipeline: stage s sends its activations to stage s+1, which sends gradients back (pp);
//   2. tensor parallelism: all_gather of each rank's activation shard (tp);
//   3. expert parallelism: all_to_all of tokens to the ranks holding their experts (ep, moe mesh);
//   4. data parallelism: all_reduce of the gradients over the parameter-sharding group
//      (dp_shard_cp).
// docs/GUIDE.md walks through this file. Exit code: 0 when every rank's results are right, 1 when
// one is wrong or a collective fails, 2 for a bad recipe.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "nmesh/nmesh.h"

namespace {

using nmesh::comm::Communicator;

// The global ranks of this rank's group `name`, in group order, from the plan (the layout the
// communicators must match).
std::vector<int64_t> PlannedGroup(const nmesh::job::JobMesh& m, int64_t rank,
                                  const std::string& name) {
  return m.plan->ViewGroup(rank, name)->Ranks();
}

// Each check returns an error naming what differs, or OK.
absl::Status Expect(bool ok, const std::string& what) {
  return ok ? absl::OkStatus() : absl::InternalError(what);
}

// 1. Pipeline: stage s receives activations from stage s-1, sends its own to s+1, receives the
// gradient back from s+1 and sends one back to s-1. Each stage receives before it sends, so the
// chain cannot deadlock. An activation carries its sender's global rank, a gradient that plus 0.5.
absl::Status PipelineStep(Communicator& pp, const std::vector<int64_t>& pp_group, int64_t rank) {
  const int stage = pp.rank();
  const int last = pp.size() - 1;
  std::vector<float> from_previous(4, -1.0f);
  if (stage > 0) {
    NMESH_RETURN_IF_ERROR(pp.Recv<float>(absl::MakeSpan(from_previous), stage - 1));
    NMESH_RETURN_IF_ERROR(
        Expect(from_previous == std::vector<float>(4, static_cast<float>(pp_group[stage - 1])),
               "pp: the activation from the previous stage is wrong"));
  }
  if (stage < last) {
    const std::vector<float> activation(4, static_cast<float>(rank));
    NMESH_RETURN_IF_ERROR(pp.Send<float>(absl::MakeConstSpan(activation), stage + 1));
    std::vector<float> grad(4, -1.0f);
    NMESH_RETURN_IF_ERROR(pp.Recv<float>(absl::MakeSpan(grad), stage + 1));
    NMESH_RETURN_IF_ERROR(Expect(grad == std::vector<float>(4, static_cast<float>(rank) + 0.5f),
                                 "pp: the gradient from the next stage is wrong"));
  }
  if (stage > 0) {
    const std::vector<float> grad(4, from_previous[0] + 0.5f);
    NMESH_RETURN_IF_ERROR(pp.Send<float>(absl::MakeConstSpan(grad), stage - 1));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string recipe = argc > 1 ? argv[1] : "examples/engine_pp2_tp2_ep2.yaml";

  // ---- Start-up ---------------------------------------------------------------------------------
  nmesh::job::JobOptions options;
  options.mesh.config_path = recipe;
  options.backend = nmesh::job::BackendChoice::kMpi;              // host buffers below
  nmesh::job::MpiJob started = nmesh::job::StartMpiJob(options);  // MPI, then Job::Start
  if (!started.status.ok()) {
    // The same error on every rank (a bad recipe): rank 0 says it and all exit in order.
    // Otherwise other ranks may be blocked waiting for this one: end the whole job.
    const bool agreed = nmesh::job::IsAgreed(started.status);
    if (!agreed || nmesh::job::LauncherRank() == 0) {
      std::cerr << "engine_step: " << started.status.message() << "\n";
    }
    if (!agreed) nmesh::job::EndJob(started.status, 1);
    return 2;
  }
  nmesh::job::Job& job = *started.job;
  nmesh::job::JobMesh& model = job.model();  // the only mesh of this recipe
  const nmesh::mesh::MeshContext& context = *model.context;
  const int64_t rank = job.rank();
  namespace axis = nmesh::mesh::axis;  // the names as constants: a typo does not compile
  Communicator* pp = model.mesh->FindComm(axis::kPp);
  Communicator* tp = model.mesh->FindComm(axis::kTp);
  Communicator* dp = model.mesh->FindComm(axis::kDpShardCp);
  Communicator* ep = model.mesh->moe_mesh()->FindComm(axis::kEp);
  if (pp == nullptr || tp == nullptr || dp == nullptr || ep == nullptr) {
    std::cerr << "engine_step: the recipe's mesh lacks pp, tp, dp_shard_cp or ep\n";
    return 2;
  }

  // ---- One training step ------------------------------------------------------------------------
  auto step = [&]() -> absl::Status {
    // 1. Pipeline.
    NMESH_RETURN_IF_ERROR(PipelineStep(*pp, PlannedGroup(model, rank, "pp"), rank));

    // 2. Tensor parallelism: each rank holds 3 activation values; all_gather concatenates the
    //    shards in tp order.
    const std::vector<int64_t> tp_group = PlannedGroup(model, rank, "tp");
    std::vector<float> shard = {rank * 10.0f, rank * 10.0f + 1, rank * 10.0f + 2};
    std::vector<float> full(3 * tp_group.size(), -1.0f);
    NMESH_RETURN_IF_ERROR(tp->AllGather<float>(shard, absl::MakeSpan(full)));
    for (size_t i = 0; i < tp_group.size(); ++i) {
      for (size_t j = 0; j < 3; ++j) {
        NMESH_RETURN_IF_ERROR(Expect(full[3 * i + j] == tp_group[i] * 10.0f + j,
                                     "tp: all_gather put a wrong value in the full activation"));
      }
    }

    // 3. Expert parallelism: 2 tokens for each ep peer; token j for peer k carries
    //    (sender rank, k, j), so every receiver can check where each token came from.
    const std::vector<int64_t> ep_group = PlannedGroup(model, rank, "ep");
    const size_t peers = ep_group.size();
    std::vector<int64_t> tokens(2 * peers), routed(2 * peers, -1);
    for (size_t k = 0; k < peers; ++k) {
      for (size_t j = 0; j < 2; ++j) tokens[2 * k + j] = rank * 100 + k * 10 + j;
    }
    NMESH_RETURN_IF_ERROR(ep->AllToAll<int64_t>(tokens, absl::MakeSpan(routed)));
    for (size_t k = 0; k < peers; ++k) {
      for (size_t j = 0; j < 2; ++j) {
        const int64_t expected = ep_group[k] * 100 + ep->rank() * 10 + static_cast<int64_t>(j);
        NMESH_RETURN_IF_ERROR(Expect(routed[2 * k + j] == expected,
                                     "ep: all_to_all delivered a token to the wrong expert rank"));
      }
    }

    // 4. Data parallelism: gradients summed over the parameter-sharding group.
    const std::vector<int64_t> dp_group = PlannedGroup(model, rank, "dp_shard_cp");
    std::vector<double> grad = {1.0 * rank, 1.0 * rank + 0.25};
    NMESH_RETURN_IF_ERROR(
        dp->AllReduce<double>(grad, absl::MakeSpan(grad), nmesh::comm::ReduceOp::kSum));
    double sum = 0;
    for (int64_t member : dp_group) sum += static_cast<double>(member);
    return Expect(grad[0] == sum && grad[1] == sum + 0.25 * dp_group.size(),
                  "dp_shard_cp: all_reduce gave a wrong gradient sum");
  };
  if (absl::Status s = step(); !s.ok()) {
    std::cerr << absl::StrFormat("engine_step: rank %d: %s\n", rank, s.message());
    nmesh::comm::mpi::Session::AbortJob(1);
  }
  std::cout << absl::StrFormat(
      "engine_step: rank %d: step ok (pp %d of %d, tp %d, ep %d, dp_shard_cp %d)\n", rank,
      pp->rank(), context.sizes().pp_size(), context.sizes().tp_size(), context.sizes().ep_size(),
      dp->size());
  return 0;
}
