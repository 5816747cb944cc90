#include "nmesh/base/timeout.h"

#include <cmath>

#include "absl/strings/str_format.h"

namespace nmesh {

absl::Status CheckTimeout(std::optional<absl::Duration> timeout, std::string_view what) {
  if (!timeout.has_value()) return absl::OkStatus();
  if (*timeout == absl::InfiniteDuration()) {
    // absl::Seconds(NaN) is this same infinite duration: the NaN cannot be told apart here.
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s must be a positive, finite duration of at least 1 ns, got an infinite one (inf, or "
        "a NaN amount: absl::Seconds(NaN) is infinite)",
        what));
  }
  if (*timeout < absl::Nanoseconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be a positive, finite duration of at least 1 ns, got %s", what,
                        absl::FormatDuration(*timeout)));
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> TimeoutFromNumber(double amount, absl::Duration unit,
                                                 std::string_view unit_name,
                                                 std::string_view what) {
  if (std::isnan(amount) || amount <= 0 || std::isinf(amount)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be a positive number of %s, got %g", what, unit_name, amount));
  }
  const absl::Duration timeout = amount * unit;
  if (timeout == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is too large: %g %s does not fit a duration", what, amount, unit_name));
  }
  if (timeout < absl::Nanoseconds(1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s must be a positive number of %s, got %g, which rounds to zero (less than 1 ns)", what,
        unit_name, amount));
  }
  return timeout;
}

}  // namespace nmesh
