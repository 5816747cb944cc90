#include "nmesh/comm/mpi/status.h"

#include <mpi.h>

#include <string>

#include "absl/strings/str_format.h"

namespace nmesh::comm::mpi {
namespace {

struct ErrorClass {
  int value;
  const char* name;
  absl::StatusCode code;
};

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

const ErrorClass kClasses[] = {
    {MPI_ERR_ARG, "MPI_ERR_ARG", kInvalid},
    {MPI_ERR_BUFFER, "MPI_ERR_BUFFER", kInvalid},
    {MPI_ERR_COUNT, "MPI_ERR_COUNT", kInvalid},
    {MPI_ERR_TYPE, "MPI_ERR_TYPE", kInvalid},
    {MPI_ERR_OP, "MPI_ERR_OP", kInvalid},
    {MPI_ERR_ROOT, "MPI_ERR_ROOT", kInvalid},
    {MPI_ERR_RANK, "MPI_ERR_RANK", kInvalid},
    {MPI_ERR_TAG, "MPI_ERR_TAG", kInvalid},
    {MPI_ERR_TRUNCATE, "MPI_ERR_TRUNCATE", kInvalid},
    {MPI_ERR_COMM, "MPI_ERR_COMM", kInvalid},
    {MPI_ERR_GROUP, "MPI_ERR_GROUP", kInvalid},
    {MPI_ERR_PENDING, "MPI_ERR_PENDING", absl::StatusCode::kUnavailable},
    {MPI_ERR_IN_STATUS, "MPI_ERR_IN_STATUS", absl::StatusCode::kUnavailable},
    {MPI_ERR_REQUEST, "MPI_ERR_REQUEST", absl::StatusCode::kInternal},
    {MPI_ERR_INTERN, "MPI_ERR_INTERN", absl::StatusCode::kInternal},
    {MPI_ERR_OTHER, "MPI_ERR_OTHER", absl::StatusCode::kInternal},
};

}  // namespace

absl::Status MpiStatus(int code, std::string_view call, int rank) {
  if (code == MPI_SUCCESS) return absl::OkStatus();
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  std::string text = "MPI not initialised";
  int error_class = code;
  if (initialized && !finalized) {
    char buffer[MPI_MAX_ERROR_STRING] = {};
    int length = 0;
    if (MPI_Error_string(code, buffer, &length) == MPI_SUCCESS)
      text.assign(buffer, length);
    else
      text = absl::StrFormat("unknown MPI error code %d", code);
    MPI_Error_class(code, &error_class);
  }
  std::string class_name = absl::StrFormat("MPI error class %d", error_class);
  absl::StatusCode status_code = absl::StatusCode::kInternal;
  for (const ErrorClass& c : kClasses) {
    if (c.value != error_class) continue;
    class_name = c.name;
    status_code = c.code;
    break;
  }
  return absl::Status(
      status_code, absl::StrFormat("%s failed on rank %d: %s: %s", call, rank, class_name, text));
}

}  // namespace nmesh::comm::mpi
