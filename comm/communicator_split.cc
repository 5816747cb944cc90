// Communicator: the splits (Split, SplitAgreed) and the default agreed-split hooks.
#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"

namespace nmesh::comm {

namespace ci = internal;

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Split(std::optional<int> color, int key,
                                                                  CommOptions options) {
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, OpKindName(OpKind::kSplit)));
  NMESH_RETURN_IF_ERROR(
      Revoked(OpKindName(OpKind::kSplit), CheckUsable(OpKindName(OpKind::kSplit))));
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  const uint64_t seq = BeginRecord({.op = OpKind::kSplit, .root = color.value_or(-1)});
  absl::StatusOr<std::unique_ptr<Communicator>> split = DoSplit(color, key, std::move(options));
  (void)EndRecord(seq, split.status());
  if (!split.ok()) return Revoked(OpKindName(OpKind::kSplit), split.status());
  return split;
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::SplitAgreed(std::optional<int> color,
                                                                        int key,
                                                                        CommOptions options) {
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, OpKindName(OpKind::kSplit)));
  NMESH_RETURN_IF_ERROR(
      Revoked(OpKindName(OpKind::kSplit), CheckUsable(OpKindName(OpKind::kSplit))));
  NMESH_RETURN_IF_ERROR(ci::CheckSplit(*this, color));
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  const uint64_t seq = BeginRecord({.op = OpKind::kSplit, .root = color.value_or(-1)});
  absl::StatusOr<std::unique_ptr<Communicator>> split =
      DoSplitAgreed(color, key, std::move(options));
  (void)EndRecord(seq, split.status());
  if (!split.ok()) return Revoked(OpKindName(OpKind::kSplit), split.status());
  return split;
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::SplitAgreed(
    absl::Span<const int> members, CommOptions options) {
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, OpKindName(OpKind::kSplit)));
  NMESH_RETURN_IF_ERROR(
      Revoked(OpKindName(OpKind::kSplit), CheckUsable(OpKindName(OpKind::kSplit))));
  NMESH_RETURN_IF_ERROR(ci::CheckSplitMembers(*this, members));
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  const uint64_t seq =
      BeginRecord({.op = OpKind::kSplit, .root = members.empty() ? -1 : members.front()});
  absl::StatusOr<std::unique_ptr<Communicator>> split =
      DoSplitAgreedMembers(members, std::move(options));
  (void)EndRecord(seq, split.status());
  if (!split.ok()) return Revoked(OpKindName(OpKind::kSplit), split.status());
  return split;
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::DoSplitAgreed(std::optional<int> color,
                                                                          int key,
                                                                          CommOptions options) {
  return DoSplit(color, key, std::move(options));
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::DoSplitAgreedMembers(
    absl::Span<const int> members, CommOptions options) {
  if (members.empty()) return DoSplitAgreed(std::nullopt, 0, std::move(options));
  const int key =
      static_cast<int>(std::find(members.begin(), members.end(), rank()) - members.begin());
  return DoSplitAgreed(members.front(), key, std::move(options));
}

}  // namespace nmesh::comm
