// The Communicator of comm/gloo: one gloo context (its connections), the device loop's ticker, a
// thread for asynchronous collectives and one for asynchronous point-to-point operations, and the
// mailbox of a rank's messages to itself (the semantics: comm/gloo/communicator.h). Not
// installed. Its members are defined by concern:
//   communicator.cc  lifetime (Shut, Release, Abort), the timeout, running operations (blocking on
//                    the caller's thread, asynchronous on the worker and waiter threads), failures
//                    and timeouts, point-to-point transfers and the mailbox
//   split.cc         Split and SplitAgreed by member lists: each child's group connected over the
//                    parent (ConnectChild), ConfirmConnections
//   world.cc         WorldCommunicator (the rendezvous through a store), NativeContext,
//                    AdoptContext
//
//   auto world = std::make_unique<GlooCommunicator>(std::move(context), std::move(options),
//                                                   std::move(ticker), std::move(watch));
#ifndef NMESH_COMM_GLOO_GLOO_COMMUNICATOR_H_
#define NMESH_COMM_GLOO_GLOO_COMMUNICATOR_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gloo/context.h"
#include "gloo/transport/context.h"
#include "gloo/transport/device.h"
#include "gloo/transport/unbound_buffer.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/gloo/loop_ticker.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/watch/flight_recorder.h"
#include "nmesh/comm/watch/side_channel.h"
#include "nmesh/comm/watch/store_side_channel.h"

namespace nmesh::comm::gloo {

using Millis = std::chrono::milliseconds;

// The wait of an operation without a timeout: long enough to be forever, short enough that gloo's
// clock arithmetic cannot overflow.
inline constexpr Millis kForever = std::chrono::hours(24 * 30);

inline Millis GlooTimeout(std::optional<absl::Duration> timeout) {
  if (!timeout) return kForever;
  const int64_t ms = std::clamp<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(*timeout, absl::Milliseconds(1))), 1, kForever.count());
  return Millis(ms);
}

// The end of an operation, shared by its handle and the thread that completes it.
class Completion {
 public:
  void Finish(absl::Status status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_) return;
      done_ = true;
      status_ = std::move(status);
    }
    cv_.notify_all();
  }
  bool Poll(absl::Status* status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) *status = status_;
    return done_;
  }
  absl::Status Block() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    return status_;
  }
  // Whether it finished by `deadline`.
  bool WaitUntil(absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done_) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      cv_.wait_for(lock, absl::ToChronoNanoseconds(std::min(left, absl::Hours(1))));
    }
    return true;
  }
  absl::Status status() {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  absl::Status status_;
};

class GlooWork final : public Work::Impl {
 public:
  GlooWork(const Communicator& comm, OpKind op, std::shared_ptr<Completion> done)
      : Impl(comm, op), done_(std::move(done)) {}

 protected:
  bool Poll(absl::Status* status) override { return done_->Poll(status); }
  absl::Status Block() override { return done_->Block(); }

 private:
  std::shared_ptr<Completion> done_;
};

// A gloo context whose transport this backend connected itself (a split's group).
class GroupContext final : public ::gloo::Context {
 public:
  GroupContext(int rank, int size) : ::gloo::Context(rank, size) {}
  void Attach(std::shared_ptr<::gloo::transport::Device> device,
              std::shared_ptr<::gloo::transport::Context> transport) {
    device_ = std::move(device);
    transportContext_ = std::move(transport);
  }
};

// One point-to-point operation in flight: gloo transfers and sends to or receives from this rank
// itself (the mailbox).
struct Transfer {
  OpKind op;
  std::vector<std::unique_ptr<::gloo::transport::UnboundBuffer>> sends, recvs;
  std::vector<std::shared_ptr<Completion>> self;
  std::optional<absl::Duration> timeout;
  absl::Time deadline;
  std::shared_ptr<Completion> done = std::make_shared<Completion>();
};

// How a communicator of a store-launched world is watched: the world's hub of asks (comm/watch/
// store_side_channel.h), the communicator's id in it and its ranks' global ranks. No hub: not
// watched (an adopted context).
struct WatchSetup {
  std::shared_ptr<internal::StoreWatchHub> hub;
  std::string id;
  std::vector<int64_t> global;
};

