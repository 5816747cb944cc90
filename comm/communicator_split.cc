// Communicator: the splits (Split, SplitAgreed) and the default agreed-split hooks.
#include <algorithm>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

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

absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> Communicator::SplitAgreedMany(
    absl::Span<const AgreedSplit> splits) {
  NMESH_RETURN_IF_ERROR(ci::CheckNoBatch(*this, OpKindName(OpKind::kSplit)));
  NMESH_RETURN_IF_ERROR(
      Revoked(OpKindName(OpKind::kSplit), CheckUsable(OpKindName(OpKind::kSplit))));
  for (const AgreedSplit& split : splits) {
    NMESH_RETURN_IF_ERROR(ci::CheckSplitMembers(*this, split.members));
    NMESH_RETURN_IF_ERROR(CheckTimeout(split.options.timeout, "CommOptions.timeout"));
  }
  // One record per split, as SplitAgreed makes, all open while the splits are made together.
  std::vector<uint64_t> seqs;
  seqs.reserve(splits.size());
  for (const AgreedSplit& split : splits) {
    seqs.push_back(BeginRecord(
        {.op = OpKind::kSplit, .root = split.members.empty() ? -1 : split.members.front()}));
  }
  absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> made = DoSplitAgreedMany(splits);
  for (uint64_t seq : seqs) (void)EndRecord(seq, made.status());
  if (!made.ok()) return Revoked(OpKindName(OpKind::kSplit), made.status());
  return made;
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

absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> Communicator::DoSplitAgreedMany(
    absl::Span<const AgreedSplit> splits) {
  std::vector<std::unique_ptr<Communicator>> made;
  made.reserve(splits.size());
  for (const AgreedSplit& split : splits) {
    NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
                           DoSplitAgreedMembers(split.members, split.options));
    made.push_back(std::move(comm));
  }
  return made;
}

}  // namespace nmesh::comm
