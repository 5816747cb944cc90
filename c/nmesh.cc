// The C interface over the job layer: every entry point converts its arguments, calls the C++ API
// inside Call (which turns a Status or an exception into a result code and the thread's last
// error), and never lets a C++ type or exception out.
#include "nmesh/c/nmesh.h"

#include <cstddef>
#include <cstring>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/base/build_config.h"
#include "nmesh/base/version.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/mpi/native.h"
#include "nmesh/comm/mpi/session.h"
#include "nmesh/comm/work.h"
#include "nmesh/job/job.h"
#include "nmesh/job/launch.h"
#include "nmesh/job/startup.h"
#if NMESH_HAVE_NCCL
#include "nmesh/comm/nccl/native.h"
#endif

namespace comm = ::nmesh::comm;
namespace job = ::nmesh::job;

struct nmesh_mesh {
  job::JobMesh* job_mesh = nullptr;
  // CommunicatorNames joined with "/", kept for the const char* handed out.
  std::vector<std::string> communicator_names;
};

struct nmesh_job {
  // Destroyed in reverse: the meshes' handles, the job (its communicators), then MPI.
  std::unique_ptr<comm::mpi::Session> session;
  std::unique_ptr<job::Job> job;
  std::vector<std::unique_ptr<nmesh_mesh>> meshes;
};

struct nmesh_work {
  comm::Work work;
};

struct nmesh_batch {
  comm::Batch batch;
};

namespace {

thread_local std::string last_error;
thread_local bool last_error_agreed = false;

nmesh_result Fail(nmesh_result code, std::string message, bool agreed = false) {
  last_error = std::move(message);
  last_error_agreed = agreed;
  return code;
}

nmesh_result FromStatus(const absl::Status& status, bool agreed = false) {
  if (status.ok()) return NMESH_OK;
  // The canonical codes share their numbers with nmesh_result.
  return Fail(static_cast<nmesh_result>(static_cast<int>(status.code())),
              std::string(status.message()), agreed);
}

// Runs `body` (returning absl::Status) at the boundary: exceptions become NMESH_ERR_INTERNAL.
template <typename Body>
nmesh_result Call(const char* what, Body&& body) noexcept {
  try {
    return FromStatus(body());
  } catch (const std::exception& e) {
    return Fail(NMESH_ERR_INTERNAL,
                absl::StrFormat("%s: unexpected C++ exception: %s", what, e.what()));
  } catch (...) {
    return Fail(NMESH_ERR_INTERNAL, absl::StrFormat("%s: unexpected C++ exception", what));
  }
}

absl::Status Null(const char* what, const char* argument) {
  return absl::InvalidArgumentError(absl::StrFormat("%s: %s is NULL", what, argument));
}

#define NMESH_C_REQUIRE(pointer)                            \
  do {                                                      \
    if ((pointer) == nullptr) return Null(kWhat, #pointer); \
  } while (false)

comm::Communicator* AsComm(nmesh_comm* comm) { return reinterpret_cast<comm::Communicator*>(comm); }
const comm::Communicator* AsComm(const nmesh_comm* comm) {
  return reinterpret_cast<const comm::Communicator*>(comm);
}

// The integer a C caller passed for an enum parameter, read without loading it as the enum: a C
// caller may pass any int, and a value outside the enumerators is undefined behaviour in C++ once
// loaded as the enum type (UBSan's -fsanitize=enum reports it).
template <typename E>
int RawEnum(const E& e) {
  static_assert(sizeof(E) == sizeof(int), "C enums are int-sized");
  int raw = 0;
  std::memcpy(&raw, &e, sizeof raw);
  return raw;
}

absl::StatusOr<comm::DataType> DataTypeOf(int type) {
  if (type < NMESH_INT8 || type > NMESH_FLOAT64) {
    return absl::InvalidArgumentError(absl::StrFormat("unknown nmesh_dtype %d", type));
  }
  return static_cast<comm::DataType>(type);
}

absl::StatusOr<comm::ReduceOp> ReduceOpOf(int op) {
  if (op < NMESH_SUM || op > NMESH_AVG) {
    return absl::InvalidArgumentError(absl::StrFormat("unknown nmesh_reduce_op %d", op));
  }
  return static_cast<comm::ReduceOp>(op);
}

// The per-peer arrays of all_to_all_v, as spans of the communicator's size.
struct PeerArrays {
  absl::Span<const size_t> send_counts, send_displs, recv_counts, recv_displs;
};
absl::StatusOr<PeerArrays> PeerArraysOf(const comm::Communicator& c, const size_t* send_counts,
                                        const size_t* send_displs, const size_t* recv_counts,
                                        const size_t* recv_displs) {
  if (send_counts == nullptr || send_displs == nullptr || recv_counts == nullptr ||
      recv_displs == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "all_to_all_v on axis '%s': a count or displacement array is NULL", c.options().name));
  }
  const size_t n = static_cast<size_t>(c.size());
  return PeerArrays{absl::MakeConstSpan(send_counts, n), absl::MakeConstSpan(send_displs, n),
                    absl::MakeConstSpan(recv_counts, n), absl::MakeConstSpan(recv_displs, n)};
}

