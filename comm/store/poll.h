// What the stores share (internal): the pause between polls, the messages of a passed deadline,
// and the escaping of untrusted text in messages.
#ifndef NMESH_COMM_STORE_POLL_H_
#define NMESH_COMM_STORE_POLL_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace nmesh::comm::store::internal {

// A pause that grows from 1 ms to 20 ms, never past a deadline.
class Backoff {
 public:
  // Sleeps for the next pause, or until `deadline`, whichever is first; false when the deadline
  // had already passed (nothing slept).
  bool Sleep(absl::Time deadline);

 private:
  absl::Duration pause_ = absl::Milliseconds(1);
};

// `text` with control characters, quotes and bytes over 0x7e escaped (C style).
std::string Escape(std::string_view text);

// DeadlineExceeded: "store STORE: timed out waiting for key(s) K1, K2 (... N more)".
absl::Status MissingKeys(std::string_view store, const std::vector<std::string>& missing);

}  // namespace nmesh::comm::store::internal

#endif  // NMESH_COMM_STORE_POLL_H_
