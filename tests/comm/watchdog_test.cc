// The watchdog's self-polling mode (comm/watch/watchdog.h), which NCCL communicators use, and
// AbortTogether, on a scripted backend that needs no GPU: an asynchronous operation that never
// completes is timed out and its family aborted; an asynchronous error found by PollAsyncError
// aborts the family with a timeout or without one; the other communicators go on being watched;
// AbortTogether hands the communicators of one backend to one AbortGroup call.
#include "nmesh/comm/watch/watchdog.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/comm/communicator.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/self.h"

namespace nmesh::comm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Completes when `released` is set; fails like an aborted NCCL handle once `aborted` is.
class ScriptedWork final : public Work::Impl {
 public:
  ScriptedWork(const Communicator& comm, OpKind op, std::shared_ptr<std::atomic<bool>> released,
               std::shared_ptr<std::atomic<bool>> aborted)
      : Impl(comm, op), released_(std::move(released)), aborted_(std::move(aborted)) {}

 protected:
  bool Poll(absl::Status* status) override {
    if (aborted_->load()) {
      *status = absl::FailedPreconditionError("aborted");
      return true;
    }
    if (!released_->load()) return false;
    *status = absl::OkStatus();
    return true;
  }

 private:
  std::shared_ptr<std::atomic<bool>> released_;
  std::shared_ptr<std::atomic<bool>> aborted_;
};

// Every log entry the scripted backend writes: "abort <name>", "group <a>,<b>".
struct Log {
  std::mutex mu;
  std::vector<std::string> entries;
  void Add(std::string entry) {
    std::lock_guard<std::mutex> lock(mu);
    entries.push_back(std::move(entry));
  }
  std::vector<std::string> Get() {
    std::lock_guard<std::mutex> lock(mu);
    return entries;
  }
};

// A one-rank host communicator whose asynchronous operations stay pending until released, watched
// in the self-polling mode like an NCCL communicator.
class ScriptedComm final : public Communicator {
 public:
  ScriptedComm(CommOptions options, std::shared_ptr<Log> log)
      : options_(std::move(options)), log_(std::move(log)) {
    Watch(nullptr, WatchMode::kSelfPolling);
  }
  ~ScriptedComm() override {
    Unwatch();
    works_.OrphanAll();
  }

  void Release() { released_->store(true); }
  void InjectAsyncError(absl::Status error) {
    std::lock_guard<std::mutex> lock(mu_);
    async_error_ = std::move(error);
  }
  bool aborted() const { return aborted_->load(); }

  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string_view backend() const override { return "scripted"; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }
  const CommOptions& options() const override { return options_; }
  absl::Status Abort() override {
    if (!aborted_->exchange(true)) log_->Add("abort " + options_.name);
    return absl::OkStatus();
  }

 protected:
  absl::Status AbortGroup(absl::Span<Communicator* const> family) override {
    std::string names;
    for (Communicator* member : family) {
      names += (names.empty() ? "" : ",") + member->options().name;
      static_cast<ScriptedComm*>(member)->aborted_->store(true);
    }
    log_->Add("group " + names);
    return absl::OkStatus();
  }
  absl::Status PollAsyncError() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_->load()) return absl::OkStatus();
    return async_error_;
  }
  void PollOutstanding() override { works_.TryPollAll(); }
  absl::Status CheckUsable(std::string_view op) const override {
    if (!aborted_->load()) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(std::string(op), ": aborted"));
  }
  absl::StatusOr<Work> DoAsync(const OpArgs& args, const AsyncOptions&) override {
    return Work(works_.Add(std::make_shared<ScriptedWork>(*this, args.op, released_, aborted_)));
  }
  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int>, int,
                                                        CommOptions) override {
    return absl::UnimplementedError("scripted");
  }
  absl::Status DoAllReduce(const void*, void*, size_t, DataType, ReduceOp) override {
    return absl::OkStatus();
  }
  absl::Status DoAllGather(const void*, void*, size_t, DataType) override {
    return absl::OkStatus();
  }
  absl::Status DoReduceScatter(const void*, void*, size_t, DataType, ReduceOp) override {
    return absl::OkStatus();
  }
  absl::Status DoBroadcast(void*, size_t, DataType, int) override { return absl::OkStatus(); }
  absl::Status DoAllToAll(const void*, void*, size_t, DataType) override {
    return absl::OkStatus();
  }
  absl::Status DoSend(const void*, size_t, DataType, int) override { return absl::OkStatus(); }
  absl::Status DoRecv(void*, size_t, DataType, int) override { return absl::OkStatus(); }
  absl::Status DoBarrier() override { return absl::OkStatus(); }

 private:
  CommOptions options_;
  std::shared_ptr<Log> log_;
  std::shared_ptr<std::atomic<bool>> released_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<bool>> aborted_ = std::make_shared<std::atomic<bool>>(false);
  std::mutex mu_;
  absl::Status async_error_;  // guarded by mu_
  internal::WorkRegistry works_;
};