// Hands an issued operation's handle to the caller.
absl::Status Issued(absl::StatusOr<comm::Work> work, nmesh_work** out) {
  if (!work.ok()) return work.status();
  *out = new nmesh_work{*std::move(work)};
  return absl::OkStatus();
}

}  // namespace

extern "C" {

const char* nmesh_last_error(void) { return last_error.c_str(); }

int nmesh_last_error_agreed(void) { return last_error_agreed ? 1 : 0; }

const char* nmesh_result_name(nmesh_result result) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS"};
  const int index = static_cast<int>(result);
  if (index < 0 || index >= static_cast<int>(sizeof(kNames) / sizeof(kNames[0]))) return "UNKNOWN";
  return kNames[index];
}

const char* nmesh_version(void) {
  static const std::string* const version = new std::string(nmesh::VersionString());
  return version->c_str();
}

nmesh_result nmesh_job_options_init(nmesh_job_options* options) {
  static constexpr const char* kWhat = "nmesh_job_options_init";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(options);
    std::memset(options, 0, sizeof(*options));
    options->struct_size = sizeof(*options);
    options->comm_sharing = -1;
    return absl::OkStatus();
  });
}

nmesh_result nmesh_job_start(const nmesh_job_options* given, int* argc, char*** argv,
                             nmesh_job** out) {
  static constexpr const char* kWhat = "nmesh_job_start";
  if (out != nullptr) *out = nullptr;
  // Option errors are found alike on every rank, before MPI: agreed.
  job::JobOptions options;
  options.command = "c-abi";
  nmesh_result checked = Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(given);
    NMESH_C_REQUIRE(out);
    nmesh_job_options o;
    nmesh_job_options_init(&o);
    if (given->struct_size < offsetof(nmesh_job_options, recipe_path) ||
        given->struct_size > sizeof(o)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: options.struct_size is %d; initialise the options with nmesh_job_options_init",
          kWhat, given->struct_size));
    }
    std::memcpy(&o, given, given->struct_size);
    if (o.recipe_path != nullptr) options.mesh.config_path = o.recipe_path;
    if (o.section != nullptr) options.mesh.section = o.section;
    if (o.strategy != nullptr) options.mesh.strategy = o.strategy;
    nmesh::validate::RequestedSizes& sizes = options.mesh.sizes;
    for (auto [value, field] :
         {std::pair{o.world_size, &sizes.world_size}, std::pair{o.dp, &sizes.dp},
          std::pair{o.dp_replicate, &sizes.dp_replicate}, std::pair{o.tp, &sizes.tp},
          std::pair{o.pp, &sizes.pp}, std::pair{o.cp, &sizes.cp}, std::pair{o.ep, &sizes.ep}}) {
      if (value != 0) *field = value;
    }
    if (o.backend != nullptr) {
      absl::StatusOr<job::BackendChoice> backend = job::ParseBackendChoice(o.backend);
      if (!backend.ok()) return backend.status();
      options.backend = *backend;
    }
    if (o.timeout_seconds < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: timeout_seconds must be positive (or 0: none), got %g", kWhat, o.timeout_seconds));
    }
    if (o.timeout_seconds > 0) options.timeout = absl::Seconds(o.timeout_seconds);
    if (o.comm_sharing == NMESH_COMM_SHARING_PARTITION) {
      options.mesh.comm_sharing = nmesh::config::CommSharing::kPartition;
    } else if (o.comm_sharing == NMESH_COMM_SHARING_NAME) {
      options.mesh.comm_sharing = nmesh::config::CommSharing::kName;
    } else if (o.comm_sharing != -1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: comm_sharing must be NMESH_COMM_SHARING_PARTITION (0), NMESH_COMM_SHARING_NAME "
          "(1) or -1 (the recipe's), got %d",
          kWhat, o.comm_sharing));
    }
    options.check_arguments = o.check_arguments != 0;
    return absl::OkStatus();
  });
  if (checked != NMESH_OK) {
    last_error_agreed = true;
    return checked;
  }
  bool agreed = false;
  const nmesh_result result = Call(kWhat, [&]() -> absl::Status {
    auto started = std::make_unique<nmesh_job>();
    absl::StatusOr<std::unique_ptr<comm::mpi::Session>> session =
        comm::mpi::Session::Init(argc, argv);
    if (!session.ok()) return session.status();
    started->session = *std::move(session);
    const int rank = started->session->world_rank();
    options.warn = [rank](const std::string& warning) {
      if (rank == 0) std::cerr << "nmesh: warning: " << warning << "\n";
    };
    absl::StatusOr<std::unique_ptr<job::Job>> built = job::Job::Start(*started->session, options);
    if (!built.ok()) {
      agreed = job::IsAgreed(built.status());
      // Agreed: every rank exits in order, and MPI ends here (when nmesh began it). Otherwise
      // MPI stays up for the caller's nmesh_abort_job.
      if (!agreed) (void)started->session.release();
      return built.status();
    }
    started->job = *std::move(built);
    for (job::JobMesh& m : started->job->meshes()) {
      auto handle = std::make_unique<nmesh_mesh>();
      handle->job_mesh = &m;
      if (m.mesh.has_value()) {
        for (const std::vector<std::string>& names : m.mesh->CommunicatorNames()) {
          handle->communicator_names.push_back(absl::StrJoin(names, "/"));
        }
      }
      started->meshes.push_back(std::move(handle));
    }
    *out = started.release();
    return absl::OkStatus();
  });
  if (result != NMESH_OK) last_error_agreed = agreed;
  return result;
}

