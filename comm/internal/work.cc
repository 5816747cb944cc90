#include "nmesh/comm/internal/work.h"

#include <utility>

#include "absl/strings/str_format.h"
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

Work::Impl::Impl(const Communicator& comm, std::string_view op)
    : op_(op),
      context_(internal::OpContext(comm, op)),
      rank_suffix_(absl::StrFormat("(rank %d of %d)", comm.rank(), comm.size())) {}

bool Work::Impl::PollLocked() {
  if (done_) return true;
  absl::Status status;
  if (!Poll(&status)) return false;
  done_ = true;
  status_ = std::move(status);
  return true;
}

absl::Status Work::Impl::Block() {
  internal::PollPacer pacer;
  absl::Status status;
  while (!Poll(&status)) pacer.Pause();
  return status;
}

absl::Status Work::Impl::Wait(absl::Duration timeout) {
  std::lock_guard<std::mutex> lock(mu_);
  if (waited_) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: this work handle was already waited (its status was %s) %s", context_,
        status_.ok() ? "OK" : absl::StatusCodeToString(status_.code()), rank_suffix_));
  }
  if (!done_) {
    if (timeout == absl::InfiniteDuration()) {
      status_ = Block();
      done_ = true;
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
  done_ = true;
  status_ = absl::FailedPreconditionError(
      absl::StrFormat("%s: the communicator was destroyed while the operation was pending %s",
                      context_, rank_suffix_));
}

namespace internal {
namespace {

class DoneWork final : public Work::Impl {
 public:
  DoneWork(const Communicator& comm, std::string_view op, absl::Status status)
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

Work CompletedWork(const Communicator& comm, std::string_view op, absl::Status status) {
  return Work(std::make_shared<DoneWork>(comm, op, std::move(status)));
}

std::shared_ptr<Work::Impl> WorkRegistry::Add(std::shared_ptr<Work::Impl> work) {
  // Forget handles that are gone, so the list stays as long as the pending ones.
  std::erase_if(works_, [](const std::weak_ptr<Work::Impl>& w) { return w.expired(); });
  works_.push_back(work);
  return work;
}

void WorkRegistry::OrphanAll() {
  for (const std::weak_ptr<Work::Impl>& w : works_) {
    if (std::shared_ptr<Work::Impl> work = w.lock()) work->Orphan();
  }
  works_.clear();
}

}  // namespace internal
}  // namespace nmesh::comm
