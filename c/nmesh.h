/* nmesh's C interface: start a job's meshes, reach each axis's communicator, run collectives
 * (blocking, or asynchronous with a work handle) and get the native MPI and NCCL handles, from C
 * or any language that calls C. Plain C11 (also valid C++): opaque handles, result codes and a
 * thread-local last-error string; no Abseil, no C++ types, no MPI, CUDA or NCCL headers. Link
 * libnmesh_c (a shared library carrying the rest of nmesh): `cc app.c -lnmesh_c`, or
 * `pkg-config --cflags --libs nmesh-c`, or CMake's `nmesh::c`.
 *
 *   nmesh_job_options options;
 *   nmesh_job_options_init(&options);
 *   options.recipe_path = "recipe.yaml";          // or the sizes: options.tp = 2; ...
 *   nmesh_job* job = NULL;
 *   if (nmesh_job_start(&options, &argc, &argv, &job) != NMESH_OK) {
 *     fprintf(stderr, "%s\n", nmesh_last_error());
 *     if (!nmesh_last_error_agreed()) nmesh_abort_job(1);   // others may wait for this rank
 *     return 2;
 *   }
 *   nmesh_mesh* model = NULL;
 *   nmesh_job_my_mesh(job, &model);                 // the mesh this rank is a member of
 *   nmesh_comm* tp = NULL;
 *   nmesh_mesh_comm(model, NMESH_AXIS_TP, &tp);     // "ep"/"ep_shard" reach the moe mesh
 *   float grad[1024];
 *   nmesh_work* work = NULL;
 *   nmesh_all_reduce_async(tp, grad, grad, 1024, NMESH_FLOAT32, NMESH_SUM, NULL, &work);
 *   nmesh_work_wait(work, 30.0);                    // or nmesh_work_test
 *   nmesh_work_free(work);
 *   nmesh_job_destroy(job);                         // communicators, then MPI (if nmesh began it)
 *
 * Results. Every function returns an nmesh_result: NMESH_OK, or a code whose values are the
 * canonical error codes (the same numbers as gRPC and Abseil): NMESH_ERR_INVALID_ARGUMENT for bad
 * configuration or arguments, NMESH_ERR_FAILED_PRECONDITION for misuse (a non-member asking for a
 * group, a handle used after an abort), NMESH_ERR_DEADLINE_EXCEEDED for timeouts, ...; then
 * nmesh_last_error() holds the message (e.g. "all_reduce on axis 'tp' timed out after 30 s (rank
 * 3 of 8)"). No C++ exception crosses this interface: one is reported as NMESH_ERR_INTERNAL. A
 * null handle or out-pointer is NMESH_ERR_INVALID_ARGUMENT, never a crash.
 *
 * Memory. Buffers live where the communicator's memory kind says (nmesh_comm_memory_kind): host
 * memory on MPI and for size-1 groups of an MPI job, device memory on NCCL. The semantics of each
 * operation (counts, in-place layouts, matching calls on every rank) are those of
 * nmesh/comm/communicator.h.
 *
 * Lifetimes. nmesh_job owns its meshes and communicators: the nmesh_mesh and nmesh_comm handles
 * are borrowed and valid until nmesh_job_destroy. Work handles are the caller's
 * (nmesh_work_free); their buffers must stay valid until the operation completes. Strings
 * returned through `const char**` belong to the object they describe.
 *
 * Threads. nmesh_last_error is per thread. A communicator is used by one thread at a time; two
 * names that share one communicator (see nmesh_job_options.comm_sharing) are one communicator. */
#ifndef NMESH_C_NMESH_H_
#define NMESH_C_NMESH_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define NMESH_C_API
#else
#define NMESH_C_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Results and errors ------------------------------------------------------------------- */

typedef enum nmesh_result {
  NMESH_OK = 0,
  NMESH_ERR_CANCELLED = 1,
  NMESH_ERR_UNKNOWN = 2,
  NMESH_ERR_INVALID_ARGUMENT = 3,
  NMESH_ERR_DEADLINE_EXCEEDED = 4,
  NMESH_ERR_NOT_FOUND = 5,
  NMESH_ERR_ALREADY_EXISTS = 6,
  NMESH_ERR_PERMISSION_DENIED = 7,
  NMESH_ERR_RESOURCE_EXHAUSTED = 8,
  NMESH_ERR_FAILED_PRECONDITION = 9,
  NMESH_ERR_ABORTED = 10,
  NMESH_ERR_OUT_OF_RANGE = 11,
  NMESH_ERR_UNIMPLEMENTED = 12,
  NMESH_ERR_INTERNAL = 13,
  NMESH_ERR_UNAVAILABLE = 14,
  NMESH_ERR_DATA_LOSS = 15
} nmesh_result;

