// GoogleTest matchers for absl::Status and absl::StatusOr<T>.
//
//   EXPECT_THAT(layout.GroupOf(0, "tp"), IsOk());
//   EXPECT_THAT(Parse("bogus"), StatusIs(absl::StatusCode::kInvalidArgument,
//                                        HasSubstr("Unknown strategy")));
//   ASSERT_OK_AND_ASSIGN(auto mesh, BuildMesh(...));
#ifndef NMESH_BASE_TESTING_STATUS_MATCHERS_H_
#define NMESH_BASE_TESTING_STATUS_MATCHERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nmesh::testing {

namespace internal {
inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace internal

MATCHER(IsOk, "is OK") {
  const absl::Status& status = internal::GetStatus(arg);
  if (!status.ok()) *result_listener << "status is " << status;
  return status.ok();
}

MATCHER_P2(StatusIs, code, message_matcher,
           "has code " + ::testing::PrintToString(code) + " and a message that " +
               ::testing::DescribeMatcher<std::string>(message_matcher)) {
  const absl::Status& status = internal::GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

}  // namespace nmesh::testing

#define NMESH_TESTING_CONCAT_INNER_(a, b) a##b
#define NMESH_TESTING_CONCAT_(a, b) NMESH_TESTING_CONCAT_INNER_(a, b)

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::nmesh::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::nmesh::testing::IsOk())

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                       \
  auto NMESH_TESTING_CONCAT_(statusor_, __LINE__) = (rexpr);   \
  ASSERT_TRUE(NMESH_TESTING_CONCAT_(statusor_, __LINE__).ok()) \
      << NMESH_TESTING_CONCAT_(statusor_, __LINE__).status();  \
  lhs = *std::move(NMESH_TESTING_CONCAT_(statusor_, __LINE__))

#endif  // NMESH_BASE_TESTING_STATUS_MATCHERS_H_
