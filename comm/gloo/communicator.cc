#include "nmesh/comm/gloo/communicator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
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
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gloo/allgather.h"
#include "gloo/allgatherv.h"
#include "gloo/alltoall.h"
#include "gloo/common/error.h"
#include "gloo/context.h"
#include "gloo/rendezvous/context.h"
#include "gloo/transport/tcp/address.h"
#include "gloo/transport/tcp/device.h"
#include "gloo/transport/unbound_buffer.h"
#include "nmesh/base/fingerprint.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/gloo/connections.h"
#include "nmesh/comm/gloo/loop_ticker.h"
#include "nmesh/comm/gloo/native.h"
#include "nmesh/comm/gloo/operations.h"
#include "nmesh/comm/gloo/store_adapter.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/watch/store_side_channel.h"
#include "nmesh/comm/watch/watchdog.h"
#include "nmesh/comm/watch/watchdog_thread.h"

namespace nmesh::comm::gloo {
namespace {

namespace ci = ::nmesh::comm::internal;
using Millis = std::chrono::milliseconds;

// The wait of an operation without a timeout: long enough to be forever, short enough that gloo's
// clock arithmetic cannot overflow.
constexpr Millis kForever = std::chrono::hours(24 * 30);

Millis GlooTimeout(std::optional<absl::Duration> timeout) {
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
  std::shared_ptr<ci::StoreWatchHub> hub;
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
                   std::shared_ptr<LoopTicker> ticker, WatchSetup watch = {})
      : ticker_(std::move(ticker)),
        context_(std::move(context)),
        rank_(context_->rank),
        size_(context_->size),
        options_(std::move(options)),
        watch_(std::move(watch)) {
    // Registered with the watchdog, not watched (Communicator::Watch): gloo enforces its own
    // deadlines, and the watchdog thread answers the other ranks' asks for this one's records and
    // reports where it stands (comm/watch/watchdog_thread.h, ReportTimeout).
    if (watch_.hub != nullptr) {
      side_ = ci::MakeStoreSideChannel(watch_.hub, watch_.id, rank_, watch_.global);
      ci::Watchdog::Get().Add(this, recorder(), side_.get());
    }
  }

  ~GlooCommunicator() override { Shut("the communicator was destroyed"); }