void nmesh_job_destroy(nmesh_job* job) {
  try {
    delete job;
  } catch (...) {
    // Destructors report nothing; a failure to free is not the caller's to handle.
  }
}

void nmesh_abort_job(int exit_code) { comm::mpi::Session::AbortJob(exit_code); }

nmesh_result nmesh_job_rank(const nmesh_job* job, int64_t* rank) {
  static constexpr const char* kWhat = "nmesh_job_rank";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(job);
    NMESH_C_REQUIRE(rank);
    *rank = job->job->rank();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_job_world_size(const nmesh_job* job, int64_t* size) {
  static constexpr const char* kWhat = "nmesh_job_world_size";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(job);
    NMESH_C_REQUIRE(size);
    *size = job->job->world_size();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_job_backend(const nmesh_job* job, const char** name, const char** reason) {
  static constexpr const char* kWhat = "nmesh_job_backend";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(job);
    if (name != nullptr) *name = job->job->backend().name.c_str();
    if (reason != nullptr) *reason = job->job->backend().reason.c_str();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_job_mesh_count(const nmesh_job* job, size_t* count) {
  static constexpr const char* kWhat = "nmesh_job_mesh_count";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(job);
    NMESH_C_REQUIRE(count);
    *count = job->meshes.size();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_job_mesh(nmesh_job* job, size_t index, nmesh_mesh** mesh) {
  static constexpr const char* kWhat = "nmesh_job_mesh";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(job);
    NMESH_C_REQUIRE(mesh);
    *mesh = nullptr;
    if (index >= job->meshes.size()) {
      return absl::OutOfRangeError(absl::StrFormat("%s: mesh %d of a job with %d mesh(es)", kWhat,
                                                   index, job->meshes.size()));
    }
    *mesh = job->meshes[index].get();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_job_my_mesh(nmesh_job* job, nmesh_mesh** mesh) {
  static constexpr const char* kWhat = "nmesh_job_my_mesh";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(job);
    NMESH_C_REQUIRE(mesh);
    *mesh = nullptr;
    for (const std::unique_ptr<nmesh_mesh>& m : job->meshes) {
      if (m->job_mesh->is_member()) {
        *mesh = m.get();
        return absl::OkStatus();
      }
    }
    return absl::NotFoundError(
        absl::StrFormat("rank %d is a member of none of the job's %d mesh(es)", job->job->rank(),
                        job->meshes.size()));
  });
}

nmesh_result nmesh_mesh_name(const nmesh_mesh* mesh, const char** name) {
  static constexpr const char* kWhat = "nmesh_mesh_name";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(mesh);
    NMESH_C_REQUIRE(name);
    *name = mesh->job_mesh->mesh->name().c_str();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_mesh_is_member(const nmesh_mesh* mesh, int* is_member) {
  static constexpr const char* kWhat = "nmesh_mesh_is_member";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(mesh);
    NMESH_C_REQUIRE(is_member);
    *is_member = mesh->job_mesh->is_member() ? 1 : 0;
    return absl::OkStatus();
  });
}

nmesh_result nmesh_mesh_ndim(const nmesh_mesh* mesh, int* ndim) {
  static constexpr const char* kWhat = "nmesh_mesh_ndim";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(mesh);
    NMESH_C_REQUIRE(ndim);
    *ndim = mesh->job_mesh->mesh->ndim();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_mesh_axis(const nmesh_mesh* mesh, int index, const char** name, int64_t* size) {
  static constexpr const char* kWhat = "nmesh_mesh_axis";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(mesh);
    const nmesh::mesh::DeviceMesh& m = *mesh->job_mesh->mesh;
    if (index < 0 || index >= m.ndim()) {
      return absl::OutOfRangeError(absl::StrFormat("%s: axis %d of mesh '%s' with %d axes", kWhat,
                                                   index, m.name(), m.ndim()));
    }
    if (name != nullptr) *name = m.axis_names()[static_cast<size_t>(index)].c_str();
    if (size != nullptr) *size = m.shape()[static_cast<size_t>(index)];
    return absl::OkStatus();
  });
}

nmesh_result nmesh_mesh_comm(const nmesh_mesh* mesh, const char* name, nmesh_comm** out) {
  static constexpr const char* kWhat = "nmesh_mesh_comm";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(mesh);
    NMESH_C_REQUIRE(name);
    NMESH_C_REQUIRE(out);
    *out = nullptr;
    const nmesh::mesh::DeviceMesh& m = *mesh->job_mesh->mesh;
    absl::StatusOr<comm::Communicator*> found = m.Comm(name);
    if (!found.ok() && found.status().code() == absl::StatusCode::kNotFound) {
      // The moe axes live in the moe mesh.
      if (std::optional<nmesh::mesh::DeviceMesh> moe = m.moe_mesh();
          moe.has_value() && moe->HasGroup(name)) {
        found = moe->Comm(name);
      }
    }
    if (!found.ok()) return found.status();
    *out = reinterpret_cast<nmesh_comm*>(*found);
    return absl::OkStatus();
  });
}

