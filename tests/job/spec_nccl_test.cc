// NCCL settings through the job layer (no MPI): the recipe's `nccl:` with --nccl over it, field by
// field, and errors about a name pointing at the recipe's file:line:col or at the flag.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/nccl_settings.h"
#include "nmesh/job/spec.h"

namespace nmesh::job {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::EndsWith;
using ::testing::HasSubstr;

// A recipe file in the test's temporary directory.
std::string WriteRecipe(const std::string& name, const std::string& text) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(dir != nullptr ? dir : "/tmp") + "/nmesh_spec_nccl_" + name + ".yaml";
  std::ofstream(path) << text;
  return path;
}

absl::StatusOr<mesh::MeshPlan> Plan(const MeshOptions& options, int64_t world) {
  absl::StatusOr<std::vector<MeshSpec>> specs = ResolveMeshSpecs(options, world, false);
  if (!specs.ok()) return specs.status();
  return PlanMeshSpec(specs->front());
}

TEST(SpecNcclTest, FlagsOverTheRecipeFieldByField) {
  const std::string path = WriteRecipe("merge",
                                       "distributed:\n"
                                       "  tp_size: 2\n"
                                       "  nccl:\n"
                                       "    tp: {max_ctas: 16, net_name: IB}\n"
                                       "    dp: {cga_cluster_size: 2}\n");
  MeshOptions options{.config_path = path};
  ASSERT_OK(comm::ParseNcclAssignment("tp.max_ctas=8", options.nccl));
  ASSERT_OK(comm::ParseNcclAssignment("cp.min_ctas=2", options.nccl));
  ASSERT_OK_AND_ASSIGN(std::vector<MeshSpec> specs, ResolveMeshSpecs(options, 8, false));
  EXPECT_EQ(specs[0].nccl,
            (comm::NcclSettingsMap{{"tp", {.max_ctas = 8, .net_name = std::string("IB")}},
                                   {"dp", {.cga_cluster_size = 2}},
                                   {"cp", {.min_ctas = 2}}}));
  EXPECT_OK(PlanMeshSpec(specs[0]).status());
}

TEST(SpecNcclTest, AnUnknownNameInTheRecipeNamesItsPosition) {
  const std::string path = WriteRecipe("unknown",
                                       "distributed:\n"
                                       "  tp_size: 2\n"
                                       "  nccl:\n"
                                       "    tp: {max_ctas: 16}\n"
                                       "    ep: {max_ctas: 4}\n");
  EXPECT_THAT(Plan({.config_path = path}, 8),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("NCCL settings for 'ep': mesh 'distributed' has no axis or "
                                       "group 'ep'"),
                             EndsWith(path + ":5:5)"))));
}

TEST(SpecNcclTest, AnUnknownNameFromTheFlagsNamesTheFlag) {
  MeshOptions options;
  options.sizes.tp = 2;
  ASSERT_OK(comm::ParseNcclAssignment("world.max_ctas=4", options.nccl));
  EXPECT_THAT(Plan(options, 4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("NCCL settings for 'world': mesh 'device_mesh' has no axis "
                                       "or group 'world'"),
                             EndsWith("(from --nccl)"))));
}

TEST(SpecNcclTest, AFlagThatBreaksTheRecipesSettingsNamesTheFlag) {
  const std::string path = WriteRecipe("minmax",
                                       "distributed:\n"
                                       "  nccl:\n"
                                       "    dp: {min_ctas: 8}\n");
  MeshOptions options{.config_path = path};
  ASSERT_OK(comm::ParseNcclAssignment("dp.max_ctas=4", options.nccl));
  EXPECT_THAT(Plan(options, 4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("min_ctas (8) must not exceed max_ctas (4)"),
                             EndsWith("(from --nccl)"))));
}

}  // namespace
}  // namespace nmesh::job