// Collects the watchdog's reports for one test, and restores the default handler after it.
class WatchdogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetTimeoutHandler([this](const TimeoutReport& report) {
      std::lock_guard<std::mutex> lock(mu_);
      reports_.push_back(report);
      if (!reported_.HasBeenNotified()) reported_.Notify();
    });
  }
  void TearDown() override { SetTimeoutHandler(nullptr); }

  // Waits (at most 10 s) for the first report.
  std::vector<TimeoutReport> WaitForReports() {
    EXPECT_TRUE(reported_.WaitForNotificationWithTimeout(absl::Seconds(10)))
        << "the watchdog reported nothing";
    absl::SleepFor(absl::Milliseconds(100));  // room for a wrong second report
    std::lock_guard<std::mutex> lock(mu_);
    return reports_;
  }

  // Makes `names` scripted communicators that abort together, as a DeviceMesh sets them up.
  std::vector<std::shared_ptr<ScriptedComm>> MakeFamily(std::vector<std::string> names,
                                                        std::optional<absl::Duration> timeout) {
    std::vector<std::shared_ptr<ScriptedComm>> family;
    for (const std::string& name : names) {
      family.push_back(
          std::make_shared<ScriptedComm>(CommOptions{.name = name, .timeout = timeout}, log_));
    }
    std::vector<Communicator*> members;
    for (const auto& comm : family) members.push_back(comm.get());
    for (const auto& comm : family) {
      comm->SetAbortFamily([members] { (void)AbortTogether(members); });
    }
    return family;
  }

  std::shared_ptr<Log> log_ = std::make_shared<Log>();
  std::mutex mu_;
  std::vector<TimeoutReport> reports_;
  absl::Notification reported_;
};

TEST_F(WatchdogTest, AsyncOperationPastItsDeadlineAbortsTheFamilyTogether) {
  auto family = MakeFamily({"tp", "dp"}, absl::Milliseconds(100));
  std::vector<float> data(4, 1.0f);
  // #1 completes; #2 is never released.
  absl::StatusOr<Work> first =
      family[0]->AllReduceAsync<float>(absl::MakeSpan(data), absl::MakeSpan(data), ReduceOp::kSum);
  ASSERT_TRUE(first.ok()) << first.status();
  family[0]->Release();
  ASSERT_TRUE(first->Wait().ok());
  absl::StatusOr<Work> second =
      family[1]->AllReduceAsync<float>(absl::MakeSpan(data), absl::MakeSpan(data), ReduceOp::kSum);
  ASSERT_TRUE(second.ok()) << second.status();

  const std::vector<TimeoutReport> reports = WaitForReports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].axis, "dp");
  EXPECT_EQ(reports[0].stuck.seq, 1u);  // dp's first operation
  EXPECT_EQ(reports[0].stuck.op, OpKind::kAllReduce);
  EXPECT_THAT(reports[0].error, HasSubstr("all_reduce on axis 'dp' timed out after"));
  // One grouped abort of both, nothing one by one; the pending handle fails.
  EXPECT_THAT(log_->Get(), ElementsAre("group tp,dp"));
  EXPECT_TRUE(family[0]->aborted() && family[1]->aborted());
  EXPECT_FALSE(second->Wait(absl::Seconds(5)).ok());
  // Later operations fail at once.
  EXPECT_EQ(family[0]->Barrier().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(WatchdogTest, AsyncErrorAbortsTheFamilyWithoutATimeout) {
  auto family = MakeFamily({"tp", "cp"}, std::nullopt);
  std::vector<float> data(4, 1.0f);
  absl::StatusOr<Work> pending =
      family[0]->AllReduceAsync<float>(absl::MakeSpan(data), absl::MakeSpan(data), ReduceOp::kSum);
  ASSERT_TRUE(pending.ok()) << pending.status();
  family[1]->InjectAsyncError(absl::UnavailableError("remote peer 3 closed the connection"));

  const std::vector<TimeoutReport> reports = WaitForReports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].axis, "cp");
  EXPECT_EQ(reports[0].error, "remote peer 3 closed the connection");
  EXPECT_THAT(reports[0].diagnosis.summary, HasSubstr("asynchronous error on axis 'cp'"));
  EXPECT_THAT(FormatTimeoutReport(reports[0]), HasSubstr("rank 0: remote peer 3 closed"));
  EXPECT_THAT(log_->Get(), ElementsAre("group tp,cp"));
  EXPECT_FALSE(pending->Wait(absl::Seconds(5)).ok());  // tp's operation failed with the family
}