/* The message of the last call on this thread that did not return NMESH_OK ("" when none). Valid
 * until the thread's next failing call. */
NMESH_C_API const char* nmesh_last_error(void);
/* 1 when that failure is the same on every rank (a configuration error, found before any rank
 * could be left waiting): every rank may exit in order, rank 0 reporting it. 0 when it is this
 * rank's alone and other ranks may be blocked waiting for it: end the job (nmesh_abort_job). */
NMESH_C_API int nmesh_last_error_agreed(void);
/* "OK", "INVALID_ARGUMENT", ... ("UNKNOWN" for a value outside the enum). */
NMESH_C_API const char* nmesh_result_name(nmesh_result result);
/* nmesh's version, "0.1.0". */
NMESH_C_API const char* nmesh_version(void);

/* ---- Names -------------------------------------------------------------------------------- */

/* The mesh axis and group names, for nmesh_mesh_comm (spelt once, so that a typo does not
 * compile). */
#define NMESH_AXIS_PP "pp"
#define NMESH_AXIS_DP "dp"
#define NMESH_AXIS_DP_REPLICATE "dp_replicate"
#define NMESH_AXIS_DP_SHARD "dp_shard"
#define NMESH_AXIS_DP_SHARD_CP "dp_shard_cp"
#define NMESH_AXIS_DP_CP "dp_cp"
#define NMESH_AXIS_CP "cp"
#define NMESH_AXIS_TP "tp"
#define NMESH_AXIS_EP "ep"
#define NMESH_AXIS_EP_SHARD "ep_shard"

/* Element types of collective buffers (nmesh::comm::DataType). */
typedef enum nmesh_dtype {
  NMESH_INT8 = 0,
  NMESH_UINT8 = 1,
  NMESH_INT32 = 2,
  NMESH_UINT32 = 3,
  NMESH_INT64 = 4,
  NMESH_UINT64 = 5,
  NMESH_FLOAT16 = 6,
  NMESH_BFLOAT16 = 7,
  NMESH_FLOAT32 = 8,
  NMESH_FLOAT64 = 9
} nmesh_dtype;

/* Reductions (nmesh::comm::ReduceOp). */
typedef enum nmesh_reduce_op {
  NMESH_SUM = 0,
  NMESH_PROD = 1,
  NMESH_MIN = 2,
  NMESH_MAX = 3,
  NMESH_AVG = 4
} nmesh_reduce_op;

typedef enum nmesh_memory_kind { NMESH_MEMORY_HOST = 0, NMESH_MEMORY_DEVICE = 1 } nmesh_memory_kind;

typedef enum nmesh_comm_sharing {
  /* One communicator per distinct partition of the ranks, shared by the names that split them
   * alike (at 8 ranks with tp=2 ep=2, tp and ep are one communicator): the fewest. */
  NMESH_COMM_SHARING_PARTITION = 0,
  /* One communicator per name, so that two names may be driven from two threads or streams. */
  NMESH_COMM_SHARING_NAME = 1
} nmesh_comm_sharing;

/* ---- Handles ------------------------------------------------------------------------------ */

typedef struct nmesh_job nmesh_job;     /* a started job: MPI, the backend, the meshes */
typedef struct nmesh_mesh nmesh_mesh;   /* one mesh of a job (borrowed) */
typedef struct nmesh_comm nmesh_comm;   /* one axis's or group's communicator (borrowed) */
typedef struct nmesh_work nmesh_work;   /* an asynchronous operation (owned: nmesh_work_free) */
typedef struct nmesh_batch nmesh_batch; /* operations issued together (owned until ended) */

/* ---- Starting and ending a job ------------------------------------------------------------ */

