// Checks on a timeout wherever one is set (a communicator, a mesh, --timeout-s, a recipe's
// dist_env.timeout_minutes): zero, negative, NaN, infinite, or so small that it rounds to zero
// as an absl::Duration (e.g. 1e-300 minutes) is InvalidArgument naming what was set.
//
//   NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
//   auto t = TimeoutFromNumber(seconds, absl::Seconds(1), "seconds", "--timeout-s");
#ifndef NMESH_BASE_TIMEOUT_H_
#define NMESH_BASE_TIMEOUT_H_

#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nmesh {

// OK for an unset timeout or one of at least 1 ns and finite; otherwise InvalidArgument
// "<what> must be a positive, finite duration, got <value>".
absl::Status CheckTimeout(std::optional<absl::Duration> timeout, std::string_view what);

// `amount` of `unit` (absl::Seconds(1), absl::Minutes(1)) as a Duration, when finite, positive
// and not rounding to zero; otherwise InvalidArgument naming `what`, the value and the unit name
// `unit_name` ("seconds", "minutes").
absl::StatusOr<absl::Duration> TimeoutFromNumber(double amount, absl::Duration unit,
                                                 std::string_view unit_name, std::string_view what);

}  // namespace nmesh

#endif  // NMESH_BASE_TIMEOUT_H_