  // DeviceMesh::Comm handed out a plain pointer: the connections, threads and gloo context go now,
  // the object stays and every later call fails naming `reason`.
  bool Release(std::string_view reason) override {
    abort_state_.Mark(std::string(reason));
    Shut(reason);
    return true;
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string_view backend() const override { return "gloo"; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }
  const CommOptions& options() const override { return options_; }
  const std::shared_ptr<::gloo::Context>& context() const { return context_; }

  // Marks the communicator; an operation in flight (on any thread) is ended by closing the
  // connections. An idle communicator keeps them: its peers are not disturbed.
  absl::Status Abort() override {
    abort_state_.Mark("Abort() was called");
    if (Busy()) CloseConnections();
    FailSelf(absl::FailedPreconditionError("the communicator was aborted"));
    return absl::OkStatus();
  }

 protected:
  absl::Status CheckUsable(std::string_view op) const override {
    return abort_state_.Check(*this, op);
  }

  absl::Status DoSetTimeout(std::optional<absl::Duration> timeout) override {
    options_.timeout = timeout;
    if (timeout.has_value() && side_ != nullptr) ci::Watchdog::Get().Start();
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int> color, int key,
                                                        CommOptions options) override;
  absl::StatusOr<std::unique_ptr<Communicator>> DoSplitAgreedMembers(absl::Span<const int> members,
                                                                     CommOptions options) override;

  absl::Status DoRun(const OpArgs& args) override {
    if (IsPointToPoint(args.op)) {
      point_to_point_.fetch_add(1);
      absl::StatusOr<std::unique_ptr<Transfer>> transfer = Post(args);
      absl::Status status = transfer.ok() ? Complete(**transfer) : transfer.status();
      point_to_point_.fetch_sub(1);
      return status;
    }
    return RunExclusive([&] { return RunChecked(args, options_.timeout); });
  }

  absl::StatusOr<Work> DoAsync(const OpArgs& args, const AsyncOptions&) override {
    std::shared_ptr<Completion> done;
    if (IsPointToPoint(args.op)) {
      NMESH_ASSIGN_OR_RETURN(std::unique_ptr<Transfer> transfer, Post(args));
      done = transfer->done;
      {
        std::lock_guard<std::mutex> lock(transfer_mu_);
        if (!waiter_.joinable()) waiter_ = std::thread([this] { WaiterLoop(); });
        transfers_.push_back(std::move(transfer));
      }
      transfer_cv_.notify_all();
    } else {
      Task task;
      task.args = args;
      task.counts.assign(args.send_counts.begin(), args.send_counts.end());
      task.counts.insert(task.counts.end(), args.send_displs.begin(), args.send_displs.end());
      task.counts.insert(task.counts.end(), args.recv_counts.begin(), args.recv_counts.end());
      task.counts.insert(task.counts.end(), args.recv_displs.begin(), args.recv_displs.end());
      if (!args.send_counts.empty()) {
        const size_t n = args.send_counts.size();
        const size_t* base = task.counts.data();
        task.args.send_counts = absl::MakeConstSpan(base, n);
        task.args.send_displs = absl::MakeConstSpan(base + n, n);
        task.args.recv_counts = absl::MakeConstSpan(base + 2 * n, n);
        task.args.recv_displs = absl::MakeConstSpan(base + 3 * n, n);
      }
      task.timeout = options_.timeout;
      done = task.done;
      {
        std::lock_guard<std::mutex> lock(queue_mu_);
        if (!worker_.joinable()) worker_ = std::thread([this] { WorkerLoop(); });
        queue_.push_back(std::move(task));
      }
      queue_cv_.notify_all();
    }
    return Work(registry_.Add(std::make_shared<GlooWork>(*this, args.op, std::move(done))));
  }

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

  void WorkerLoop() {
    std::unique_lock<std::mutex> lock(queue_mu_);
    while (true) {
      queue_cv_.wait(lock, [&] { return stop_ || (!queue_.empty() && !running_); });
      if (queue_.empty()) return;  // stopping
      if (running_) continue;
      Task task = std::move(queue_.front());
      queue_.pop_front();
      running_ = true;
      const bool stopping = stop_;
      lock.unlock();
      task.done->Finish(stopping ? ci::AbortedError(*this, task.args.op, "it was destroyed")
                                 : RunChecked(task.args, task.timeout));
      lock.lock();
      running_ = false;
      queue_cv_.notify_all();
    }
  }

  void WaiterLoop() {
    std::unique_lock<std::mutex> lock(transfer_mu_);
    while (true) {
      transfer_cv_.wait(lock, [&] { return transfer_stop_ || !transfers_.empty(); });
      if (transfers_.empty()) return;  // stopping
      std::unique_ptr<Transfer> transfer = std::move(transfers_.front());
      transfers_.pop_front();
      waiting_ = true;
      lock.unlock();
      transfer->done->Finish(Complete(*transfer));
      lock.lock();
      waiting_ = false;
    }
  }

  // A checked collective, its gloo exceptions turned into statuses.
  absl::Status RunChecked(const OpArgs& args, std::optional<absl::Duration> timeout) {
    if (absl::Status s = abort_state_.Check(*this, args.op); !s.ok()) return s;
    const absl::Time start = absl::Now();
    try {
      RunCollective(context_, args, GlooTimeout(timeout));
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return Failed(args.op, e.what(), timeout, start);
    }
  }

  // The status of an operation that gloo ended with `what`; aborts the communicator.
  absl::Status Failed(OpKind op, std::string_view what, std::optional<absl::Duration> timeout,
                      absl::Time start) {
    if (abort_state_.aborted()) return abort_state_.Check(*this, op);
    bool timed_out = timeout.has_value() && (absl::Now() - start >= *timeout ||
                                             what.find("imed out") != std::string_view::npos);
    // A watched communicator's connection lost within kAbortGrace of the operation's deadline is
    // most likely a peer's timeout (gloo closes a connection whose wait timed out, and the ranks of
    // one collective time out within moments of each other): this rank waits out its own deadline
    // (its watchdog thread answering the others meanwhile) and reports the timeout, as it would
    // have without the close, instead of failing at once and leaving the others without its
    // records (and, as the CLI exits, taking its other connections down with it).
    if (!timed_out && side_ != nullptr && timeout.has_value() &&
        start + *timeout - absl::Now() <= kAbortGrace) {
      absl::SleepFor(start + *timeout - absl::Now());
      timed_out = true;
    }
    absl::Status status;
    if (timed_out) {
      abort_state_.Mark(absl::StrFormat("an earlier %s timed out after %s", OpKindName(op),
                                        ci::FormatTimeout(*timeout)));
      status = absl::DeadlineExceededError(
          absl::StrFormat("%s timed out after %s (rank %d of %d)", ci::OpContext(*this, op),
                          ci::FormatTimeout(*timeout), rank_, size_));
      // Before the connections close (the peers waiting with this rank time out on their own and
      // ask too): the ranks' records, the culprit named, the process's TimeoutHandler told.
      if (side_ != nullptr) {
        ci::Watchdog::Get().ReportTimeout(*this, StuckRecord(op, *timeout), *timeout);
        status = MarkTimeoutReported(std::move(status));
      }
    } else {
      abort_state_.Mark(absl::StrFormat("an earlier %s failed: %s", OpKindName(op), what));
      status = absl::UnavailableError(absl::StrFormat(
          "%s: gloo: %s (rank %d of %d)", ci::OpContext(*this, op), what, rank_, size_));
    }
    CloseConnections();
    FailSelf(abort_state_.Check(*this, op));
    AbortFamilyOrSelf();
    return status;
  }

  // The record of the operation `op` that outlived `timeout`: the oldest still running (collectives
  // run one at a time, in issue order), with the deadline gloo enforced.
  OpRecord StuckRecord(OpKind op, absl::Duration timeout) const {
    OpRecord stuck;
    stuck.op = op;
    for (const OpRecord& r : recorder()->Snapshot()) {
      if (r.state == OpState::kRunning && r.op == op) {
        stuck = r;
        break;
      }
    }
    if (stuck.seq != 0 && stuck.deadline_ns == 0) {
      stuck.deadline_ns = stuck.start_ns + absl::ToInt64Nanoseconds(timeout);
    }
    return stuck;
  }

  // What a child of this communicator made by split `how` number `number` with `color` (its
  // members' ranks here: `members`) is watched with.
  WatchSetup ChildWatch(std::string_view how, int64_t number, int64_t color,
                        const std::vector<int>& members) const {
    if (watch_.hub == nullptr) return {};
    WatchSetup child{watch_.hub, ci::StoreChannelId(watch_.id, how, number, color), {}};
    for (int m : members) child.global.push_back(watch_.global[static_cast<size_t>(m)]);
    return child;
  }

  // Posts a send, recv or sendrecv (checked): gloo transfers at once, and this rank's messages to
  // itself through the mailbox.
  absl::StatusOr<std::unique_ptr<Transfer>> Post(const OpArgs& a) {
    auto transfer = std::make_unique<Transfer>();
    transfer->op = a.op;
    transfer->timeout = options_.timeout;
    transfer->deadline =
        options_.timeout ? absl::Now() + *options_.timeout : absl::InfiniteFuture();
    const size_t es = DataTypeSize(a.type);
    const uint64_t slot = PointToPointSlot();
    // sendrecv receives first, so that the send never waits for a receive this rank posts later.
    const bool receives = a.op == OpKind::kRecv || a.op == OpKind::kSendRecv;
    const bool sends = a.op == OpKind::kSend || a.op == OpKind::kSendRecv;
    const int from = a.op == OpKind::kSendRecv ? a.source : a.root;
    const int to = a.root;
    const size_t recv_bytes = (a.op == OpKind::kSendRecv ? a.recv_count : a.count) * es;
    const size_t send_bytes = a.count * es;
    static char empty = 0;
    try {
      if (receives) {
        void* p = recv_bytes > 0 ? a.recv : &empty;
        if (from == rank_) {
          transfer->self.push_back(PostSelf({.recv = p, .bytes = recv_bytes, .done = nullptr}));
        } else {
          auto buffer = context_->createUnboundBuffer(p, recv_bytes);
          buffer->recv(from, slot, 0, recv_bytes);
          transfer->recvs.push_back(std::move(buffer));
        }
      }
      if (sends) {
        const void* p = send_bytes > 0 ? a.send : &empty;
        if (to == rank_) {
          transfer->self.push_back(PostSelf({.send = p, .bytes = send_bytes, .done = nullptr}));
        } else {
          auto buffer = context_->createUnboundBuffer(const_cast<void*>(p), send_bytes);
          buffer->send(to, slot, 0, send_bytes);
          transfer->sends.push_back(std::move(buffer));
        }
      }
    } catch (const std::exception& e) {
      return Failed(a.op, e.what(), std::nullopt, absl::Now());
    }
    return transfer;
  }

  // Waits for every part of `t` (bounded by its deadline).
  absl::Status Complete(Transfer& t) {
    const absl::Time start = absl::Now();
    try {
      for (auto& buffer : t.recvs) {
        if (!buffer->waitRecv(nullptr, Remaining(t))) return abort_state_.Check(*this, t.op);
      }
      for (auto& buffer : t.sends) {
        if (!buffer->waitSend(nullptr, Remaining(t))) return abort_state_.Check(*this, t.op);
      }
    } catch (const std::exception& e) {
      return Failed(t.op, e.what(), t.timeout, start);
    }
    for (auto& self : t.self) {
      if (!self->WaitUntil(t.deadline)) {
        // Nobody matched it in time: take it out of the mailbox, then it times out.
        WithdrawSelf(self);
        if (self->WaitUntil(absl::Now())) continue;  // matched meanwhile
        self->Finish(absl::DeadlineExceededError("timed out"));
        return Failed(t.op, "Timed out", t.timeout,
                      start - t.timeout.value_or(absl::ZeroDuration()));
      }
      if (absl::Status s = self->status(); !s.ok()) {
        return absl::IsFailedPrecondition(s) ? abort_state_.Check(*this, t.op) : s;
      }
    }
    return absl::OkStatus();
  }

  Millis Remaining(const Transfer& t) const {
    if (!t.timeout) return kForever;
    const absl::Duration left = std::max(t.deadline - absl::Now(), absl::Milliseconds(1));
    return GlooTimeout(left);
  }

  // The mailbox: a send to this rank is matched with the first receive from it, in order.
  std::shared_ptr<Completion> PostSelf(SelfSide side) {
    side.done = std::make_shared<Completion>();
    std::shared_ptr<Completion> done = side.done;
    std::lock_guard<std::mutex> lock(self_mu_);
    std::deque<SelfSide>& others = side.send != nullptr ? self_recvs_ : self_sends_;
    if (others.empty()) {
      (side.send != nullptr ? self_sends_ : self_recvs_).push_back(std::move(side));
      return done;
    }
    SelfSide other = std::move(others.front());
    others.pop_front();
    const SelfSide& send = side.send != nullptr ? side : other;
    const SelfSide& recv = side.send != nullptr ? other : side;
    absl::Status status;
    if (send.bytes != recv.bytes) {
      status = absl::InvalidArgumentError(absl::StrFormat(
          "%s: a send of %d bytes to this rank itself met a receive of %d bytes (rank %d of %d)",
          ci::OpContext(*this, OpKind::kSend), send.bytes, recv.bytes, rank_, size_));
    } else if (send.bytes > 0) {
      std::memcpy(recv.recv, send.send, send.bytes);
    }
    send.done->Finish(status);
    recv.done->Finish(status);
    return done;
  }

  void WithdrawSelf(const std::shared_ptr<Completion>& done) {
    std::lock_guard<std::mutex> lock(self_mu_);
    for (auto* queue : {&self_sends_, &self_recvs_}) {
      queue->erase(std::remove_if(queue->begin(), queue->end(),
                                  [&](const SelfSide& s) { return s.done == done; }),
                   queue->end());
    }
  }

  void FailSelf(const absl::Status& status) {
    std::deque<SelfSide> sends, recvs;
    {
      std::lock_guard<std::mutex> lock(self_mu_);
      sends.swap(self_sends_);
      recvs.swap(self_recvs_);
    }
    for (auto& s : sends) s.done->Finish(status);
    for (auto& r : recvs) r.done->Finish(status);
  }

  // Whether an operation of this communicator is in flight: a collective running or queued, a
  // point-to-point operation being waited for or posted, a message to itself pending.
  bool Busy() {
    if (point_to_point_.load() > 0) return true;
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (running_ || !queue_.empty()) return true;
    }
    {
      std::lock_guard<std::mutex> lock(transfer_mu_);
      if (waiting_ || !transfers_.empty()) return true;
    }
    std::lock_guard<std::mutex> lock(self_mu_);
    return !self_sends_.empty() || !self_recvs_.empty();
  }

