// The bytes one rank sends another over a watchdog side channel (comm/watch/side_channel.h): its
// clock, its flight records and where its process stands on every watched communicator. Every
// rank runs the same binary, so records travel as their in-memory bytes. Not installed.
//
//   std::string bytes = EncodeRecords(recorder.Snapshot(), state, absl::GetCurrentTimeNanos());
//   RankRecords entry;
//   if (DecodeRecords(bytes, &entry)) { ... entry.records, entry.axes ... }
#ifndef NMESH_COMM_WATCH_RECORD_CODEC_H_
#define NMESH_COMM_WATCH_RECORD_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "nmesh/comm/watch/diagnosis.h"
#include "nmesh/comm/watch/flight_recorder.h"
#include "nmesh/comm/watch/side_channel.h"

namespace nmesh::comm::internal {

// `records`, `state` and the sender's clock `now_ns` as bytes. blocked_in is cut to 159 bytes and
// axis names to 63.
std::string EncodeRecords(const std::vector<OpRecord>& records, const ProcessState& state,
                          int64_t now_ns);

// Reads what EncodeRecords wrote into `entry` (answered, now_ns, records, blocked_in, axes; rank
// and global_rank untouched). Untrusted input: false, with `entry` unanswered, when the header is
// short; a truncated or malformed rest yields what could be read.
bool DecodeRecords(std::string_view bytes, RankRecords* entry);

}  // namespace nmesh::comm::internal

#endif  // NMESH_COMM_WATCH_RECORD_CODEC_H_
