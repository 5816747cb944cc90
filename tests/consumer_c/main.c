/* An engine that uses nothing of nmesh but its C interface, from an installed prefix: no C++
 * compiler, no Abseil, no MPI headers. Built and run by run_consumer_c.cmake at np 4 over a recipe
 * (examples/fsdp2_tp2_cp2.yaml: fsdp2, tp 2, cp 2): the mesh is (pp 1, dp_replicate 1, dp_shard
 * 1, cp 2, tp 2), row-major, tp fastest, so by hand the tp group of rank r is {2*(r/2),
 * 2*(r/2)+1} and its cp group {r%2, r%2+2}. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nmesh/c/nmesh.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: consumer_c RECIPE\n");
    return 2;
  }
  nmesh_job_options options;
  nmesh_job_options_init(&options);
  options.recipe_path = argv[1];
  options.backend = "mpi";
  options.comm_sharing = NMESH_COMM_SHARING_NAME;
  nmesh_job* job = NULL;
  if (nmesh_job_start(&options, &argc, &argv, &job) != NMESH_OK) {
    fprintf(stderr, "consumer_c: %s\n", nmesh_last_error());
    if (!nmesh_last_error_agreed()) nmesh_abort_job(1);
    return 2;
  }
  int64_t rank = -1;
  nmesh_job_rank(job, &rank);
  int failures = 0;
  nmesh_mesh* mesh = NULL;
  nmesh_comm *tp = NULL, *cp = NULL, *dp_shard_cp = NULL;
  if (nmesh_job_mesh(job, 0, &mesh) != NMESH_OK ||
      nmesh_mesh_comm(mesh, NMESH_AXIS_TP, &tp) != NMESH_OK ||
      nmesh_mesh_comm(mesh, NMESH_AXIS_CP, &cp) != NMESH_OK ||
      nmesh_mesh_comm(mesh, NMESH_AXIS_DP_SHARD_CP, &dp_shard_cp) != NMESH_OK) {
    fprintf(stderr, "consumer_c: rank %lld: %s\n", (long long)rank, nmesh_last_error());
    nmesh_abort_job(1);
  }
  nmesh_context_sizes sizes;
  if (nmesh_mesh_context_sizes(mesh, &sizes) != NMESH_OK || sizes.tp_size != 2 ||
      sizes.cp_size != 2 || sizes.dp_shard_size != 1) {
    fprintf(stderr, "consumer_c: rank %lld: wrong context sizes\n", (long long)rank);
    ++failures;
  }
  /* One communicator per name: cp and dp_shard_cp split the ranks alike but are two. */
  if (cp == dp_shard_cp) {
    fprintf(stderr, "consumer_c: rank %lld: cp and dp_shard_cp share a communicator\n",
            (long long)rank);
    ++failures;
  }
  int64_t tp_sum = rank, cp_sum = rank;
  nmesh_work* work = NULL;
  if (nmesh_all_reduce(tp, &tp_sum, &tp_sum, 1, NMESH_INT64, NMESH_SUM) != NMESH_OK ||
      nmesh_all_reduce_async(cp, &cp_sum, &cp_sum, 1, NMESH_INT64, NMESH_MAX, NULL, &work) !=
          NMESH_OK ||
      nmesh_work_wait(work, 60.0) != NMESH_OK) {
    fprintf(stderr, "consumer_c: rank %lld: %s\n", (long long)rank, nmesh_last_error());
    nmesh_abort_job(1);
  }
  nmesh_work_free(work);
  const int64_t tp_base = rank / 2 * 2;
  if (tp_sum != 2 * tp_base + 1) {
    fprintf(stderr, "consumer_c: rank %lld: tp sum %lld\n", (long long)rank, (long long)tp_sum);
    ++failures;
  }
  if (cp_sum != rank % 2 + 2) {
    fprintf(stderr, "consumer_c: rank %lld: cp max %lld\n", (long long)rank, (long long)cp_sum);
    ++failures;
  }
  int64_t handle = 0;
  if (nmesh_comm_mpi_fortran_handle(tp, &handle) != NMESH_OK) ++failures;
  if (failures > 0) nmesh_abort_job(1);
  printf("consumer_c: rank %lld: ok (nmesh %s)\n", (long long)rank, nmesh_version());
  nmesh_job_destroy(job);
  return 0;
}
