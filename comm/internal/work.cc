#include "nmesh/comm/internal/work.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/comm/internal/checks.h"

namespace nmesh::comm {

Work::Work(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Work::~Work() = default;
Work::Work(Work&& other) noexcept = default;
Work& Work::operator=(Work&& other) noexcept = default;

namespace {
absl::Status EmptyHandle(std::string_view what) {
  return absl::FailedPreconditionError(
      absl::StrFormat("Work::%s on an empty handle (default-constructed or moved from)", what));
}
}  // namespace

absl::Status Work::Wait(absl::Duration timeout) {
  if (impl_ == nullptr) return EmptyHandle("Wait");
  return impl_->Wait(timeout);
}

absl::StatusOr<bool> Work::Test() {
  if (impl_ == nullptr) return EmptyHandle("Test");
  return impl_->Test();
}

absl::Status Work::status() const {
  if (impl_ == nullptr) return EmptyHandle("status");
  return impl_->status();
}

std::string_view Work::op() const { return impl_ == nullptr ? std::string_view() : impl_->op(); }

Work::Impl::Impl(const Communicator& comm, internal::OpName op)
    : op_(op.text),
      context_(internal::OpContext(comm, op)),
      rank_suffix_(absl::StrFormat("(rank %d of %d)", comm.rank(), comm.size())),
      revocation_(comm.revocation_) {}

bool Work::Impl::PollLocked() {
  if (done_) return true;
  absl::Status status;
  if (!Poll(&status)) return false;
  MarkDone(std::move(status));
  return true;
}

void Work::Impl::MarkDone(absl::Status status) {
  done_ = true;
  status_ = revocation_->Apply(context_, std::move(status));
  if (recorder_ != nullptr) {
    recorder_->Finish(seq_, status_.ok(), absl::GetCurrentTimeNanos());
    recorder_ = nullptr;
  }
}

void Work::Impl::SetRecord(std::shared_ptr<FlightRecorder> recorder, uint64_t seq) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) {
    recorder->Finish(seq, status_.ok(), absl::GetCurrentTimeNanos());
    return;
  }
  recorder_ = std::move(recorder);
  seq_ = seq;
}

void Work::Impl::TryPoll() {
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock() || (batch_open_ != nullptr && *batch_open_)) return;
  PollLocked();
}

absl::Status Work::Impl::Block() {
  internal::PollPacer pacer;
  absl::Status status;
  while (!Poll(&status)) pacer.Pause();
  return status;
}

absl::Status Work::Impl::CheckBatch(std::string_view what) const {
  if (batch_open_ == nullptr || !*batch_open_) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrFormat("%s: %s on a handle whose batch is still open; call Batch::End() first %s",
                      context_, what, rank_suffix_));
}

absl::Status Work::Impl::Join() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!done_) MarkDone(Block());
  return status_;
}

absl::Status Work::Impl::Wait(absl::Duration timeout) {
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status s = CheckBatch("Wait"); !s.ok()) return s;
  if (waited_) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: this work handle was already waited (its status was %s) %s", context_,
        status_.ok() ? "OK" : absl::StatusCodeToString(status_.code()), rank_suffix_));
  }
  if (!done_) {
    if (timeout == absl::InfiniteDuration()) {
      MarkDone(Block());
    } else {
      const absl::Time deadline = absl::Now() + timeout;
      internal::PollPacer pacer;
      while (!PollLocked()) {
        if (absl::Now() >= deadline) {
          return absl::DeadlineExceededError(
              absl::StrFormat("%s: the operation did not complete within %s; it is still pending "
                              "(wait again, or abort the communicator) %s",
                              context_, internal::FormatTimeout(timeout), rank_suffix_));
        }
        pacer.Pause();
      }
    }
  }
  waited_ = true;
  return status_;
}

absl::StatusOr<bool> Work::Impl::Test() {
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status s = CheckBatch("Test"); !s.ok()) return s;
  return PollLocked();
}

absl::Status Work::Impl::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!done_) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: the operation is still pending (Wait or Test first) %s", context_, rank_suffix_));
  }
  return status_;
}

void Work::Impl::Orphan() {
  std::lock_guard<std::mutex> lock(mu_);
  if (PollLocked()) return;
  Abandon();
  MarkDone(absl::FailedPreconditionError(
      absl::StrFormat("%s: the communicator was destroyed while the operation was pending %s",
                      context_, rank_suffix_)));
}

namespace internal {
namespace {

thread_local Batch::State* current_batch = nullptr;

// The handle of a whole batch: complete when every member is.
class BatchWork final : public Work::Impl {
 public:
  BatchWork(const Communicator& comm, std::vector<std::shared_ptr<Work::Impl>> works,
            absl::Status end)
      : Impl(comm, "batch"), works_(std::move(works)), end_(std::move(end)) {}

 protected:
  bool Poll(absl::Status* status) override {
    absl::Status first = end_;
    for (const auto& work : works_) {
      absl::StatusOr<bool> done = work->Test();
      if (!done.ok()) return Fail(done.status(), status);
      if (!*done) return false;
      if (first.ok()) first = work->status();
    }
    *status = first;
    return true;
  }
  absl::Status Block() override {
    absl::Status first = end_;
    for (const auto& work : works_) {
      absl::Status s = work->Join();
      if (first.ok()) first = s;
    }
    return first;
  }

