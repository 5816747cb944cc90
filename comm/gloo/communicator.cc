// GlooCommunicator (gloo_communicator.h): its lifetime (Shut, Release, Abort), the timeout, the
// blocking and asynchronous operations (collectives in issue order on the caller's thread or the
// worker thread; point-to-point transfers posted at once, the asynchronous ones waited for by the
// waiter thread), what a failure or a timeout does to the communicator, and the mailbox of a
// rank's messages to itself.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
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
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gloo/common/error.h"
#include "gloo/context.h"
#include "gloo/transport/unbound_buffer.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/gloo/connections.h"
#include "nmesh/comm/gloo/gloo_communicator.h"
#include "nmesh/comm/gloo/loop_ticker.h"
#include "nmesh/comm/gloo/operations.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/watch/store_side_channel.h"
#include "nmesh/comm/watch/watchdog.h"
#include "nmesh/comm/watch/watchdog_thread.h"

namespace nmesh::comm::gloo {
namespace {

namespace ci = ::nmesh::comm::internal;

}  // namespace

GlooCommunicator::GlooCommunicator(std::shared_ptr<::gloo::Context> context, CommOptions options,
                                   std::shared_ptr<LoopTicker> ticker, WatchSetup watch)
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

GlooCommunicator::~GlooCommunicator() { Shut("the communicator was destroyed"); }

bool GlooCommunicator::Release(std::string_view reason) {
  abort_state_.Mark(std::string(reason));
  Shut(reason);
  return true;
}

absl::Status GlooCommunicator::Abort() {
  abort_state_.Mark("Abort() was called");
  if (Busy()) CloseConnections();
  FailSelf(absl::FailedPreconditionError("the communicator was aborted"));
  return absl::OkStatus();
}

absl::Status GlooCommunicator::DoSetTimeout(std::optional<absl::Duration> timeout) {
  options_.timeout = timeout;
  if (timeout.has_value() && side_ != nullptr) ci::Watchdog::Get().Start();
  return absl::OkStatus();
}

absl::Status GlooCommunicator::DoRun(const OpArgs& args) {
  if (IsPointToPoint(args.op)) {
    point_to_point_.fetch_add(1);
    absl::StatusOr<std::unique_ptr<Transfer>> transfer = Post(args);
    absl::Status status = transfer.ok() ? Complete(**transfer) : transfer.status();
    point_to_point_.fetch_sub(1);
    return status;
  }
  return RunExclusive([&] { return RunChecked(args, options_.timeout); });
}

absl::StatusOr<Work> GlooCommunicator::DoAsync(const OpArgs& args, const AsyncOptions&) {
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

void GlooCommunicator::WorkerLoop() {
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

void GlooCommunicator::WaiterLoop() {
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

absl::Status GlooCommunicator::RunChecked(const OpArgs& args,
                                          std::optional<absl::Duration> timeout) {
  if (absl::Status s = abort_state_.Check(*this, args.op); !s.ok()) return s;
  const absl::Time start = absl::Now();
  try {
    RunCollective(context_, args, GlooTimeout(timeout));
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return Failed(args.op, e.what(), timeout, start);
  }
}

absl::Status GlooCommunicator::Failed(OpKind op, std::string_view what,
                                      std::optional<absl::Duration> timeout, absl::Time start) {
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
    status = absl::UnavailableError(absl::StrFormat("%s: gloo: %s (rank %d of %d)",
                                                    ci::OpContext(*this, op), what, rank_, size_));
  }
  CloseConnections();
  FailSelf(abort_state_.Check(*this, op));
  AbortFamilyOrSelf();
  return status;
}

OpRecord GlooCommunicator::StuckRecord(OpKind op, absl::Duration timeout) const {
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

absl::StatusOr<std::unique_ptr<Transfer>> GlooCommunicator::Post(const OpArgs& a) {
  auto transfer = std::make_unique<Transfer>();
  transfer->op = a.op;
  transfer->timeout = options_.timeout;
  transfer->deadline = options_.timeout ? absl::Now() + *options_.timeout : absl::InfiniteFuture();
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

absl::Status GlooCommunicator::Complete(Transfer& t) {
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
      return Failed(t.op, "Timed out", t.timeout, start - t.timeout.value_or(absl::ZeroDuration()));
    }
    if (absl::Status s = self->status(); !s.ok()) {
      return absl::IsFailedPrecondition(s) ? abort_state_.Check(*this, t.op) : s;
    }
  }
  return absl::OkStatus();
}

Millis GlooCommunicator::Remaining(const Transfer& t) const {
  if (!t.timeout) return kForever;
  const absl::Duration left = std::max(t.deadline - absl::Now(), absl::Milliseconds(1));
  return GlooTimeout(left);
}

std::shared_ptr<Completion> GlooCommunicator::PostSelf(SelfSide side) {
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

void GlooCommunicator::WithdrawSelf(const std::shared_ptr<Completion>& done) {
  std::lock_guard<std::mutex> lock(self_mu_);
  for (auto* queue : {&self_sends_, &self_recvs_}) {
    queue->erase(std::remove_if(queue->begin(), queue->end(),
                                [&](const SelfSide& s) { return s.done == done; }),
                 queue->end());
  }
}

void GlooCommunicator::FailSelf(const absl::Status& status) {
  std::deque<SelfSide> sends, recvs;
  {
    std::lock_guard<std::mutex> lock(self_mu_);
    sends.swap(self_sends_);
    recvs.swap(self_recvs_);
  }
  for (auto& s : sends) s.done->Finish(status);
  for (auto& r : recvs) r.done->Finish(status);
}

bool GlooCommunicator::Busy() {
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

void GlooCommunicator::CloseConnections() {
  if (context_ != nullptr) ShutdownConnections(*context_);
}

void GlooCommunicator::Shut(std::string_view why) {
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

}  // namespace nmesh::comm::gloo