nmesh_result nmesh_mesh_communicator_count(const nmesh_mesh* mesh, size_t* count) {
  static constexpr const char* kWhat = "nmesh_mesh_communicator_count";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(mesh);
    NMESH_C_REQUIRE(count);
    *count = mesh->communicator_names.size();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_mesh_communicator_names(const nmesh_mesh* mesh, size_t index,
                                           const char** names) {
  static constexpr const char* kWhat = "nmesh_mesh_communicator_names";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(mesh);
    NMESH_C_REQUIRE(names);
    if (index >= mesh->communicator_names.size()) {
      return absl::OutOfRangeError(absl::StrFormat("%s: communicator %d of %d", kWhat, index,
                                                   mesh->communicator_names.size()));
    }
    *names = mesh->communicator_names[index].c_str();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_mesh_context_sizes(const nmesh_mesh* mesh, nmesh_context_sizes* sizes) {
  static constexpr const char* kWhat = "nmesh_mesh_context_sizes";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(mesh);
    NMESH_C_REQUIRE(sizes);
    const job::JobMesh& m = *mesh->job_mesh;
    if (!m.context.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrFormat("rank %d is not a member of mesh '%s', so it has no context",
                          m.mesh->global_rank(), m.mesh->name()));
    }
    const nmesh::validate::ResolvedSizes s = m.context->sizes();
    sizes->pp_size = s.pp_size();
    sizes->tp_size = s.tp_size();
    sizes->cp_size = s.cp_size();
    sizes->ep_size = s.ep_size();
    sizes->dp_size = s.dp_size().value_or(0);
    sizes->dp_replicate_size = s.dp_replicate_size().value_or(0);
    sizes->dp_shard_size = s.dp_shard_size();
    sizes->pp_enabled = s.pp_enabled() ? 1 : 0;
    return absl::OkStatus();
  });
}