  // Ends every transfer on this communicator's connections, here and on the peers (which see the
  // connection close). Thread-safe; idempotent; nothing once the context is gone (Shut).
  void CloseConnections() {
    if (context_ != nullptr) ShutdownConnections(*context_);
  }

  // What the destructor and Release free, once: pending handles and transfers end with `why`, the
  // threads stop and the gloo context (its connections) goes.
  void Shut(std::string_view why) {
    if (shut_) return;
    shut_ = true;
    if (side_ != nullptr) ci::Watchdog::Get().Remove(this);
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      stop_ = true;
    }
    {
      std::lock_guard<std::mutex> lock(transfer_mu_);
      transfer_stop_ = true;
    }
    // Handles still pending end now, saying the communicator was destroyed.
    registry_.OrphanAll();
    // Operations still in flight would wait for peers (or use the caller's buffers) after the
    // communicator is gone: end them. An idle communicator closes its connections gently (gloo's
    // destructor), so peers still reading its last messages get them.
    if (Busy()) CloseConnections();
    FailSelf(absl::FailedPreconditionError(std::string(why)));
    queue_cv_.notify_all();
    transfer_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    if (waiter_.joinable()) waiter_.join();
    // Closing the pairs waits for turns of gloo's loop (comm/gloo/loop_ticker.h).
    FastTicks fast(ticker_);
    context_.reset();
  }

