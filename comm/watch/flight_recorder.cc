#include "nmesh/comm/watch/flight_recorder.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/enum_names.h"

namespace nmesh::comm {

std::string_view OpStateName(OpState state) {
  static constexpr NamedValue<OpState> kNames[] = {{OpState::kRunning, "running"},
                                                   {OpState::kCompleted, "completed"},
                                                   {OpState::kFailed, "failed"}};
  return NameOf<OpState>(kNames, state);
}

std::string FormatBytes(uint64_t bytes) {
  constexpr std::array<std::string_view, 5> kUnits = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < kUnits.size()) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrFormat("%d B", bytes);
  return absl::StrFormat("%g %s", std::round(value * 10) / 10, kUnits[unit]);
}

std::string DescribeRecord(const OpRecord& r) {
  std::string text = absl::StrFormat("%s #%d", OpKindName(r.op), r.seq);
  if (r.op == OpKind::kBarrier || r.op == OpKind::kSplit) return text;
  std::vector<std::string> details;
  if (r.op != OpKind::kAllToAllV) {
    details.push_back(
        absl::StrFormat("%s %s", FormatBytes(static_cast<uint64_t>(r.count) * DataTypeSize(r.type)),
                        DataTypeName(r.type)));
  } else {
    details.push_back(std::string(DataTypeName(r.type)));
  }
  if (IsRooted(r.op) && r.peer >= 0) details.push_back(absl::StrFormat("root %d", r.peer));
  if (r.op == OpKind::kSend || r.op == OpKind::kSendRecv) {
    details.push_back(absl::StrFormat("to %d", r.peer));
  }
  if (r.op == OpKind::kRecv) details.push_back(absl::StrFormat("from %d", r.peer));
  absl::StrAppendFormat(&text, " (%s)", absl::StrJoin(details, ", "));
  return text;
}

FlightRecorder::FlightRecorder(size_t capacity) : ring_(std::max<size_t>(capacity, 1)) {}

uint64_t FlightRecorder::Start(OpKind op, int64_t count, DataType type, int32_t peer,
                               int64_t now_ns, int64_t deadline_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t seq = ++last_;
  OpRecord& r = ring_[(seq - 1) % ring_.size()];
  r.seq = seq;
  r.collective_seq = IsPointToPoint(op) ? 0 : ++last_collective_;
  r.count = count;
  r.enqueue_ns = now_ns;
  r.start_ns = now_ns;
  r.end_ns = 0;
  r.deadline_ns = deadline_ns;
  r.peer = peer;
  r.op = op;
  r.type = type;
  r.state = OpState::kRunning;
  return seq;
}

void FlightRecorder::Finish(uint64_t seq, bool ok, int64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  OpRecord& r = ring_[(seq - 1) % ring_.size()];
  if (r.seq != seq || r.state != OpState::kRunning) return;
  r.end_ns = now_ns;
  r.state = ok ? OpState::kCompleted : OpState::kFailed;
}

void FlightRecorder::Unwatch() {
  std::lock_guard<std::mutex> lock(mu_);
  for (OpRecord& r : ring_) r.deadline_ns = 0;
}

std::vector<OpRecord> FlightRecorder::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<OpRecord> out;
  const uint64_t n = std::min<uint64_t>(last_, ring_.size());
  out.reserve(n);
  for (uint64_t seq = last_ - n + 1; seq <= last_; ++seq) {
    out.push_back(ring_[(seq - 1) % ring_.size()]);
  }
  return out;
}

uint64_t FlightRecorder::last_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_;
}

uint64_t FlightRecorder::last_collective_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_collective_;
}

std::optional<OpRecord> FlightRecorder::FirstExpired(int64_t now_ns) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<OpRecord> first;
  for (const OpRecord& r : ring_) {
    if (r.seq == 0 || r.state != OpState::kRunning || r.deadline_ns == 0) continue;
    if (r.deadline_ns > now_ns) continue;
    if (!first.has_value() || r.seq < first->seq) first = r;
  }
  return first;
}

}  // namespace nmesh::comm
