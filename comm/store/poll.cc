#include "nmesh/comm/store/poll.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace nmesh::comm::store::internal {

bool Backoff::Sleep(absl::Time deadline) {
  const absl::Time now = absl::Now();
  if (now >= deadline) return false;
  absl::SleepFor(std::min(pause_, deadline - now));
  pause_ = std::min(pause_ * 2, absl::Milliseconds(20));
  return true;
}

std::string Escape(std::string_view text) {
  return absl::CHexEscape(absl::string_view(text.data(), text.size()));
}

absl::Status MissingKeys(std::string_view store, const std::vector<std::string>& missing) {
  constexpr size_t kShown = 8;
  std::string names;
  for (size_t i = 0; i < missing.size() && i < kShown; ++i) {
    absl::StrAppend(&names, i == 0 ? "" : ", ", "'", Escape(missing[i]), "'");
  }
  if (missing.size() > kShown) absl::StrAppend(&names, " (and ", missing.size() - kShown, " more)");
  return absl::DeadlineExceededError(absl::StrFormat("store %s: timed out waiting for %s %s",
                                                     Escape(store),
                                                     missing.size() == 1 ? "key" : "keys", names));
}

}  // namespace nmesh::comm::store::internal
