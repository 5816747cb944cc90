// The soak loop (job/soak.h) over scripted steps and recoveries, in-process: the steps it runs and
// in what order, what a failure does under each outcome of the recovery, how the time limit ends
// it, and the times it reports.
#include "nmesh/job/soak.h"

#include <cstdint>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"

namespace nmesh::job {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A step that fails at the call numbers in `fail_calls` (0-based over every call), recording the
// step number of each call.
struct ScriptedSteps {
  std::set<int64_t> fail_calls;
  std::vector<int64_t> calls = {};
  absl::Status operator()(int64_t step) {
    const int64_t call = static_cast<int64_t>(calls.size());
    calls.push_back(step);
    if (fail_calls.count(call) != 0) return absl::DeadlineExceededError("all_reduce timed out");
    return absl::OkStatus();
  }
};

RecoveryEvent Event(FailurePolicy action, std::vector<int64_t> dead, int64_t before, int64_t after,
                    bool spare = false) {
  return {.action = action,
          .dead = std::move(dead),
          .culprit = "rank 3: all_reduce timed out",
          .world_before = before,
          .world_after = after,
          .spare = spare};
}

TEST(SoakLoopTest, RunsEveryStepInOrderWithoutAFailure) {
  ScriptedSteps steps;
  std::vector<int64_t> completed;
  SoakReport report = RunSoakLoop(5, std::nullopt,
                                  {.step = [&](int64_t s) { return steps(s); },
                                   .on_step = [&](int64_t c) { completed.push_back(c); }});
  EXPECT_EQ(report.status, SoakStatus::kCompleted);
  EXPECT_EQ(report.steps, 5);
  EXPECT_TRUE(report.events.empty());
  EXPECT_THAT(steps.calls, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(completed, ElementsAre(1, 2, 3, 4, 5));
}

TEST(SoakLoopTest, AFailedStepIsRecoveredFromAndRunAgain) {
  ScriptedSteps steps{.fail_calls = {2}};
  std::vector<absl::Status> causes;
  SoakReport report =
      RunSoakLoop(4, std::nullopt,
                  {.step = [&](int64_t s) { return steps(s); },
                   .recover = [&](const absl::Status& cause) -> absl::StatusOr<RecoveryEvent> {
                     causes.push_back(cause);
                     absl::SleepFor(absl::Milliseconds(30));
                     return Event(FailurePolicy::kShrink, {5}, 8, 6);
                   }});
  EXPECT_EQ(report.status, SoakStatus::kCompleted);
  EXPECT_EQ(report.steps, 4);
  EXPECT_THAT(steps.calls, ElementsAre(0, 1, 2, 2, 3));
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_EQ(causes[0].code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_EQ(report.events.size(), 1u);
  const SoakEvent& event = report.events[0];
  EXPECT_EQ(event.step, 2);
  EXPECT_THAT(event.recovery.dead, ElementsAre(5));
  EXPECT_EQ(event.recovery.world_after, 6);
  // From the error to the next completed step: at least the recovery's 30 ms.
  EXPECT_GE(event.resume_seconds(), 0.03);
  EXPECT_LT(event.resume_seconds(), 30);
  EXPECT_LE(event.failed_at, event.resumed_at);
}

TEST(SoakLoopTest, TwoFailuresInARowResumeAtTheSameCompletedStep) {
  ScriptedSteps steps{.fail_calls = {1, 2}};
  SoakReport report = RunSoakLoop(
      3, std::nullopt,
      {.step = [&](int64_t s) { return steps(s); },
       .recover =
           [&](const absl::Status&) {
             return absl::StatusOr<RecoveryEvent>(Event(FailurePolicy::kRebuild, {}, 4, 4));
           }});
  EXPECT_EQ(report.status, SoakStatus::kCompleted);
  EXPECT_THAT(steps.calls, ElementsAre(0, 1, 1, 1, 2));
  ASSERT_EQ(report.events.size(), 2u);
  EXPECT_EQ(report.events[0].step, 1);
  EXPECT_EQ(report.events[1].step, 1);
  EXPECT_EQ(report.events[0].resumed_at, report.events[1].resumed_at);
  EXPECT_GE(report.events[0].resume_seconds(), report.events[1].resume_seconds());
}

TEST(SoakLoopTest, WithoutRecoveryAFailureEndsTheLoopWithItsError) {
  ScriptedSteps steps{.fail_calls = {3}};
  SoakReport report = RunSoakLoop(10, std::nullopt, {.step = [&](int64_t s) { return steps(s); }});
  EXPECT_EQ(report.status, SoakStatus::kFailed);
  EXPECT_EQ(report.steps, 3);
  EXPECT_EQ(report.error.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(steps.calls, ElementsAre(0, 1, 2, 3));
}

TEST(SoakLoopTest, AFailedRecoveryEndsTheLoopWithTheRecoverysError) {
  ScriptedSteps steps{.fail_calls = {0}};
  SoakReport report =
      RunSoakLoop(10, std::nullopt,
                  {.step = [&](int64_t s) { return steps(s); },
                   .recover = [](const absl::Status&) -> absl::StatusOr<RecoveryEvent> {
                     return absl::FailedPreconditionError("mesh 'distributed' cannot shrink");
                   }});
  EXPECT_EQ(report.status, SoakStatus::kFailed);
  EXPECT_EQ(report.steps, 0);
  EXPECT_EQ(report.error.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(report.error.message()), HasSubstr("cannot shrink"));
}

TEST(SoakLoopTest, ASpareStopsSteppingAndSaysSo) {
  ScriptedSteps steps{.fail_calls = {2}};
  SoakReport report = RunSoakLoop(
      10, std::nullopt,
      {.step = [&](int64_t s) { return steps(s); },
       .recover =
           [](const absl::Status&) {
             return absl::StatusOr<RecoveryEvent>(Event(FailurePolicy::kShrink, {1}, 8, 6, true));
           }});
  EXPECT_EQ(report.status, SoakStatus::kSpare);
  EXPECT_EQ(report.steps, 2);
  EXPECT_THAT(steps.calls, ElementsAre(0, 1, 2));
  ASSERT_EQ(report.events.size(), 1u);
  EXPECT_TRUE(report.events[0].recovery.spare);
  EXPECT_EQ(report.events[0].resume_seconds(), -1);
}

TEST(SoakLoopTest, ADurationEndsTheLoopWhenAnyMemberReachesIt) {
  ScriptedSteps steps;
  std::vector<bool> wishes;
  SoakReport report = RunSoakLoop(std::nullopt, absl::Milliseconds(50),
                                  {.step =
                                       [&](int64_t s) {
                                         absl::SleepFor(absl::Milliseconds(5));
                                         return steps(s);
                                       },
                                   .agree_stop = [&](bool want) -> absl::StatusOr<bool> {
                                     wishes.push_back(want);
                                     // Another member reached the time limit at this rank's fourth
                                     // agreement.
                                     return want || wishes.size() == 4;
                                   }});
  EXPECT_EQ(report.status, SoakStatus::kCompleted);
  EXPECT_EQ(report.steps, 3);
  EXPECT_EQ(wishes.size(), 4u);
}

TEST(SoakLoopTest, StepsAndDurationWhicheverComesFirst) {
  ScriptedSteps steps;
  SoakReport report = RunSoakLoop(4, absl::Hours(1), {.step = [&](int64_t s) { return steps(s); }});
  EXPECT_EQ(report.steps, 4);
  ScriptedSteps slow;
  const absl::Time start = absl::Now();
  report = RunSoakLoop(1000000, absl::Milliseconds(40), {.step = [&](int64_t s) {
                         absl::SleepFor(absl::Milliseconds(2));
                         return slow(s);
                       }});
  EXPECT_EQ(report.status, SoakStatus::kCompleted);
  EXPECT_GE(report.steps, 1);
  EXPECT_LT(report.steps, 1000000);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(40));
}

// A recovery that ends after the duration: one more step shows the new meshes work (and gives
// the event its resume time) before the loop stops.
TEST(SoakLoopTest, ARecoveryPastTheDurationIsFollowedByOneCompletedStep) {
  ScriptedSteps steps{.fail_calls = {1}};
  SoakReport report =
      RunSoakLoop(std::nullopt, absl::Milliseconds(40),
                  {.step = [&](int64_t s) { return steps(s); },
                   .recover = [&](const absl::Status&) -> absl::StatusOr<RecoveryEvent> {
                     absl::SleepFor(absl::Milliseconds(80));
                     return Event(FailurePolicy::kRebuild, {}, 4, 4);
                   }});
  EXPECT_EQ(report.status, SoakStatus::kCompleted);
  EXPECT_THAT(steps.calls, ElementsAre(0, 1, 1));
  EXPECT_EQ(report.steps, 2);
  ASSERT_EQ(report.events.size(), 1u);
  EXPECT_GE(report.events[0].resume_seconds(), 0.08);
}

TEST(SoakLoopTest, AFailedStopAgreementIsRecoveredFromLikeAStep) {
  ScriptedSteps steps;
  int agreements = 0;
  SoakReport report =
      RunSoakLoop(3, absl::Hours(1),
                  {.step = [&](int64_t s) { return steps(s); },
                   .agree_stop = [&](bool want) -> absl::StatusOr<bool> {
                     if (++agreements == 2) return absl::UnavailableError("peer gone");
                     return want;
                   },
                   .recover = [](const absl::Status& cause) -> absl::StatusOr<RecoveryEvent> {
                     EXPECT_EQ(cause.code(), absl::StatusCode::kUnavailable);
                     return Event(FailurePolicy::kShrink, {2}, 4, 2);
                   }});
  EXPECT_EQ(report.status, SoakStatus::kCompleted);
  EXPECT_EQ(report.steps, 3);
  EXPECT_THAT(steps.calls, ElementsAre(0, 1, 2));
  ASSERT_EQ(report.events.size(), 1u);
  EXPECT_EQ(report.events[0].step, 1);
}

TEST(SoakLoopTest, AfterARecoveryEveryMemberGoesOnFromTheAgreedStep) {
  // This rank completed step 3 before the failure reached it at step 4; another had not: they
  // agree on 3, and this rank runs step 3 again.
  ScriptedSteps steps{.fail_calls = {4}};
  std::vector<int64_t> offered;
  SoakReport report =
      RunSoakLoop(6, std::nullopt,
                  {.step = [&](int64_t s) { return steps(s); },
                   .recover = [](const absl::Status&) -> absl::StatusOr<RecoveryEvent> {
                     return Event(FailurePolicy::kShrink, {7}, 8, 6);
                   },
                   .agree_resume = [&](int64_t completed) -> absl::StatusOr<int64_t> {
                     offered.push_back(completed);
                     return completed - 1;
                   }});
  EXPECT_EQ(report.status, SoakStatus::kCompleted);
  EXPECT_EQ(report.steps, 6);
  EXPECT_THAT(offered, ElementsAre(4));
  EXPECT_THAT(steps.calls, ElementsAre(0, 1, 2, 3, 4, 3, 4, 5));
  ASSERT_EQ(report.events.size(), 1u);
  EXPECT_EQ(report.events[0].step, 4);
}

TEST(SoakLoopTest, AFailedResumeAgreementIsRecoveredFromAgain) {
  ScriptedSteps steps{.fail_calls = {1}};
  int recoveries = 0;
  int agreements = 0;
  SoakReport report =
      RunSoakLoop(3, std::nullopt,
                  {.step = [&](int64_t s) { return steps(s); },
                   .recover = [&](const absl::Status&) -> absl::StatusOr<RecoveryEvent> {
                     ++recoveries;
                     return Event(FailurePolicy::kRebuild, {}, 4, 4);
                   },
                   .agree_resume = [&](int64_t completed) -> absl::StatusOr<int64_t> {
                     if (++agreements == 1)
                       return absl::DeadlineExceededError("all_reduce timed out");
                     return completed;
                   }});
  EXPECT_EQ(report.status, SoakStatus::kCompleted);
  EXPECT_EQ(recoveries, 2);
  EXPECT_EQ(report.events.size(), 2u);
  EXPECT_THAT(steps.calls, ElementsAre(0, 1, 1, 2));
  // An agreed step beyond this rank's count is a bug, not a place to go on from.
  ScriptedSteps more{.fail_calls = {1}};
  report = RunSoakLoop(
      3, std::nullopt,
      {.step = [&](int64_t s) { return more(s); },
       .recover = [](const absl::Status&) -> absl::StatusOr<RecoveryEvent> {
         return Event(FailurePolicy::kRebuild, {}, 4, 4);
       },
       .agree_resume = [](int64_t completed) -> absl::StatusOr<int64_t> { return completed + 1; }});
  EXPECT_EQ(report.status, SoakStatus::kFailed);
  EXPECT_EQ(report.error.code(), absl::StatusCode::kInternal);
}

TEST(SoakLoopTest, AWrongResultEndsTheLoopWithoutRecovery) {
  int recoveries = 0;
  SoakReport report =
      RunSoakLoop(3, std::nullopt,
                  {.step = [](int64_t s) -> absl::Status {
                     if (s == 1)
                       return absl::DataLossError("soak step 1: tp all_gather: 1 of 8 differ");
                     return absl::OkStatus();
                   },
                   .recover = [&](const absl::Status&) -> absl::StatusOr<RecoveryEvent> {
                     ++recoveries;
                     return Event(FailurePolicy::kRebuild, {}, 4, 4);
                   }});
  EXPECT_EQ(report.status, SoakStatus::kFailed);
  EXPECT_EQ(report.error.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(recoveries, 0);
  EXPECT_EQ(report.steps, 1);
}

TEST(SoakLoopTest, NeitherStepsNorDurationIsAnError) {
  ScriptedSteps steps;
  SoakReport report =
      RunSoakLoop(std::nullopt, std::nullopt, {.step = [&](int64_t s) { return steps(s); }});
  EXPECT_EQ(report.status, SoakStatus::kFailed);
  EXPECT_EQ(report.error.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(steps.calls.empty());
  EXPECT_EQ(
      RunSoakLoop(0, std::nullopt, {.step = [&](int64_t s) { return steps(s); }}).error.code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      RunSoakLoop(std::nullopt, absl::ZeroDuration(), {.step = [&](int64_t s) { return steps(s); }})
          .error.code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunSoakLoop(3, std::nullopt, {}).error.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SoakStatusName(SoakStatus::kSpare), "spare");
}

}  // namespace
}  // namespace nmesh::job