nmesh_result nmesh_comm_rank(const nmesh_comm* comm, int* rank) {
  static constexpr const char* kWhat = "nmesh_comm_rank";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(rank);
    *rank = AsComm(comm)->rank();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_comm_size(const nmesh_comm* comm, int* size) {
  static constexpr const char* kWhat = "nmesh_comm_size";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(size);
    *size = AsComm(comm)->size();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_comm_backend(const nmesh_comm* comm, const char** backend) {
  static constexpr const char* kWhat = "nmesh_comm_backend";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(backend);
    // The backends' names are string literals.
    *backend = AsComm(comm)->backend().data();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_comm_name(const nmesh_comm* comm, const char** name) {
  static constexpr const char* kWhat = "nmesh_comm_name";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(name);
    *name = AsComm(comm)->options().name.c_str();
    return absl::OkStatus();
  });
}

nmesh_result nmesh_comm_memory_kind(const nmesh_comm* comm, nmesh_memory_kind* kind) {
  static constexpr const char* kWhat = "nmesh_comm_memory_kind";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(kind);
    *kind = AsComm(comm)->memory_kind() == comm::MemoryKind::kHost ? NMESH_MEMORY_HOST
                                                                   : NMESH_MEMORY_DEVICE;
    return absl::OkStatus();
  });
}

nmesh_result nmesh_comm_mpi_fortran_handle(const nmesh_comm* comm, int64_t* handle) {
  static constexpr const char* kWhat = "nmesh_comm_mpi_fortran_handle";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(handle);
    absl::StatusOr<MPI_Comm> native = comm::mpi::NativeComm(*AsComm(comm));
    if (!native.ok()) return native.status();
    *handle = static_cast<int64_t>(MPI_Comm_c2f(*native));
    return absl::OkStatus();
  });
}

nmesh_result nmesh_comm_mpi_comm(const nmesh_comm* comm, void* mpi_comm, size_t mpi_comm_size) {
  static constexpr const char* kWhat = "nmesh_comm_mpi_comm";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(mpi_comm);
    if (mpi_comm_size != sizeof(MPI_Comm)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: the caller's MPI_Comm has %d bytes, nmesh's %d: nmesh and the caller were built "
          "against different MPI implementations",
          kWhat, mpi_comm_size, sizeof(MPI_Comm)));
    }
    absl::StatusOr<MPI_Comm> native = comm::mpi::NativeComm(*AsComm(comm));
    if (!native.ok()) return native.status();
    std::memcpy(mpi_comm, &*native, sizeof(MPI_Comm));
    return absl::OkStatus();
  });
}