  std::shared_ptr<LoopTicker> ticker_;  // null: gloo's own loop turns
  std::shared_ptr<::gloo::Context> context_;
  const int rank_;
  const int size_;
  CommOptions options_;
  WatchSetup watch_;
  std::unique_ptr<ci::SideChannel> side_;  // null: not watched
  ci::AbortState abort_state_;
  ci::WorkRegistry registry_;
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
void ConfirmConnections(const std::shared_ptr<::gloo::Context>& context, Millis timeout) {
  if (context->size == 1) return;
  std::vector<uint8_t> out(static_cast<size_t>(context->size), 1), in(out.size(), 0);
  ::gloo::AlltoallOptions opts(context);
  opts.setInput<uint8_t>(out.data(), out.size());
  opts.setOutput<uint8_t>(in.data(), in.size());
  opts.setTimeout(timeout);
  ::gloo::alltoall(opts);
}

// A split's child: connects `transport`'s pair with every other member i (of `group_size`, this
// rank being `group_rank`) to the address `address_of(i)`, confirms the connections and wraps the
// group in a communicator with `options`. Throws what gloo throws.
std::unique_ptr<Communicator> ConnectChild(const std::shared_ptr<::gloo::transport::Device>& device,
                                           std::shared_ptr<::gloo::transport::Context> transport,
                                           int group_rank, int group_size,
                                           const std::function<const char*(int)>& address_of,
                                           size_t address_bytes, Millis timeout,
                                           std::shared_ptr<LoopTicker> ticker, CommOptions options,
                                           WatchSetup watch) {
  FastTicks fast(ticker);
  for (int i = 0; i < group_size; ++i) {
    if (i == group_rank) continue;
    const char* at = address_of(i);
    transport->getPair(i)->connect(std::vector<char>(at, at + address_bytes));
  }
  auto group = std::make_shared<GroupContext>(group_rank, group_size);
  group->Attach(device, std::move(transport));
  ConfirmConnections(group, timeout);
  group->setTimeout(GlooTimeout(options.timeout));
  return std::make_unique<GlooCommunicator>(std::move(group), std::move(options), std::move(ticker),
                                            std::move(watch));
}

absl::StatusOr<std::unique_ptr<Communicator>> GlooCommunicator::DoSplit(std::optional<int> color,
                                                                        int key,
                                                                        CommOptions options) {
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  auto* device = dynamic_cast<::gloo::transport::tcp::Device*>(context_->getDevice().get());
  if (device == nullptr) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: splitting a gloo context needs gloo's TCP transport (rank %d of %d)",
                        ci::OpContext(*this, OpKind::kSplit), rank_, size_));
  }
  std::unique_ptr<Communicator> child;
  const int64_t split_number = ++splits_;
  absl::Status status = RunExclusive([&]() -> absl::Status {
    if (absl::Status s = abort_state_.Check(*this, OpKind::kSplit); !s.ok()) return s;
    const Millis timeout = GlooTimeout(options_.timeout);
    const absl::Time start = absl::Now();
    const size_t n = static_cast<size_t>(size_);
    try {
      // 1. Every rank's color and key.
      int64_t mine[3] = {color.has_value() ? 1 : 0, color.value_or(0), key};
      std::vector<int64_t> all(3 * n);
      {
        ::gloo::AllgatherOptions opts(context_);
        opts.setInput<int64_t>(mine, 3);
        opts.setOutput<int64_t>(all.data(), all.size());
        opts.setTimeout(timeout);
        ::gloo::allgather(opts);
      }
      std::vector<std::string> bad;
      for (size_t r = 0; r < n; ++r) {
        if (all[3 * r] != 0 && all[3 * r + 1] < 0) {
          bad.push_back(absl::StrFormat("rank %d passed %d", r, all[3 * r + 1]));
        }
      }
      if (!bad.empty()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: colors must be non-negative or absent; %s (rank %d of %d)",
            ci::OpContext(*this, OpKind::kSplit), absl::StrJoin(bad, ", "), rank_, size_));
      }
      // 2. The groups: members ordered by key, then rank.
      auto members_of = [&](int64_t c) {
        std::vector<int> members;
        for (size_t r = 0; r < n; ++r) {
          if (all[3 * r] != 0 && all[3 * r + 1] == c) members.push_back(static_cast<int>(r));
        }
        std::stable_sort(members.begin(), members.end(),
                         [&](int a, int b) { return all[3 * a + 2] < all[3 * b + 2]; });
        return members;
      };
      const size_t address_bytes = ::gloo::transport::tcp::Address().bytes().size();
      std::vector<size_t> blob_bytes(n, 0);
      for (size_t r = 0; r < n; ++r) {
        if (all[3 * r] == 0) continue;
        const size_t group = members_of(all[3 * r + 1]).size();
        blob_bytes[r] = (group - 1) * address_bytes;
      }
      // 3. This rank's group context and the addresses of its pairs, one per other member.
      std::vector<int> members;
      int group_rank = -1;
      std::shared_ptr<::gloo::transport::Context> transport;
      std::vector<char> blob;
      if (color) {
        members = members_of(*color);
        group_rank =
            static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
        const int group_size = static_cast<int>(members.size());
        transport = context_->getDevice()->createContext(group_rank, group_size);
        transport->setTimeout(timeout);
        for (int i = 0; i < group_size; ++i) {
          if (i == group_rank) continue;
          std::vector<char> address = transport->createPair(i)->address().bytes();
          if (address.size() != address_bytes) {
            return absl::InternalError(absl::StrFormat("%s: gloo address of %d bytes, expected %d",
                                                       ci::OpContext(*this, OpKind::kSplit),
                                                       address.size(), address_bytes));
          }
          blob.insert(blob.end(), address.begin(), address.end());
        }
      }
      // 4. Every rank's addresses, through this communicator.
      size_t total = 0;
      std::vector<size_t> offsets(n);
      for (size_t r = 0; r < n; ++r) {
        offsets[r] = total;
        total += blob_bytes[r];
      }
      std::vector<char> addresses(total);
      if (total > 0) {
        static char empty = 0;
        ::gloo::AllgathervOptions opts(context_);
        opts.setInput<char>(blob.empty() ? &empty : blob.data(), blob.size());
        opts.setOutput<char>(addresses.data(), blob_bytes);
        opts.setTimeout(timeout);
        ::gloo::allgatherv(opts);
      }
      if (!color) return absl::OkStatus();
      // 5. Connect: member i's entry for this rank is at index group_rank (less one past i).
      child = ConnectChild(
          context_->getDevice(), std::move(transport), group_rank, static_cast<int>(members.size()),
          [&](int i) {
            const size_t index = static_cast<size_t>(group_rank < i ? group_rank : group_rank - 1);
            return addresses.data() + offsets[static_cast<size_t>(members[i])] +
                   index * address_bytes;
          },
          address_bytes, timeout, ticker_, std::move(options),
          ChildWatch("split", split_number, *color, members));
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return Failed(OpKind::kSplit, e.what(), options_.timeout, start);
    }
  });
  NMESH_RETURN_IF_ERROR(status);
  return child;
}