/* What to build. Start from nmesh_job_options_init (the defaults); a 0 or NULL field is unset. */
typedef struct nmesh_job_options {
  /* sizeof(nmesh_job_options), set by nmesh_job_options_init: fields added later are read only
   * when the caller's struct has them. */
  size_t struct_size;
  /* A recipe YAML file (its distributed:, teacher_distributed: and dist_env: sections). */
  const char* recipe_path;
  /* "distributed" or "teacher_distributed": the section the sizes below apply to. */
  const char* section;
  /* fsdp2 (default), megatron_fsdp or ddp. */
  const char* strategy;
  /* Sizes, over the recipe's (0: unset; dp 0 is inferred). world_size 0: the job's size. */
  int64_t world_size;
  int64_t dp;
  int64_t dp_replicate;
  int64_t tp;
  int64_t pp;
  int64_t cp;
  int64_t ep;
  /* "auto" (NULL: NCCL when built and every rank has a GPU, else MPI), "mpi" or "nccl". */
  const char* backend;
  /* The timeout of every communicator, in seconds; 0: the recipe's dist_env.timeout_minutes, or
   * none. */
  double timeout_seconds;
  /* nmesh_comm_sharing; -1 (the default): the recipe's comm_sharing:, else PARTITION. */
  int comm_sharing;
  /* Non-zero: before each collective the ranks compare their arguments, and a mismatch (a count
   * differing on one rank) fails on every rank instead of returning wrong data. For debugging. */
  int check_arguments;
} nmesh_job_options;

/* Sets every field to its default (all unset, comm_sharing -1, struct_size). */
NMESH_C_API nmesh_result nmesh_job_options_init(nmesh_job_options* options);

/* Starts MPI (unless the caller already has: then nmesh neither initialises nor finalises it),
 * reads the recipe and sizes, checks that every rank agrees, chooses the backend and builds every
 * mesh and its context: nmesh::job::Job::Start. Collective over MPI_COMM_WORLD: every rank calls
 * it with the same options. `argc` and `argv` may be NULL. On failure *job is NULL, and
 * nmesh_last_error_agreed() says whether every rank failed alike: then MPI has been finalised
 * (when nmesh initialised it) and every rank may exit; otherwise MPI is left running for
 * nmesh_abort_job. */
NMESH_C_API nmesh_result nmesh_job_start(const nmesh_job_options* options, int* argc, char*** argv,
                                         nmesh_job** job);

/* Destroys the job: its communicators, then MPI when nmesh_job_start initialised it. Not
 * collective, but every rank should do it (MPI_Finalize is). NULL: nothing. */
NMESH_C_API void nmesh_job_destroy(nmesh_job* job);

/* Ends every process of the job (MPI_Abort) with `exit_code`: after a failure of this rank alone
 * (nmesh_last_error_agreed() 0). Does not return. */
NMESH_C_API void nmesh_abort_job(int exit_code);

NMESH_C_API nmesh_result nmesh_job_rank(const nmesh_job* job, int64_t* rank);
NMESH_C_API nmesh_result nmesh_job_world_size(const nmesh_job* job, int64_t* size);
/* "mpi" or "nccl", and why it was chosen ("auto: nmesh was built without NCCL"). */
NMESH_C_API nmesh_result nmesh_job_backend(const nmesh_job* job, const char** name,
                                           const char** reason);
/* The number of meshes (2 with a student and a teacher), and mesh `index` (student first). */
NMESH_C_API nmesh_result nmesh_job_mesh_count(const nmesh_job* job, size_t* count);
NMESH_C_API nmesh_result nmesh_job_mesh(nmesh_job* job, size_t index, nmesh_mesh** mesh);
/* The first mesh this rank is a member of; NMESH_ERR_NOT_FOUND when it is a member of none. */
NMESH_C_API nmesh_result nmesh_job_my_mesh(nmesh_job* job, nmesh_mesh** mesh);

/* ---- Meshes ------------------------------------------------------------------------------- */

/* The mesh's name ("distributed", "teacher_distributed", "device_mesh"). */
NMESH_C_API nmesh_result nmesh_mesh_name(const nmesh_mesh* mesh, const char** name);
NMESH_C_API nmesh_result nmesh_mesh_is_member(const nmesh_mesh* mesh, int* is_member);
/* The native axes: count, and the name and size of axis `index` (fsdp2: pp, dp_replicate,
 * dp_shard, cp, tp). */
NMESH_C_API nmesh_result nmesh_mesh_ndim(const nmesh_mesh* mesh, int* ndim);
NMESH_C_API nmesh_result nmesh_mesh_axis(const nmesh_mesh* mesh, int index, const char** name,
                                         int64_t* size);
/* The communicator of a native axis, a flattened group (dp, dp_shard_cp, dp_cp) or a moe axis
 * (ep, ep_shard). NMESH_ERR_NOT_FOUND for a name the mesh lacks, NMESH_ERR_FAILED_PRECONDITION on
 * a non-member. */
NMESH_C_API nmesh_result nmesh_mesh_comm(const nmesh_mesh* mesh, const char* name,
                                         nmesh_comm** comm);
/* The number of communicators the mesh holds, and the names communicator `index` serves, joined
 * by "/" ("tp/ep": one communicator for both). */