TEST_F(WatchdogTest, GoesOnWatchingAfterAFamilyWithoutASideChannelFired) {
  auto first = MakeFamily({"student"}, std::nullopt);
  first[0]->InjectAsyncError(absl::InternalError("first"));
  ASSERT_EQ(WaitForReports().size(), 1u);
  // A rebuilt family is still watched: a server survives its first abort.
  absl::Notification second_report;
  SetTimeoutHandler([&](const TimeoutReport& report) {
    if (report.error == "second" && !second_report.HasBeenNotified()) second_report.Notify();
  });
  auto second = MakeFamily({"student2"}, std::nullopt);
  second[0]->InjectAsyncError(absl::InternalError("second"));
  EXPECT_TRUE(second_report.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(second[0]->aborted());
}

TEST_F(WatchdogTest, HoldsNoLockWhileAFamilyAborts) {
  // A family whose abort blocks until released, as a backend's abort can take a while.
  auto family = MakeFamily({"slow"}, std::nullopt);
  absl::Notification abort_entered, release_abort;
  std::vector<Communicator*> members = {family[0].get()};
  family[0]->SetAbortFamily([&, members] {
    abort_entered.Notify();
    release_abort.WaitForNotification();
    (void)AbortTogether(members);
  });
  family[0]->InjectAsyncError(absl::InternalError("stuck abort"));
  ASSERT_TRUE(abort_entered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // While the watchdog thread is inside the abort, other communicators are still registered,
  // given families and unregistered without waiting for it (each takes the watchdog's lock).
  absl::Notification others_done;
  std::thread other([&] {
    auto unrelated = MakeFamily({"unrelated"}, absl::Seconds(30));
    unrelated.clear();
    others_done.Notify();
  });
  EXPECT_TRUE(others_done.WaitForNotificationWithTimeout(absl::Seconds(5)))
      << "the watchdog holds its lock across an abort";
  release_abort.Notify();
  other.join();
  ASSERT_EQ(WaitForReports().size(), 1u);
  EXPECT_TRUE(family[0]->aborted());
}

TEST_F(WatchdogTest, MonitorReportsAWatchdogStuckInAnAbort) {
  std::mutex mu;
  std::vector<std::string> lines;
  absl::Notification stalled;
  SetWatchdogStall(absl::Milliseconds(300), [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back(line);
    if (!stalled.HasBeenNotified()) stalled.Notify();
  });
  auto family = MakeFamily({"hung"}, std::nullopt);
  absl::Notification release_abort;
  std::vector<Communicator*> members = {family[0].get()};
  family[0]->SetAbortFamily([&, members] {
    release_abort.WaitForNotification();
    (void)AbortTogether(members);
  });
  family[0]->InjectAsyncError(absl::InternalError("abort never returns"));
  const bool reported = stalled.WaitForNotificationWithTimeout(absl::Seconds(10));
  release_abort.Notify();
  EXPECT_TRUE(reported) << "the monitor did not notice the stuck watchdog";
  (void)WaitForReports();
  SetWatchdogStall(kWatchdogStallLimit);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines[0], HasSubstr("the watchdog thread made no progress for"));
  EXPECT_THAT(lines[0], HasSubstr("aborting the communicators of axis 'hung'"));
}

TEST(AbortTogetherTest, OneGroupCallPerBackendAndNullsSkipped) {
  auto log = std::make_shared<Log>();
  ScriptedComm a({.name = "a"}, log), b({.name = "b"}, log);
  std::unique_ptr<Communicator> self = NewSelfCommunicator({.name = "self"});
  std::vector<Communicator*> comms = {&a, nullptr, self.get(), &b, &a};
  EXPECT_TRUE(AbortTogether(comms).ok());
  EXPECT_THAT(log->Get(), ElementsAre("group a,b"));                         // once each, in order
  EXPECT_EQ(self->Barrier().code(), absl::StatusCode::kFailedPrecondition);  // aborted by default
}

}  // namespace
}  // namespace nmesh::comm