// The members alone meet: each sends every other member, over this communicator's connections,
// the address of its pair for that member (one slot of its own, so that the exchanges of
// successive splits between two ranks match in order), and nobody else takes part.
absl::StatusOr<std::unique_ptr<Communicator>> GlooCommunicator::DoSplitAgreedMembers(
    absl::Span<const int> members, CommOptions options) {
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  if (members.empty()) return std::unique_ptr<Communicator>();
  if (dynamic_cast<::gloo::transport::tcp::Device*>(context_->getDevice().get()) == nullptr) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: splitting a gloo context needs gloo's TCP transport (rank %d of %d)",
                        ci::OpContext(*this, OpKind::kSplit), rank_, size_));
  }
  std::unique_ptr<Communicator> child;
  Fingerprint group;
  for (int m : members) group.Add(int64_t{m});
  const int64_t split_number = ++member_splits_[group.value()];
  absl::Status status = RunExclusive([&]() -> absl::Status {
    if (absl::Status s = abort_state_.Check(*this, OpKind::kSplit); !s.ok()) return s;
    const Millis timeout = GlooTimeout(options_.timeout);
    const absl::Time start = absl::Now();
    try {
      const int group_size = static_cast<int>(members.size());
      const int group_rank =
          static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
      std::shared_ptr<::gloo::transport::Context> transport =
          context_->getDevice()->createContext(group_rank, group_size);
      transport->setTimeout(timeout);
      const size_t address_bytes = ::gloo::transport::tcp::Address().bytes().size();
      const size_t n = static_cast<size_t>(group_size);
      std::vector<char> mine(n * address_bytes), theirs(n * address_bytes);
      for (int i = 0; i < group_size; ++i) {
        if (i == group_rank) continue;
        std::vector<char> address = transport->createPair(i)->address().bytes();
        if (address.size() != address_bytes) {
          return absl::InternalError(absl::StrFormat("%s: gloo address of %d bytes, expected %d",
                                                     ci::OpContext(*this, OpKind::kSplit),
                                                     address.size(), address_bytes));
        }
        std::copy(address.begin(), address.end(), mine.begin() + i * address_bytes);
      }
      if (group_size > 1) {
        const uint64_t slot = SplitSlot();
        auto out = context_->createUnboundBuffer(theirs.data(), theirs.size());
        auto in = context_->createUnboundBuffer(mine.data(), mine.size());
        for (int i = 0; i < group_size; ++i) {
          if (i != group_rank) out->recv(members[i], slot, i * address_bytes, address_bytes);
        }
        for (int i = 0; i < group_size; ++i) {
          if (i != group_rank) in->send(members[i], slot, i * address_bytes, address_bytes);
        }
        for (int i = 1; i < group_size; ++i) out->waitRecv(timeout);
        for (int i = 1; i < group_size; ++i) in->waitSend(timeout);
      }
      child = ConnectChild(
          context_->getDevice(), std::move(transport), group_rank, group_size,
          [&](int i) { return theirs.data() + static_cast<size_t>(i) * address_bytes; },
          address_bytes, timeout, ticker_, std::move(options),
          ChildWatch("members", split_number, static_cast<int64_t>(group.value()),
                     std::vector<int>(members.begin(), members.end())));
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return Failed(OpKind::kSplit, e.what(), options_.timeout, start);
    }
  });
  NMESH_RETURN_IF_ERROR(status);
  return child;
}