nmesh_result nmesh_comm_nccl_comm(const nmesh_comm* comm, void** nccl_comm) {
  static constexpr const char* kWhat = "nmesh_comm_nccl_comm";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(nccl_comm);
    *nccl_comm = nullptr;
#if NMESH_HAVE_NCCL
    absl::StatusOr<ncclComm_t> native = comm::nccl::NativeComm(*AsComm(comm));
    if (!native.ok()) return native.status();
    *nccl_comm = static_cast<void*>(*native);
    return absl::OkStatus();
#else
    return absl::UnimplementedError(
        absl::StrFormat("%s: nmesh was built without NCCL", kWhat));
#endif
  });
}

// The collectives: each converts the enums, then calls the communicator's method.
#define NMESH_C_TYPE(type)                                             \
  absl::StatusOr<comm::DataType> dtype_or = DataTypeOf(RawEnum(type)); \
  if (!dtype_or.ok()) return dtype_or.status();                        \
  const comm::DataType dtype = *dtype_or
#define NMESH_C_OP(op)                                             \
  absl::StatusOr<comm::ReduceOp> rop_or = ReduceOpOf(RawEnum(op)); \
  if (!rop_or.ok()) return rop_or.status();                        \
  const comm::ReduceOp rop = *rop_or

nmesh_result nmesh_all_reduce(nmesh_comm* comm, const void* send, void* recv, size_t count,
                              nmesh_dtype type, nmesh_reduce_op op) {
  static constexpr const char* kWhat = "nmesh_all_reduce";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_TYPE(type);
    NMESH_C_OP(op);
    return AsComm(comm)->AllReduce(send, recv, count, dtype, rop);
  });
}

nmesh_result nmesh_all_gather(nmesh_comm* comm, const void* send, void* recv, size_t send_count,
                              nmesh_dtype type) {
  static constexpr const char* kWhat = "nmesh_all_gather";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_TYPE(type);
    return AsComm(comm)->AllGather(send, recv, send_count, dtype);
  });
}

nmesh_result nmesh_reduce_scatter(nmesh_comm* comm, const void* send, void* recv, size_t recv_count,
                                  nmesh_dtype type, nmesh_reduce_op op) {
  static constexpr const char* kWhat = "nmesh_reduce_scatter";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_TYPE(type);
    NMESH_C_OP(op);
    return AsComm(comm)->ReduceScatter(send, recv, recv_count, dtype, rop);
  });
}

nmesh_result nmesh_broadcast(nmesh_comm* comm, void* buffer, size_t count, nmesh_dtype type,
                             int root) {
  static constexpr const char* kWhat = "nmesh_broadcast";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_TYPE(type);
    return AsComm(comm)->Broadcast(buffer, count, dtype, root);
  });
}

nmesh_result nmesh_all_to_all(nmesh_comm* comm, const void* send, void* recv, size_t count,
                              nmesh_dtype type) {
  static constexpr const char* kWhat = "nmesh_all_to_all";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_TYPE(type);
    return AsComm(comm)->AllToAll(send, recv, count, dtype);
  });
}

nmesh_result nmesh_all_to_all_v(nmesh_comm* comm, const void* send, const size_t* send_counts,
                                const size_t* send_displs, void* recv, const size_t* recv_counts,
                                const size_t* recv_displs, nmesh_dtype type) {
  static constexpr const char* kWhat = "nmesh_all_to_all_v";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_TYPE(type);
    absl::StatusOr<PeerArrays> a =
        PeerArraysOf(*AsComm(comm), send_counts, send_displs, recv_counts, recv_displs);
    if (!a.ok()) return a.status();
    return AsComm(comm)->AllToAllV(send, a->send_counts, a->send_displs, recv, a->recv_counts,
                                   a->recv_displs, dtype);
  });
}