 private:
  static bool Fail(absl::Status error, absl::Status* status) {
    *status = std::move(error);
    return true;
  }
  std::vector<std::shared_ptr<Work::Impl>> works_;
  absl::Status end_;
};

// Names a batch's handle in messages (it has no communicator of its own).
class BatchNamer final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string_view backend() const override { return "batch"; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }
  const CommOptions& options() const override { return options_; }
  absl::Status Abort() override { return absl::OkStatus(); }

 protected:
  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int>, int,
                                                        CommOptions) override {
    return absl::UnimplementedError("batch");
  }
  absl::Status DoAllReduce(const void*, void*, size_t, DataType, ReduceOp) override {
    return absl::UnimplementedError("batch");
  }
  absl::Status DoAllGather(const void*, void*, size_t, DataType) override {
    return absl::UnimplementedError("batch");
  }
  absl::Status DoReduceScatter(const void*, void*, size_t, DataType, ReduceOp) override {
    return absl::UnimplementedError("batch");
  }
  absl::Status DoBroadcast(void*, size_t, DataType, int) override {
    return absl::UnimplementedError("batch");
  }
  absl::Status DoAllToAll(const void*, void*, size_t, DataType) override {
    return absl::UnimplementedError("batch");
  }
  absl::Status DoSend(const void*, size_t, DataType, int) override {
    return absl::UnimplementedError("batch");
  }
  absl::Status DoRecv(void*, size_t, DataType, int) override {
    return absl::UnimplementedError("batch");
  }
  absl::Status DoBarrier() override { return absl::UnimplementedError("batch"); }

 private:
  CommOptions options_ = {.name = "batch"};
};

class DoneWork final : public Work::Impl {
 public:
  DoneWork(const Communicator& comm, OpName op, absl::Status status)
      : Impl(comm, op), status_(std::move(status)) {}

 protected:
  bool Poll(absl::Status* status) override {
    *status = status_;
    return true;
  }

 private:
  absl::Status status_;
};

}  // namespace

Work CompletedWork(const Communicator& comm, OpName op, absl::Status status) {
  return Work(std::make_shared<DoneWork>(comm, op, std::move(status)));
}

std::shared_ptr<Work::Impl> WorkRegistry::Add(std::shared_ptr<Work::Impl> work) {
  std::lock_guard<std::mutex> lock(mu_);
  // Forget handles that are gone, so the list stays as long as the pending ones.
  std::erase_if(works_, [](const std::weak_ptr<Work::Impl>& w) { return w.expired(); });
  works_.push_back(work);
  return work;
}

void WorkRegistry::OrphanAll() {
  std::vector<std::weak_ptr<Work::Impl>> works;
  {
    std::lock_guard<std::mutex> lock(mu_);
    works.swap(works_);
  }
  for (const std::weak_ptr<Work::Impl>& w : works) {
    if (std::shared_ptr<Work::Impl> work = w.lock()) work->Orphan();
  }
}

void WorkRegistry::TryPollAll() {
  std::vector<std::shared_ptr<Work::Impl>> alive;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::weak_ptr<Work::Impl>& w : works_) {
      if (std::shared_ptr<Work::Impl> work = w.lock()) alive.push_back(std::move(work));
    }
  }
  for (const std::shared_ptr<Work::Impl>& work : alive) work->TryPoll();
}

Batch::State* CurrentBatch() { return current_batch; }

absl::Status CheckNoBatch(const Communicator& comm, OpName op) {
  if (current_batch == nullptr) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrFormat(
      "%s: a batch is open on this thread; inside a batch issue operations with the *Async "
      "methods, and wait for them after Batch::End() (rank %d of %d)",
      OpContext(comm, op), comm.rank(), comm.size()));
}

}  // namespace internal

absl::StatusOr<Batch> Batch::Begin() {
  if (internal::current_batch != nullptr) {
    return absl::FailedPreconditionError(
        "Batch::Begin: a batch is already open on this thread (batches do not nest); end it "
        "first");
  }
  Batch batch;
  batch.state_ = std::make_shared<State>();
  internal::current_batch = batch.state_.get();
  return batch;
}

Batch::~Batch() {
  if (state_ != nullptr && *state_->open) (void)End();
}

Batch::Batch(Batch&& other) noexcept = default;

Batch& Batch::operator=(Batch&& other) noexcept {
  if (this != &other) {
    if (state_ != nullptr && *state_->open) (void)End();
    state_ = std::move(other.state_);
  }
  return *this;
}

absl::StatusOr<Work> Batch::End() {
  if (state_ == nullptr || !*state_->open) {
    return absl::FailedPreconditionError("Batch::End: the batch was already ended");
  }
  if (internal::current_batch == state_.get()) internal::current_batch = nullptr;
  *state_->open = false;
  absl::Status end;
  if (state_->end_group) end = state_->end_group();
  for (const auto& after : state_->after_end) {
    absl::Status s = after();
    if (end.ok()) end = s;
  }
  static const internal::BatchNamer* namer = new internal::BatchNamer();
  return Work(std::make_shared<internal::BatchWork>(*namer, state_->works, std::move(end)));
}

}  // namespace nmesh::comm
