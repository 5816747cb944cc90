#include "nmesh/comm/store_exchange.h"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"

namespace nmesh::comm {
namespace {

std::string Key(std::string_view name, int rank) {
  return absl::StrCat(std::string(name), "/", rank);
}

// "within 30s", or "by its deadline" for one that had already passed.
std::string Within(absl::Time start, absl::Time deadline) {
  if (deadline <= start) return "by the deadline";
  return absl::StrCat("within ",
                      absl::FormatDuration(absl::Ceil(deadline - start, absl::Milliseconds(100))));
}

}  // namespace

absl::StatusOr<std::vector<std::optional<std::string>>> StoreCollect(Store& store,
                                                                     std::string_view name,
                                                                     int size,
                                                                     absl::Time deadline) {
  std::vector<std::optional<std::string>> values(static_cast<size_t>(std::max(size, 0)));
  bool late = false;
  for (int r = 0; r < size; ++r) {
    const std::string key = Key(name, r);
    if (late) {
      // The deadline has passed: only what is there now counts.
      NMESH_ASSIGN_OR_RETURN(bool present, store.Check(key));
      if (!present) continue;
    }
    absl::StatusOr<std::string> value =
        store.Get(key, late ? absl::Now() + absl::Seconds(1) : deadline);
    if (value.ok()) {
      values[static_cast<size_t>(r)] = *std::move(value);
    } else if (value.status().code() == absl::StatusCode::kDeadlineExceeded) {
      late = true;
    } else {
      return value.status();
    }
  }
  return values;
}

std::string MissingRanks(absl::Span<const std::optional<std::string>> values) {
  std::vector<size_t> missing;
  for (size_t r = 0; r < values.size(); ++r) {
    if (!values[r].has_value()) missing.push_back(r);
  }
  if (missing.empty()) return "";
  constexpr size_t kShown = 16;
  const size_t shown = std::min(missing.size(), kShown);
  return absl::StrFormat(
      "%s %s%s did not arrive", missing.size() == 1 ? "rank" : "ranks",
      absl::StrJoin(missing.begin(), missing.begin() + static_cast<std::ptrdiff_t>(shown), ", "),
      missing.size() > kShown ? absl::StrFormat(", ... (%d ranks)", missing.size()) : "");
}

absl::StatusOr<std::vector<std::string>> StoreAllGather(Store& store, std::string_view name,
                                                        int rank, int size, std::string_view mine,
                                                        absl::Time deadline) {
  const absl::Time start = absl::Now();
  NMESH_RETURN_IF_ERROR(store.Set(Key(name, rank), mine));
  NMESH_ASSIGN_OR_RETURN(std::vector<std::optional<std::string>> values,
                         StoreCollect(store, name, size, deadline));
  if (std::string missing = MissingRanks(values); !missing.empty()) {
    return absl::DeadlineExceededError(absl::StrFormat("%s: %s at the store %s %s", name, missing,
                                                       store.Describe(), Within(start, deadline)));
  }
  std::vector<std::string> all;
  all.reserve(values.size());
  for (std::optional<std::string>& value : values) all.push_back(*std::move(value));
  return all;
}

absl::StatusOr<std::string> StoreRendezvous(Store& store, std::string_view name, int rank, int size,
                                            std::string_view record, absl::Duration timeout,
                                            const StoreDecision& decide) {
  const absl::Time start = absl::Now();
  NMESH_RETURN_IF_ERROR(store.Set(Key(name, rank), record));
  const std::string verdict_key = absl::StrCat(std::string(name), "/verdict");
  if (rank != 0) {
    const absl::Time deadline = start + 2 * timeout + absl::Seconds(1);
    absl::StatusOr<std::string> verdict = store.Get(verdict_key, deadline);
    if (verdict.status().code() == absl::StatusCode::kDeadlineExceeded) {
      return absl::DeadlineExceededError(
          absl::StrFormat("%s: rank 0 did not answer at the store %s %s (rank 0 is late, stopped "
                          "or dead)",
                          name, store.Describe(), Within(start, deadline)));
    }
    return verdict;
  }
  NMESH_ASSIGN_OR_RETURN(std::vector<std::optional<std::string>> records,
                         StoreCollect(store, name, size, start + timeout));
  std::string verdict = decide(records);
  NMESH_RETURN_IF_ERROR(store.Set(verdict_key, verdict));
  return verdict;
}

absl::Status StoreAgreeOnStatus(Store& store, std::string_view name, int rank, int size,
                                const absl::Status& local, absl::Time deadline) {
  NMESH_ASSIGN_OR_RETURN(
      std::vector<std::string> all,
      StoreAllGather(store, name, rank, size,
                     absl::StrCat(static_cast<int>(local.code()), "\n", local.message()),
                     deadline));
  if (!local.ok()) return local;
  for (int r = 0; r < size; ++r) {
    const std::string& record = all[static_cast<size_t>(r)];
    const size_t newline = record.find('\n');
    int code = 0;
    if (newline == std::string::npos || !absl::SimpleAtoi(record.substr(0, newline), &code) ||
        code < 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
      return absl::InternalError(
          absl::StrFormat("%s: rank %d set a status this rank cannot read at the store %s", name, r,
                          store.Describe()));
    }
    if (code == 0) continue;
    return absl::Status(
        static_cast<absl::StatusCode>(code),
        absl::StrFormat("%s [reported by rank %d of %d]", record.substr(newline + 1), r, size));
  }
  return absl::OkStatus();
}

}  // namespace nmesh::comm
