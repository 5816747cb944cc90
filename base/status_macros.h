// Status helpers that Debian's Abseil (20220623) does not ship.
//
//   // In a function returning absl::Status or absl::StatusOr<T>:
//   NMESH_RETURN_IF_ERROR(CheckSizes(sizes));                // returns the error, if any
//   NMESH_ASSIGN_OR_RETURN(int64_t dp, InferDp(sizes));      // or returns the error
//   NMESH_CHECK(dp > 0) << "inference returned " << dp;     // programmer errors only: aborts
#ifndef NMESH_BASE_STATUS_MACROS_H_
#define NMESH_BASE_STATUS_MACROS_H_

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace nmesh::base_internal {

inline const absl::Status& AsStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& AsStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// Streams a message, then aborts the process when destroyed. Used by NMESH_CHECK.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition) {
    stream_ << file << ":" << line << ": NMESH_CHECK failed: " << condition << " ";
  }
  [[noreturn]] ~CheckFailure() {
    std::cerr << stream_.str() << std::endl;
    std::abort();
  }
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

}  // namespace nmesh::base_internal

#define NMESH_STATUS_CONCAT_INNER_(a, b) a##b
#define NMESH_STATUS_CONCAT_(a, b) NMESH_STATUS_CONCAT_INNER_(a, b)

// Returns the status of `expr` (a Status or StatusOr) from the enclosing function if it is not OK.
#define NMESH_RETURN_IF_ERROR(expr)                              \
  do {                                                           \
    auto&& nmesh_status_ = (expr);                               \
    if (!nmesh_status_.ok()) {                                   \
      return ::nmesh::base_internal::AsStatus(                   \
          std::forward<decltype(nmesh_status_)>(nmesh_status_)); \
    }                                                            \
  } while (false)

// Evaluates `rexpr` (a StatusOr<T>); on error returns its status, otherwise assigns the value to
// `lhs`, which may be a declaration (`NMESH_ASSIGN_OR_RETURN(auto x, F())`).
#define NMESH_ASSIGN_OR_RETURN(lhs, rexpr) \
  NMESH_ASSIGN_OR_RETURN_IMPL_(NMESH_STATUS_CONCAT_(nmesh_statusor_, __LINE__), lhs, rexpr)

#define NMESH_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

// Aborts with a message when an invariant is broken. Not for input errors: those return Status.
#define NMESH_CHECK(condition) \
  if (condition) {             \
  } else                       \
    ::nmesh::base_internal::CheckFailure(__FILE__, __LINE__, #condition).stream()

#endif  // NMESH_BASE_STATUS_MACROS_H_