NMESH_C_API nmesh_result nmesh_mesh_communicator_count(const nmesh_mesh* mesh, size_t* count);
NMESH_C_API nmesh_result nmesh_mesh_communicator_names(const nmesh_mesh* mesh, size_t index,
                                                       const char** names);

/* The sizes a MeshContext reads from the live communicators (contract §7); 0 for "none". */
typedef struct nmesh_context_sizes {
  int64_t pp_size;
  int64_t tp_size;
  int64_t cp_size;
  int64_t ep_size;
  int64_t dp_size;           /* 0: the mesh has no dp */
  int64_t dp_replicate_size; /* 0: none (not FSDP2) */
  int64_t dp_shard_size;
  int pp_enabled;
} nmesh_context_sizes;

/* This rank's context sizes; NMESH_ERR_FAILED_PRECONDITION on a non-member. */
NMESH_C_API nmesh_result nmesh_mesh_context_sizes(const nmesh_mesh* mesh,
                                                  nmesh_context_sizes* sizes);

/* ---- Communicators ------------------------------------------------------------------------ */

NMESH_C_API nmesh_result nmesh_comm_rank(const nmesh_comm* comm, int* rank);
NMESH_C_API nmesh_result nmesh_comm_size(const nmesh_comm* comm, int* size);
/* "mpi", "nccl" or "self" (a group of one rank). */
NMESH_C_API nmesh_result nmesh_comm_backend(const nmesh_comm* comm, const char** backend);
/* The names it serves, as messages show them ("tp/ep"). */
NMESH_C_API nmesh_result nmesh_comm_name(const nmesh_comm* comm, const char** name);
NMESH_C_API nmesh_result nmesh_comm_memory_kind(const nmesh_comm* comm, nmesh_memory_kind* kind);

/* Native handles (still owned by nmesh: do not free them).
 * MPI: the MPI_Comm as its Fortran handle, portable across MPI implementations without mpi.h
 * here: `MPI_Comm c = MPI_Comm_f2c((MPI_Fint)handle);`. Or copied into the caller's MPI_Comm:
 * `nmesh_comm_mpi_comm(comm, &c, sizeof(MPI_Comm))` (NMESH_ERR_INVALID_ARGUMENT when the size is
 * not nmesh's MPI_Comm size). A size-1 group of an MPI job gives MPI_COMM_SELF. Another backend:
 * NMESH_ERR_INVALID_ARGUMENT. */
NMESH_C_API nmesh_result nmesh_comm_mpi_fortran_handle(const nmesh_comm* comm, int64_t* handle);
NMESH_C_API nmesh_result nmesh_comm_mpi_comm(const nmesh_comm* comm, void* mpi_comm,
                                             size_t mpi_comm_size);
/* NCCL: the ncclComm_t. A size-1 group has none (its collectives are device copies):
 * NMESH_ERR_INVALID_ARGUMENT, as for another backend; NMESH_ERR_UNIMPLEMENTED when nmesh was built
 * without NCCL. */
NMESH_C_API nmesh_result nmesh_comm_nccl_comm(const nmesh_comm* comm, void** nccl_comm);

/* ---- Collectives ---------------------------------------------------------------------------
 * Blocking. Every rank of the communicator calls each collective, in the same order, with
 * matching counts, types, ops and roots. Counts are elements. */
NMESH_C_API nmesh_result nmesh_all_reduce(nmesh_comm* comm, const void* send, void* recv,
                                          size_t count, nmesh_dtype type, nmesh_reduce_op op);
/* recv holds size * send_count elements; in place: send == recv + rank * send_count. */
NMESH_C_API nmesh_result nmesh_all_gather(nmesh_comm* comm, const void* send, void* recv,
                                          size_t send_count, nmesh_dtype type);
/* send holds size * recv_count elements; rank j receives the reduction of every block j. */
NMESH_C_API nmesh_result nmesh_reduce_scatter(nmesh_comm* comm, const void* send, void* recv,
                                              size_t recv_count, nmesh_dtype type,
                                              nmesh_reduce_op op);
NMESH_C_API nmesh_result nmesh_broadcast(nmesh_comm* comm, void* buffer, size_t count,
                                         nmesh_dtype type, int root);
/* send and recv hold size * count elements; block j goes to / comes from rank j. */
NMESH_C_API nmesh_result nmesh_all_to_all(nmesh_comm* comm, const void* send, void* recv,
                                          size_t count, nmesh_dtype type);
