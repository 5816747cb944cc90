/* An engine written in C: nmesh's C interface (nmesh/c/nmesh.h) starts the job's mesh, and one
 * fake training step runs over the axes' communicators, every result checked against values
 * worked out here from the mesh's shape. Run from the repository root:
 *
 *   scripts/mpirun.sh -np 4 build/examples/c_step            # fsdp2, tp 2: (dp_shard = np/2, tp 2)
 *
 * The step (host buffers: the MPI backend):
 *   1. tp: all_reduce (blocking) and reduce_scatter;
 *   2. dp_shard: all_gather (asynchronous, waited with a timeout), broadcast, all_to_all and an
 *      uneven all_to_all_v (MoE dispatch);
 *   3. tp: both partners send first, inside a batch (a pipeline exchange), then a barrier;
 *   4. native handles: the tp communicator's MPI_Comm runs an MPI_Allreduce of its own, and the
 *      size-1 pp axis is MPI_COMM_SELF;
 *   5. errors: a misspelt axis is NMESH_ERR_NOT_FOUND with a message, never a crash.
 * Exit code: 0 when every rank's results are right, 1 otherwise, 2 for a start-up error. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nmesh/c/nmesh.h"

static int64_t rank_;
static int failures_;

/* Reports a failed call or check on this rank. */
static void Check(int ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "c_step: rank %lld: %s\n", (long long)rank_, what);
    ++failures_;
  }
}
static void CheckOk(nmesh_result result, const char* what) {
  if (result != NMESH_OK) {
    fprintf(stderr, "c_step: rank %lld: %s failed: %s: %s\n", (long long)rank_, what,
            nmesh_result_name(result), nmesh_last_error());
    ++failures_;
  }
}