nmesh_result nmesh_send(nmesh_comm* comm, const void* buffer, size_t count, nmesh_dtype type,
                        int peer) {
  static constexpr const char* kWhat = "nmesh_send";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_TYPE(type);
    return AsComm(comm)->Send(buffer, count, dtype, peer);
  });
}

nmesh_result nmesh_recv(nmesh_comm* comm, void* buffer, size_t count, nmesh_dtype type, int peer) {
  static constexpr const char* kWhat = "nmesh_recv";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_TYPE(type);
    return AsComm(comm)->Recv(buffer, count, dtype, peer);
  });
}

nmesh_result nmesh_barrier(nmesh_comm* comm) {
  static constexpr const char* kWhat = "nmesh_barrier";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    return AsComm(comm)->Barrier();
  });
}

nmesh_result nmesh_all_reduce_async(nmesh_comm* comm, const void* send, void* recv, size_t count,
                                    nmesh_dtype type, nmesh_reduce_op op, void* stream,
                                    nmesh_work** work) {
  static constexpr const char* kWhat = "nmesh_all_reduce_async";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(work);
    NMESH_C_TYPE(type);
    NMESH_C_OP(op);
    return Issued(AsComm(comm)->AllReduceAsync(send, recv, count, dtype, rop, {.stream = stream}),
                  work);
  });
}

nmesh_result nmesh_all_gather_async(nmesh_comm* comm, const void* send, void* recv,
                                    size_t send_count, nmesh_dtype type, void* stream,
                                    nmesh_work** work) {
  static constexpr const char* kWhat = "nmesh_all_gather_async";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(work);
    NMESH_C_TYPE(type);
    return Issued(AsComm(comm)->AllGatherAsync(send, recv, send_count, dtype, {.stream = stream}),
                  work);
  });
}

nmesh_result nmesh_reduce_scatter_async(nmesh_comm* comm, const void* send, void* recv,
                                        size_t recv_count, nmesh_dtype type, nmesh_reduce_op op,
                                        void* stream, nmesh_work** work) {
  static constexpr const char* kWhat = "nmesh_reduce_scatter_async";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(work);
    NMESH_C_TYPE(type);
    NMESH_C_OP(op);
    return Issued(
        AsComm(comm)->ReduceScatterAsync(send, recv, recv_count, dtype, rop, {.stream = stream}),
        work);
  });
}

nmesh_result nmesh_broadcast_async(nmesh_comm* comm, void* buffer, size_t count, nmesh_dtype type,
                                   int root, void* stream, nmesh_work** work) {
  static constexpr const char* kWhat = "nmesh_broadcast_async";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(work);
    NMESH_C_TYPE(type);
    return Issued(AsComm(comm)->BroadcastAsync(buffer, count, dtype, root, {.stream = stream}),
                  work);
  });
}

nmesh_result nmesh_all_to_all_async(nmesh_comm* comm, const void* send, void* recv, size_t count,
                                    nmesh_dtype type, void* stream, nmesh_work** work) {
  static constexpr const char* kWhat = "nmesh_all_to_all_async";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(work);
    NMESH_C_TYPE(type);
    return Issued(AsComm(comm)->AllToAllAsync(send, recv, count, dtype, {.stream = stream}), work);
  });
}

nmesh_result nmesh_all_to_all_v_async(nmesh_comm* comm, const void* send, const size_t* send_counts,
                                      const size_t* send_displs, void* recv,
                                      const size_t* recv_counts, const size_t* recv_displs,
                                      nmesh_dtype type, void* stream, nmesh_work** work) {
  static constexpr const char* kWhat = "nmesh_all_to_all_v_async";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(work);
    NMESH_C_TYPE(type);
    absl::StatusOr<PeerArrays> a =
        PeerArraysOf(*AsComm(comm), send_counts, send_displs, recv_counts, recv_displs);
    if (!a.ok()) return a.status();
    return Issued(
        AsComm(comm)->AllToAllVAsync(send, a->send_counts, a->send_displs, recv, a->recv_counts,
                                     a->recv_displs, dtype, {.stream = stream}),
        work);
  });
}

