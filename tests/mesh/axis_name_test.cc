#include "nmesh/mesh/axis_name.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"

namespace nmesh::mesh {
namespace {

using ::nmesh::testing::StatusIs;
using ::testing::HasSubstr;

TEST(MeshAxisNameTest, ParseAndFormatRoundTrip) {
  std::set<std::string> seen;
  for (MeshAxisName axis : kAllMeshAxisNames) {
    std::string name(MeshAxisNameString(axis));
    EXPECT_TRUE(seen.insert(name).second) << "duplicate " << name;
    ASSERT_TRUE(ParseMeshAxisName(name).ok()) << name;
    EXPECT_EQ(*ParseMeshAxisName(name), axis);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"pp", "dp", "dp_replicate", "dp_shard", "dp_shard_cp",
                                         "dp_cp", "cp", "tp", "ep", "ep_shard"}));
}

TEST(MeshAxisNameTest, UnknownNameListsTheTenSortedNames) {
  EXPECT_THAT(ParseMeshAxisName("TP"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'TP'; allowed names are ['cp', 'dp', 'dp_cp', 'dp_replicate', "
                                 "'dp_shard', 'dp_shard_cp', 'ep', 'ep_shard', 'pp', 'tp']")));
}

}  // namespace
}  // namespace nmesh::mesh