int main(int argc, char** argv) {
  nmesh_job_options options;
  nmesh_job_options_init(&options);
  options.tp = 2;
  options.backend = "mpi"; /* host buffers below */
  options.timeout_seconds = 120;
  nmesh_job* job = NULL;
  if (nmesh_job_start(&options, &argc, &argv, &job) != NMESH_OK) {
    fprintf(stderr, "c_step: %s\n", nmesh_last_error());
    if (!nmesh_last_error_agreed()) nmesh_abort_job(1);
    return 2;
  }
  int64_t world = 0;
  nmesh_job_rank(job, &rank_);
  nmesh_job_world_size(job, &world);
  nmesh_mesh* model = NULL;
  CheckOk(nmesh_job_my_mesh(job, &model), "nmesh_job_my_mesh");
  nmesh_comm *tp = NULL, *dp = NULL, *pp = NULL;
  CheckOk(nmesh_mesh_comm(model, NMESH_AXIS_TP, &tp), "comm tp");
  CheckOk(nmesh_mesh_comm(model, NMESH_AXIS_DP_SHARD, &dp), "comm dp_shard");
  CheckOk(nmesh_mesh_comm(model, NMESH_AXIS_PP, &pp), "comm pp");
  if (failures_ > 0) nmesh_abort_job(1);

  /* The layout, by hand: fsdp2 with tp 2 is (pp 1, dp_replicate 1, dp_shard W/2, cp 1, tp 2),
   * row-major, tp fastest. tp group: {2*(r/2), 2*(r/2)+1}; dp_shard group: r%2, r%2+2, ... */
  const int64_t shards = world / 2;
  const int64_t tp_base = rank_ / 2 * 2, tp_me = rank_ % 2;
  const int64_t dp_me = rank_ / 2;
  int size = 0, me = 0;
  nmesh_comm_size(tp, &size);
  nmesh_comm_rank(tp, &me);
  Check(size == 2 && me == tp_me, "tp has the wrong size or rank");
  nmesh_comm_size(dp, &size);
  nmesh_comm_rank(dp, &me);
  Check(size == shards && me == dp_me, "dp_shard has the wrong size or rank");
  nmesh_context_sizes sizes;
  CheckOk(nmesh_mesh_context_sizes(model, &sizes), "context sizes");
  Check(sizes.tp_size == 2 && sizes.dp_shard_size == shards && sizes.pp_size == 1 &&
            sizes.dp_replicate_size == 1 && sizes.dp_size == shards,
        "the context's sizes are wrong");

  /* 1. tp: all_reduce of the global ranks, in place; reduce_scatter of two blocks. */
  int64_t sum = rank_;
  CheckOk(nmesh_all_reduce(tp, &sum, &sum, 1, NMESH_INT64, NMESH_SUM), "all_reduce");
  Check(sum == tp_base + tp_base + 1, "tp all_reduce gave a wrong sum");
  double blocks[2] = {rank_ * 1.0, rank_ * 10.0}, mine = -1;
  CheckOk(nmesh_reduce_scatter(tp, blocks, &mine, 1, NMESH_FLOAT64, NMESH_SUM), "reduce_scatter");
  Check(mine == (tp_me == 0 ? (2.0 * tp_base + 1) : 10.0 * (2 * tp_base + 1)),
        "tp reduce_scatter gave a wrong block");

  /* 2. dp_shard. */
  int64_t* gathered = calloc((size_t)shards, sizeof(int64_t));
  nmesh_work* work = NULL;
  CheckOk(nmesh_all_gather_async(dp, &rank_, gathered, 1, NMESH_INT64, NULL, &work),
          "all_gather_async");
  CheckOk(nmesh_work_wait(work, 60.0), "wait all_gather");
  nmesh_work_free(work);
  for (int64_t k = 0; k < shards; ++k) {
    Check(gathered[k] == rank_ % 2 + 2 * k, "dp_shard all_gather put a wrong rank");
  }
  int32_t from_root = (int32_t)rank_;
  CheckOk(nmesh_broadcast(dp, &from_root, 1, NMESH_INT32, 0), "broadcast");
  Check(from_root == rank_ % 2, "dp_shard broadcast gave a wrong value");
  int64_t* tokens = calloc((size_t)shards, sizeof(int64_t));
  int64_t* routed = calloc((size_t)shards, sizeof(int64_t));
  for (int64_t k = 0; k < shards; ++k) tokens[k] = rank_ * 100 + k;
  CheckOk(nmesh_all_to_all(dp, tokens, routed, 1, NMESH_INT64), "all_to_all");
  for (int64_t k = 0; k < shards; ++k) {
    Check(routed[k] == (rank_ % 2 + 2 * k) * 100 + dp_me, "all_to_all routed a wrong token");
  }
  /* Uneven: peer k gets k + me + 1 values, each (sender's global rank) * 1000 + index. */
  size_t *send_counts = calloc((size_t)shards, sizeof(size_t)),
         *send_displs = calloc((size_t)shards, sizeof(size_t)),
         *recv_counts = calloc((size_t)shards, sizeof(size_t)),
         *recv_displs = calloc((size_t)shards, sizeof(size_t));
  size_t send_total = 0, recv_total = 0;
  for (int64_t k = 0; k < shards; ++k) {
    send_counts[k] = recv_counts[k] = (size_t)(k + dp_me + 1);
    send_displs[k] = send_total;
    recv_displs[k] = recv_total;
    send_total += send_counts[k];
    recv_total += recv_counts[k];
  }
  int32_t* send = calloc(send_total, sizeof(int32_t));
  int32_t* recv = calloc(recv_total, sizeof(int32_t));
  for (int64_t k = 0; k < shards; ++k) {
    for (size_t j = 0; j < send_counts[k]; ++j)
      send[send_displs[k] + j] = (int32_t)(rank_ * 1000 + j);
  }
  CheckOk(nmesh_all_to_all_v_async(dp, send, send_counts, send_displs, recv, recv_counts,
                                   recv_displs, NMESH_INT32, NULL, &work),
          "all_to_all_v_async");
  int done = 0;
  while (!done && nmesh_work_test(work, &done) == NMESH_OK) {
  }
  CheckOk(nmesh_work_wait(work, 60.0), "wait all_to_all_v");
  nmesh_work_free(work);
  for (int64_t k = 0; k < shards; ++k) {
    for (size_t j = 0; j < recv_counts[k]; ++j) {
      Check(recv[recv_displs[k] + j] == (int32_t)((rank_ % 2 + 2 * k) * 1000 + (int64_t)j),
            "all_to_all_v delivered a wrong value");
    }
  }

  /* 3. tp partners both send first: a batch issues the pair together. */
  int64_t out = rank_, in = -1;
  nmesh_batch* batch = NULL;
  nmesh_work *sent = NULL, *received = NULL, *all = NULL;
  CheckOk(nmesh_batch_begin(&batch), "batch_begin");
  CheckOk(nmesh_send_async(tp, &out, 1, NMESH_INT64, 1 - (int)tp_me, NULL, &sent), "send_async");
  CheckOk(nmesh_recv_async(tp, &in, 1, NMESH_INT64, 1 - (int)tp_me, NULL, &received), "recv_async");
  CheckOk(nmesh_batch_end(batch, &all), "batch_end");
  CheckOk(nmesh_work_wait(all, 60.0), "wait batch");
  nmesh_work_free(all);
  nmesh_work_free(sent);
  nmesh_work_free(received);
  Check(in == tp_base + (1 - tp_me), "the tp partner's message is wrong");
  CheckOk(nmesh_barrier(tp), "barrier");

  /* 4. Native handles. */
  int64_t handle = 0;
  CheckOk(nmesh_comm_mpi_fortran_handle(tp, &handle), "mpi handle");
  MPI_Comm raw = MPI_Comm_f2c((MPI_Fint)handle);
  MPI_Comm copied = MPI_COMM_NULL;
  CheckOk(nmesh_comm_mpi_comm(tp, &copied, sizeof(copied)), "mpi comm");
  Check(raw == copied, "the two forms of the MPI handle differ");
  int64_t raw_sum = 0;
  Check(MPI_Allreduce(&rank_, &raw_sum, 1, MPI_INT64_T, MPI_SUM, raw) == MPI_SUCCESS &&
            raw_sum == tp_base + tp_base + 1,
        "MPI_Allreduce on tp's MPI_Comm gave a wrong sum");
  CheckOk(nmesh_comm_mpi_fortran_handle(pp, &handle), "pp mpi handle");
  Check(MPI_Comm_f2c((MPI_Fint)handle) == MPI_COMM_SELF, "the size-1 pp axis is not MPI_COMM_SELF");
  void* nccl = NULL;
  Check(nmesh_comm_nccl_comm(tp, &nccl) != NMESH_OK && nccl == NULL,
        "an MPI communicator gave an NCCL handle");

  /* 5. Errors come back as codes and messages. */
  nmesh_comm* typo = NULL;
  Check(nmesh_mesh_comm(model, "tpp", &typo) == NMESH_ERR_NOT_FOUND && typo == NULL &&
            strstr(nmesh_last_error(), "'tpp'") != NULL,
        "a misspelt axis was not NOT_FOUND naming it");
  Check(nmesh_all_reduce(NULL, &sum, &sum, 1, NMESH_INT64, NMESH_SUM) == NMESH_ERR_INVALID_ARGUMENT,
        "a NULL communicator was not INVALID_ARGUMENT");
  Check(
      nmesh_all_reduce(tp, &sum, &sum, 1, (nmesh_dtype)42, NMESH_SUM) == NMESH_ERR_INVALID_ARGUMENT,
      "an unknown dtype was not INVALID_ARGUMENT");

  free(gathered);
  free(tokens);
  free(routed);
  free(send_counts);
  free(send_displs);
  free(recv_counts);
  free(recv_displs);
  free(send);
  free(recv);
  if (failures_ > 0) nmesh_abort_job(1);
  const char* names = NULL;
  size_t communicators = 0;
  nmesh_mesh_communicator_count(model, &communicators);
  nmesh_mesh_communicator_names(model, communicators - 1, &names);
  printf("c_step: rank %lld: step ok (tp %d, dp_shard %lld; %zu communicators, last %s)\n",
         (long long)rank_, 2, (long long)shards, communicators, names);
  nmesh_job_destroy(job);
  return 0;
}