// A rank's message to itself, waiting for its receive (or the receive, waiting for the message).
struct SelfSide {
  const void* send = nullptr;
  void* recv = nullptr;
  size_t bytes = 0;
  std::shared_ptr<Completion> done;
};

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(std::shared_ptr<::gloo::Context> context, CommOptions options,
                   std::shared_ptr<LoopTicker> ticker, WatchSetup watch = {});

  ~GlooCommunicator() override;

  // DeviceMesh::Comm handed out a plain pointer: the connections, threads and gloo context go now,
  // the object stays and every later call fails naming `reason`.
  bool Release(std::string_view reason) override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string_view backend() const override { return "gloo"; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }
  const CommOptions& options() const override { return options_; }
  const std::shared_ptr<::gloo::Context>& context() const { return context_; }

  // Marks the communicator; an operation in flight (on any thread) is ended by closing the
  // connections. An idle communicator keeps them: its peers are not disturbed.
  absl::Status Abort() override;

 protected:
  absl::Status CheckUsable(std::string_view op) const override {
    return abort_state_.Check(*this, op);
  }

  absl::Status DoSetTimeout(std::optional<absl::Duration> timeout) override;

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int> color, int key,
                                                        CommOptions options) override;
  absl::StatusOr<std::unique_ptr<Communicator>> DoSplitAgreedMembers(absl::Span<const int> members,
                                                                     CommOptions options) override;
  absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> DoSplitAgreedMany(
      absl::Span<const AgreedSplit> splits) override;

  absl::Status DoRun(const OpArgs& args) override;
  absl::StatusOr<Work> DoAsync(const OpArgs& args, const AsyncOptions&) override;

 private:
  struct Task {
    OpArgs args;
    std::vector<size_t> counts;  // the all_to_all_v arrays args points to
    std::optional<absl::Duration> timeout;
    std::shared_ptr<Completion> done = std::make_shared<Completion>();
  };

  // Runs `fn` once no collective of this communicator runs or waits to run on its thread.
  template <typename F>
  absl::Status RunExclusive(F&& fn) {
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return queue_.empty() && !running_; });
      running_ = true;
    }
    absl::Status status = fn();
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      running_ = false;
    }
    queue_cv_.notify_all();
    return status;
  }

  void WorkerLoop();
  void WaiterLoop();

  // A checked collective, its gloo exceptions turned into statuses.
  absl::Status RunChecked(const OpArgs& args, std::optional<absl::Duration> timeout);

  // The status of an operation that gloo ended with `what`; aborts the communicator.
  absl::Status Failed(OpKind op, std::string_view what, std::optional<absl::Duration> timeout,
                      absl::Time start);

  // The record of the operation `op` that outlived `timeout`: the oldest still running (collectives
  // run one at a time, in issue order), with the deadline gloo enforced.
  OpRecord StuckRecord(OpKind op, absl::Duration timeout) const;

  // What a child of this communicator made by split `how` number `number` with `color` (its
  // members' ranks here: `members`) is watched with.
  // A new pair of `transport` for its member `peer`, and its address (`address_bytes` long, else
  // Internal). Throws what gloo throws.
  absl::StatusOr<std::vector<char>> PairAddress(::gloo::transport::Context& transport, int peer,
                                                size_t address_bytes) const;
  WatchSetup ChildWatch(std::string_view how, int64_t number, int64_t color,
                        const std::vector<int>& members) const;

  // Posts a send, recv or sendrecv (checked): gloo transfers at once, and this rank's messages to
  // itself through the mailbox.
  absl::StatusOr<std::unique_ptr<Transfer>> Post(const OpArgs& a);

  // Waits for every part of `t` (bounded by its deadline).
  absl::Status Complete(Transfer& t);

  Millis Remaining(const Transfer& t) const;

  // The mailbox: a send to this rank is matched with the first receive from it, in order.
  std::shared_ptr<Completion> PostSelf(SelfSide side);

  void WithdrawSelf(const std::shared_ptr<Completion>& done);

  void FailSelf(const absl::Status& status);

  // Whether an operation of this communicator is in flight: a collective running or queued, a
  // point-to-point operation being waited for or posted, a message to itself pending.
  bool Busy();

  // Ends every transfer on this communicator's connections, here and on the peers (which see the
  // connection close). Thread-safe; idempotent; nothing once the context is gone (Shut).
  void CloseConnections();

  // What the destructor and Release free, once: pending handles and transfers end with `why`, the
  // threads stop and the gloo context (its connections) goes.
  void Shut(std::string_view why);

  std::shared_ptr<LoopTicker> ticker_;  // null: gloo's own loop turns
  std::shared_ptr<::gloo::Context> context_;
  const int rank_;
  const int size_;
  CommOptions options_;
  WatchSetup watch_;
  std::unique_ptr<internal::SideChannel> side_;  // null: not watched
  internal::AbortState abort_state_;
  internal::WorkRegistry registry_;
  bool shut_ = false;   // Shut ran (Release or the destructor)
  int64_t splits_ = 0;  // DoSplit calls so far (every rank calls each)
  // DoSplitAgreedMembers calls so far, by a fingerprint of the members (only they call it).
  std::map<uint64_t, int64_t> member_splits_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Task> queue_;  // guarded by queue_mu_
  bool running_ = false;    // a collective runs (worker or caller); guarded by queue_mu_
  bool stop_ = false;       // guarded by queue_mu_
  std::thread worker_;

  std::mutex transfer_mu_;
  std::condition_variable transfer_cv_;
  std::deque<std::unique_ptr<Transfer>> transfers_;  // guarded by transfer_mu_
  bool waiting_ = false;                             // guarded by transfer_mu_
  bool transfer_stop_ = false;                       // guarded by transfer_mu_
  std::thread waiter_;

  std::mutex self_mu_;
  std::deque<SelfSide> self_sends_, self_recvs_;  // guarded by self_mu_

  std::atomic<int> point_to_point_{0};  // blocking point-to-point operations on the caller's thread
};

// One byte over every connection of `context`, both ways: gloo's connect returns on one side of a
// connection before the other side has finished its handshake, and a rank that closed its
// context at once (a communicator created and destroyed) would break the handshake of a peer
// still connecting. After this, every connection is complete on both sides.
void ConfirmConnections(const std::shared_ptr<::gloo::Context>& context, Millis timeout);

}  // namespace nmesh::comm::gloo

#endif  // NMESH_COMM_GLOO_GLOO_COMMUNICATOR_H_