/* Each of the four arrays has size entries (elements, not bytes). */
NMESH_C_API nmesh_result nmesh_all_to_all_v(nmesh_comm* comm, const void* send,
                                            const size_t* send_counts, const size_t* send_displs,
                                            void* recv, const size_t* recv_counts,
                                            const size_t* recv_displs, nmesh_dtype type);
/* `peer` is a rank of this communicator. */
NMESH_C_API nmesh_result nmesh_send(nmesh_comm* comm, const void* buffer, size_t count,
                                    nmesh_dtype type, int peer);
NMESH_C_API nmesh_result nmesh_recv(nmesh_comm* comm, void* buffer, size_t count, nmesh_dtype type,
                                    int peer);
NMESH_C_API nmesh_result nmesh_barrier(nmesh_comm* comm);

/* Asynchronous: the same checks (errors come back at once), then the operation is issued and
 * *work receives its handle. `stream`: NCCL's cudaStream_t to enqueue on (NULL: the
 * communicator's own); host backends ignore it. */
NMESH_C_API nmesh_result nmesh_all_reduce_async(nmesh_comm* comm, const void* send, void* recv,
                                                size_t count, nmesh_dtype type, nmesh_reduce_op op,
                                                void* stream, nmesh_work** work);
NMESH_C_API nmesh_result nmesh_all_gather_async(nmesh_comm* comm, const void* send, void* recv,
                                                size_t send_count, nmesh_dtype type, void* stream,
                                                nmesh_work** work);
NMESH_C_API nmesh_result nmesh_reduce_scatter_async(nmesh_comm* comm, const void* send, void* recv,
                                                    size_t recv_count, nmesh_dtype type,
                                                    nmesh_reduce_op op, void* stream,
                                                    nmesh_work** work);
NMESH_C_API nmesh_result nmesh_broadcast_async(nmesh_comm* comm, void* buffer, size_t count,
                                               nmesh_dtype type, int root, void* stream,
                                               nmesh_work** work);
NMESH_C_API nmesh_result nmesh_all_to_all_async(nmesh_comm* comm, const void* send, void* recv,
                                                size_t count, nmesh_dtype type, void* stream,
                                                nmesh_work** work);
/* The count and displacement arrays are copied: they need not outlive the call. */
NMESH_C_API nmesh_result nmesh_all_to_all_v_async(nmesh_comm* comm, const void* send,
                                                  const size_t* send_counts,
                                                  const size_t* send_displs, void* recv,
                                                  const size_t* recv_counts,
                                                  const size_t* recv_displs, nmesh_dtype type,
                                                  void* stream, nmesh_work** work);
NMESH_C_API nmesh_result nmesh_send_async(nmesh_comm* comm, const void* buffer, size_t count,
                                          nmesh_dtype type, int peer, void* stream,
                                          nmesh_work** work);
NMESH_C_API nmesh_result nmesh_recv_async(nmesh_comm* comm, void* buffer, size_t count,
                                          nmesh_dtype type, int peer, void* stream,
                                          nmesh_work** work);
NMESH_C_API nmesh_result nmesh_barrier_async(nmesh_comm* comm, void* stream, nmesh_work** work);

/* Waits at most `timeout_seconds` (negative: forever) and returns the operation's final status.
 * NMESH_ERR_DEADLINE_EXCEEDED when the time passes first: the operation stays pending (wait or
 * test again). A second wait after the final status is NMESH_ERR_FAILED_PRECONDITION. */
NMESH_C_API nmesh_result nmesh_work_wait(nmesh_work* work, double timeout_seconds);
/* *done = 1 when the operation has completed (never blocks); its status then comes from
 * nmesh_work_wait. */
NMESH_C_API nmesh_result nmesh_work_test(nmesh_work* work, int* done);
/* NCCL: the cudaEvent_t recorded after the operation (valid while the handle lives), for
 * cudaStreamWaitEvent on another stream. NMESH_ERR_INVALID_ARGUMENT on another backend. */
NMESH_C_API nmesh_result nmesh_work_cuda_event(const nmesh_work* work, void** cuda_event);
/* Frees the handle; does not wait for or cancel the operation. NULL: nothing. */
NMESH_C_API void nmesh_work_free(nmesh_work* work);

/* A batch: every asynchronous operation this thread issues between begin and end is issued
 * together (ncclGroupStart/End on NCCL), so that pipeline neighbours that both send first
 * complete. nmesh_batch_end issues them, frees the batch and gives one handle for all. */
NMESH_C_API nmesh_result nmesh_batch_begin(nmesh_batch** batch);
NMESH_C_API nmesh_result nmesh_batch_end(nmesh_batch* batch, nmesh_work** work);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NMESH_C_NMESH_H_ */
