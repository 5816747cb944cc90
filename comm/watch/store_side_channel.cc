#include "nmesh/comm/watch/store_side_channel.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/base/fingerprint.h"
#include "nmesh/comm/watch/record_codec.h"

namespace nmesh::comm::internal {
namespace {

// How long the asker waits between two reads of the answers still missing.
constexpr absl::Duration kAnswerPoll = absl::Milliseconds(5);
// How long a hub waits before it reads a store that failed again.
constexpr absl::Duration kStoreFailurePause = absl::Seconds(1);
// The longest a Get may wait for an answer its Check found set.
constexpr absl::Duration kReadLimit = absl::Seconds(1);

class StoreSideChannel final : public SideChannel {
 public:
  StoreSideChannel(std::shared_ptr<StoreWatchHub> hub, std::string id, int rank,
                   std::vector<int64_t> global_ranks)
      : hub_(std::move(hub)), id_(std::move(id)), rank_(rank), global_(std::move(global_ranks)) {
    hub_->Register(id_);
  }
  ~StoreSideChannel() override { hub_->Unregister(id_); }

  int Serve(const FlightRecorder& recorder, const std::function<ProcessState()>& state) override {
    int answered = 0;
    for (int64_t ask : hub_->Take(id_)) {
      const std::string bytes =
          EncodeRecords(recorder.Snapshot(), state(), absl::GetCurrentTimeNanos());
      // A store that fails now leaves this rank unanswered: the asker reports it as silent.
      if (hub_->store().Set(hub_->AnswerKey(ask, rank_), bytes).ok()) ++answered;
    }
    return answered;
  }

  std::vector<RankRecords> Exchange(const FlightRecorder& recorder,
                                    const ExchangeDeadlines& deadlines,
                                    const std::function<void()>& serve) override {
    const int size = static_cast<int>(global_.size());
    std::vector<RankRecords> all(static_cast<size_t>(size));
    for (int r = 0; r < size; ++r) {
      RankRecords& entry = all[static_cast<size_t>(r)];
      entry.rank = r;
      entry.global_rank = global_[static_cast<size_t>(r)];
      if (r == rank_) {
        entry.answered = true;
        entry.now_ns = absl::GetCurrentTimeNanos();
        entry.records = recorder.Snapshot();
      }
    }
    absl::StatusOr<int64_t> ask = hub_->Ask(id_);
    if (!ask.ok()) return all;  // nobody can be asked: every other rank unanswered
    Store& store = hub_->store();
    int missing = size - 1;
    while (missing > 0) {
      for (int r = 0; r < size; ++r) {
        RankRecords& entry = all[static_cast<size_t>(r)];
        if (r == rank_ || entry.answered) continue;
        const std::string key = hub_->AnswerKey(*ask, r);
        absl::StatusOr<bool> set = store.Check(key);
        if (!set.ok() || !*set) continue;
        absl::StatusOr<std::string> bytes = store.Get(key, absl::Now() + kReadLimit);
        if (bytes.ok() && DecodeRecords(*bytes, &entry)) --missing;
      }
      if (missing == 0 || absl::Now() >= deadlines.silent) break;
      serve();
      absl::SleepFor(kAnswerPoll);
    }
    return all;
  }

  int64_t GlobalRank(int rank) const override {
    return rank >= 0 && static_cast<size_t>(rank) < global_.size()
               ? global_[static_cast<size_t>(rank)]
               : -1;
  }

  // No launcher can end the other processes of a store-launched job: this one exits, and the
  // others fail at their own deadlines (or at once, when their connections to it close).
  [[noreturn]] void AbortJob(int code) override {
    std::fflush(nullptr);
    std::_Exit(code);
  }

 private:
  const std::shared_ptr<StoreWatchHub> hub_;
  const std::string id_;
  const int rank_;
  const std::vector<int64_t> global_;
};

}  // namespace

StoreWatchHub::StoreWatchHub(std::shared_ptr<Store> store, std::string prefix)
    : store_(std::move(store)), prefix_(std::move(prefix)) {}

absl::StatusOr<int64_t> StoreWatchHub::Ask(std::string_view id) {
  absl::StatusOr<int64_t> number = store_->Add(absl::StrFormat("%s/n", prefix_), 1);
  if (!number.ok()) return number.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    own_.insert(*number);
  }
  if (absl::Status set = store_->Set(absl::StrFormat("%s/ask/%d", prefix_, *number), id);
      !set.ok()) {
    return set;
  }
  return number;
}

std::vector<int64_t> StoreWatchHub::Take(std::string_view id, bool force) {
  std::lock_guard<std::mutex> lock(mu_);
  if (force || absl::Now() - last_poll_ >= kStoreWatchPoll) PollLocked();
  auto it = pending_.find(id);
  if (it == pending_.end()) return {};
  std::vector<int64_t> asks = std::move(it->second);
  pending_.erase(it);
  return asks;
}

void StoreWatchHub::PollLocked() {
  last_poll_ = absl::Now();
  while (true) {
    const std::string key = absl::StrFormat("%s/ask/%d", prefix_, seen_ + 1);
    absl::StatusOr<bool> set = store_->Check(key);
    absl::StatusOr<std::string> id;
    if (set.ok() && *set) id = store_->Get(key, absl::Now() + kReadLimit);
    if (!set.ok() || (*set && !id.ok())) {
      // A store that fails (gone, unreachable) is read again only after a pause: the watchdog
      // thread, which polls, must not spend its ticks waiting for it.
      last_poll_ = absl::Now() + kStoreFailurePause;
      return;
    }
    if (!*set) return;
    ++seen_;
    // This process's own asks need no answer from it.
    if (own_.erase(seen_) == 0 && registered_.count(*id) > 0) pending_[*id].push_back(seen_);
  }
}

void StoreWatchHub::Register(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  registered_.insert(id);
}

void StoreWatchHub::Unregister(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = registered_.find(id); it != registered_.end()) registered_.erase(it);
  if (registered_.count(id) == 0) pending_.erase(id);
}

std::string StoreWatchHub::AnswerKey(int64_t ask, int rank) const {
  return absl::StrFormat("%s/%d/%d", prefix_, ask, rank);
}

std::string StoreChannelId(std::string_view parent, std::string_view how, int64_t number,
                           int64_t color) {
  Fingerprint f;
  f.Add(parent);
  f.Add(how);
  f.Add(number);
  f.Add(color);
  return absl::StrFormat("%016x", f.value());
}

std::unique_ptr<SideChannel> MakeStoreSideChannel(std::shared_ptr<StoreWatchHub> hub,
                                                  std::string id, int rank,
                                                  std::vector<int64_t> global_ranks) {
  return std::make_unique<StoreSideChannel>(std::move(hub), std::move(id), rank,
                                            std::move(global_ranks));
}

}  // namespace nmesh::comm::internal