// The TCP device a world listens on.
absl::StatusOr<std::shared_ptr<::gloo::transport::Device>> CreateDevice(const GlooOptions& gloo) {
  ::gloo::transport::tcp::attr attr;
  attr.hostname = gloo.hostname;
  attr.iface = gloo.interface;
  if (attr.hostname.empty() && attr.iface.empty()) {
    if (const char* env = std::getenv("GLOO_SOCKET_IFNAME"); env != nullptr && *env != '\0') {
      attr.iface = env;
    }
  }
  try {
    return ::gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrFormat("gloo: no address to listen on (hostname '%s', interface '%s'): %s",
                        attr.hostname, attr.iface, e.what()));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> WorldCommunicator(std::shared_ptr<Store> store,
                                                                int rank, int size,
                                                                CommOptions options,
                                                                GlooOptions gloo) {
  if (store == nullptr) return absl::InvalidArgumentError("gloo world: the store is null");
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "gloo world: rank %d of size %d (needs size >= 1 and 0 <= rank < size)", rank, size));
  }
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  NMESH_RETURN_IF_ERROR(CheckTimeout(gloo.rendezvous_timeout, "GlooOptions.rendezvous_timeout"));
  NMESH_ASSIGN_OR_RETURN(std::shared_ptr<::gloo::transport::Device> device, CreateDevice(gloo));
  auto context = std::make_shared<::gloo::rendezvous::Context>(rank, size);
  context->setTimeout(GlooTimeout(gloo.rendezvous_timeout));
  StoreAdapter adapter(store, gloo.prefix, absl::Now() + gloo.rendezvous_timeout);
  std::shared_ptr<LoopTicker> ticker = LoopTicker::For(device);
  try {
    FastTicks fast(ticker);
    context->connectFullMesh(adapter, device);
    ConfirmConnections(context, GlooTimeout(gloo.rendezvous_timeout));
  } catch (const std::exception& e) {
    absl::Status cause = adapter.error();
    std::string what = cause.ok() ? std::string(e.what()) : std::string(cause.message());
    if (absl::IsDeadlineExceeded(cause)) {
      // Name the ranks that never published their addresses.
      std::vector<int> missing;
      for (int r = 0; r < size && missing.size() < 16; ++r) {
        absl::StatusOr<bool> arrived = store->Check(absl::StrFormat("%s/%d", gloo.prefix, r));
        if (arrived.ok() && !*arrived) missing.push_back(r);
      }
      if (!missing.empty()) {
        what = absl::StrFormat("rank%s %s never arrived within %s (%s)",
                               missing.size() == 1 ? "" : "s", absl::StrJoin(missing, ", "),
                               ci::FormatTimeout(gloo.rendezvous_timeout), what);
      }
    }
    return absl::Status(cause.ok() ? absl::StatusCode::kUnavailable : cause.code(),
                        absl::StrFormat("gloo world rendezvous of rank %d of %d through %s: %s",
                                        rank, size, store->Describe(), what));
  }
  context->setTimeout(GlooTimeout(options.timeout));
  WatchSetup watch{
      std::make_shared<ci::StoreWatchHub>(store, gloo.prefix + "/watch"), gloo.prefix, {}};
  for (int r = 0; r < size; ++r) watch.global.push_back(r);
  return std::make_unique<GlooCommunicator>(std::move(context), std::move(options),
                                            std::move(ticker), std::move(watch));
}

absl::StatusOr<std::shared_ptr<::gloo::Context>> NativeContext(const Communicator& comm) {
  const auto* gloo_comm = dynamic_cast<const GlooCommunicator*>(&comm);
  if (gloo_comm == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("NativeContext: communicator '%s' is a %s communicator, not gloo",
                        comm.options().name, comm.backend()));
  }
  return gloo_comm->context();
}

absl::StatusOr<std::unique_ptr<Communicator>> AdoptContext(std::shared_ptr<::gloo::Context> context,
                                                           CommOptions options) {
  if (context == nullptr) return absl::InvalidArgumentError("AdoptContext: the context is null");
  if (context->getDevice() == nullptr) {
    return absl::InvalidArgumentError(
        "AdoptContext: the gloo context has no device (connect it first, e.g. connectFullMesh)");
  }
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  std::shared_ptr<LoopTicker> ticker = LoopTicker::For(context->getDevice());
  return std::make_unique<GlooCommunicator>(std::move(context), std::move(options),
                                            std::move(ticker));
}

}  // namespace nmesh::comm::gloo