nmesh_result nmesh_send_async(nmesh_comm* comm, const void* buffer, size_t count, nmesh_dtype type,
                              int peer, void* stream, nmesh_work** work) {
  static constexpr const char* kWhat = "nmesh_send_async";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(work);
    NMESH_C_TYPE(type);
    return Issued(AsComm(comm)->SendAsync(buffer, count, dtype, peer, {.stream = stream}), work);
  });
}

nmesh_result nmesh_recv_async(nmesh_comm* comm, void* buffer, size_t count, nmesh_dtype type,
                              int peer, void* stream, nmesh_work** work) {
  static constexpr const char* kWhat = "nmesh_recv_async";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(work);
    NMESH_C_TYPE(type);
    return Issued(AsComm(comm)->RecvAsync(buffer, count, dtype, peer, {.stream = stream}), work);
  });
}

nmesh_result nmesh_barrier_async(nmesh_comm* comm, void* stream, nmesh_work** work) {
  static constexpr const char* kWhat = "nmesh_barrier_async";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(comm);
    NMESH_C_REQUIRE(work);
    return Issued(AsComm(comm)->BarrierAsync({.stream = stream}), work);
  });
}

nmesh_result nmesh_work_wait(nmesh_work* work, double timeout_seconds) {
  static constexpr const char* kWhat = "nmesh_work_wait";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(work);
    return work->work.Wait(timeout_seconds < 0 ? absl::InfiniteDuration()
                                               : absl::Seconds(timeout_seconds));
  });
}

nmesh_result nmesh_work_test(nmesh_work* work, int* done) {
  static constexpr const char* kWhat = "nmesh_work_test";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(work);
    NMESH_C_REQUIRE(done);
    absl::StatusOr<bool> tested = work->work.Test();
    if (!tested.ok()) return tested.status();
    *done = *tested ? 1 : 0;
    return absl::OkStatus();
  });
}

nmesh_result nmesh_work_cuda_event(const nmesh_work* work, void** cuda_event) {
  static constexpr const char* kWhat = "nmesh_work_cuda_event";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(work);
    NMESH_C_REQUIRE(cuda_event);
    *cuda_event = nullptr;
#if NMESH_HAVE_NCCL
    absl::StatusOr<cudaEvent_t> event = comm::nccl::EventOf(work->work);
    if (!event.ok()) return event.status();
    *cuda_event = static_cast<void*>(*event);
    return absl::OkStatus();
#else
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: a %s handle has no CUDA event (nmesh was built without NCCL)", kWhat,
        work->work.op()));
#endif
  });
}

void nmesh_work_free(nmesh_work* work) {
  try {
    delete work;
  } catch (...) {
  }
}

nmesh_result nmesh_batch_begin(nmesh_batch** batch) {
  static constexpr const char* kWhat = "nmesh_batch_begin";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(batch);
    *batch = nullptr;
    absl::StatusOr<comm::Batch> begun = comm::Batch::Begin();
    if (!begun.ok()) return begun.status();
    *batch = new nmesh_batch{*std::move(begun)};
    return absl::OkStatus();
  });
}

nmesh_result nmesh_batch_end(nmesh_batch* batch, nmesh_work** work) {
  static constexpr const char* kWhat = "nmesh_batch_end";
  return Call(kWhat, [&]() -> absl::Status {
    NMESH_C_REQUIRE(batch);
    std::unique_ptr<nmesh_batch> owned(batch);
    absl::StatusOr<comm::Work> ended = owned->batch.End();
    if (!ended.ok()) return ended.status();
    if (work != nullptr) {
      *work = new nmesh_work{*std::move(ended)};
    }
    return absl::OkStatus();
  });
}

}  // extern "C"
