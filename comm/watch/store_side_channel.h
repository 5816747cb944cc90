// The watchdog's separate channel (comm/watch/side_channel.h) over a job's store (comm/store.h),
// for communicators of a job launched without MPI (comm/gloo). Not installed.
//
//   auto hub = std::make_shared<StoreWatchHub>(store, "gloo/watch");   // one per world
//   std::unique_ptr<SideChannel> side =
//       MakeStoreSideChannel(hub, StoreChannelId(parent_id, "split", 3, color), rank, globals);
//
// How ranks ask each other. A rank that asks for the records of communicator ID takes the next
// number k of the hub's counter (Store::Add of "<prefix>/n") and sets "<prefix>/ask/<k>" to ID.
// Every process's watchdog thread serves its channels on each tick; the hub reads the asks that
// have appeared, at most every kStoreWatchPoll (one Check of the next ask per process, whatever
// the number of its communicators), and each rank of communicator ID answers by setting
// "<prefix>/<k>/<its rank in ID>" to its records (comm/watch/record_codec.h). The asker reads the
// answers until every rank has answered or the exchange's silent deadline passes; a rank whose
// answer is still missing then did not answer (stopped, dead, or its watchdog not scheduled in
// time). A store shows no sign of life before an answer, so the alive deadline is not used. Store
// keys are written once; the answers stay in the store after the job ends (a Redis prefix or a
// directory per job, as the rendezvous's keys).
//
// Communicator ids must be equal on every member and differ between the communicators of one hub:
// StoreChannelId derives a child's from its parent's and what every member of the split knows.
#ifndef NMESH_COMM_WATCH_STORE_SIDE_CHANNEL_H_
#define NMESH_COMM_WATCH_STORE_SIDE_CHANNEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "nmesh/comm/store.h"
#include "nmesh/comm/watch/side_channel.h"

namespace nmesh::comm::internal {

// How often a process reads the asks that have appeared in its hub.
inline constexpr absl::Duration kStoreWatchPoll = absl::Milliseconds(50);

// The asks of one world and its sub-communicators, under `prefix` in `store`. Thread-safe.
class StoreWatchHub {
 public:
  StoreWatchHub(std::shared_ptr<Store> store, std::string prefix);

  // Asks for the records of communicator `id`: returns the ask's number (the key its answers go
  // under), or an error from the store.
  absl::StatusOr<int64_t> Ask(std::string_view id);
  // Reads the asks that appeared since the last poll (at most every kStoreWatchPoll; `force`:
  // now) and returns the numbers of those for `id`, taking them. Asks for ids no channel of this
  // process has (Register) are dropped.
  std::vector<int64_t> Take(std::string_view id, bool force = false);
  void Register(const std::string& id);
  void Unregister(const std::string& id);

  // "<prefix>/<ask>/<rank>": where rank `rank` answers ask `ask`.
  std::string AnswerKey(int64_t ask, int rank) const;
  Store& store() { return *store_; }

 private:
  void PollLocked();

  const std::shared_ptr<Store> store_;
  const std::string prefix_;
  std::mutex mu_;
  int64_t seen_ = 0;                                                  // guarded by mu_
  absl::Time last_poll_ = absl::InfinitePast();                       // guarded by mu_
  std::map<std::string, std::vector<int64_t>, std::less<>> pending_;  // guarded by mu_
  std::multiset<std::string, std::less<>> registered_;                // guarded by mu_
  std::set<int64_t> own_;  // this process's asks not yet read back; guarded by mu_
};

// A child communicator's id: from its parent's (`parent`), what kind of split made it (`how`),
// the split's number among the parent's splits of that kind and the group's color; 16 hex digits.
std::string StoreChannelId(std::string_view parent, std::string_view how, int64_t number,
                           int64_t color);

// A channel for the communicator `id` of `hub`, this process being rank `rank` of it; its ranks'
// global ranks are `global_ranks` (in rank order).
std::unique_ptr<SideChannel> MakeStoreSideChannel(std::shared_ptr<StoreWatchHub> hub,
                                                  std::string id, int rank,
                                                  std::vector<int64_t> global_ranks);

}  // namespace nmesh::comm::internal

#endif  // NMESH_COMM_WATCH_STORE_SIDE_CHANNEL_H_
