// comm/nccl/config.h: NCCL settings applied to an ncclConfig_t. The config is a plain struct, so
// this runs without a GPU; what NCCL then does with it needs one (docs/NCCL.md).
#include <nccl.h>

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/nccl/config.h"
#include "nmesh/comm/nccl_settings.h"

namespace nmesh::comm::nccl {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(ApplyNcclSettingsTest, EverySettingLandsInItsNcclField) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const NcclSettings settings{.cga_cluster_size = 2,
                              .min_ctas = 4,
                              .max_ctas = 16,
                              .net_name = std::string("Socket"),
                              .split_share = false,
                              .traffic_class = 106,
                              .comm_name = std::string("tp"),
                              .collnet_enable = true,
                              .cta_policy = 1,
                              .shrink_share = true,
                              .nvls_ctas = 24,
                              .n_channels_per_net_peer = 3,
                              .nvlink_centric_sched = true};
  ASSERT_OK(ApplyNcclSettings(settings, NCCL_VERSION_CODE, "tp", config));
  EXPECT_EQ(config.blocking, 0);  // not a setting: left alone
  EXPECT_EQ(config.cgaClusterSize, 2);
  EXPECT_EQ(config.minCTAs, 4);
  EXPECT_EQ(config.maxCTAs, 16);
  ASSERT_NE(config.netName, nullptr);
  EXPECT_STREQ(config.netName, "Socket");
  EXPECT_EQ(config.splitShare, 0);
#if NCCL_VERSION_CODE >= 22700
  EXPECT_EQ(config.trafficClass, 106);
  ASSERT_NE(config.commName, nullptr);
  EXPECT_STREQ(config.commName, "tp");
  EXPECT_EQ(config.collnetEnable, 1);
  EXPECT_EQ(config.CTAPolicy, 1);
  EXPECT_EQ(config.shrinkShare, 1);
  EXPECT_EQ(config.nvlsCTAs, 24);
#endif
#if NCCL_VERSION_CODE >= 22800
  EXPECT_EQ(config.nChannelsPerNetPeer, 3);
  EXPECT_EQ(config.nvlinkCentricSched, 1);
#endif
}

TEST(ApplyNcclSettingsTest, UnsetFieldsKeepTheirValues) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.splitShare = 1;  // nmesh's own default
  ASSERT_OK(ApplyNcclSettings({.max_ctas = 8}, NCCL_VERSION_CODE, "tp", config));
  EXPECT_EQ(config.maxCTAs, 8);
  EXPECT_EQ(config.splitShare, 1);
  EXPECT_EQ(config.minCTAs, NCCL_CONFIG_UNDEF_INT);
  EXPECT_EQ(config.cgaClusterSize, NCCL_CONFIG_UNDEF_INT);
  EXPECT_EQ(config.netName, nullptr);
  ncclConfig_t untouched = NCCL_CONFIG_INITIALIZER;
  ncclConfig_t copy = untouched;
  ASSERT_OK(ApplyNcclSettings({}, 0, "tp", copy));  // no settings: any version will do
  EXPECT_EQ(std::memcmp(&copy, &untouched, sizeof(copy)), 0);
}

TEST(ApplyNcclSettingsTest, StringsOutliveTheSettings) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  {
    NcclSettings settings{.net_name = std::string("IB")};
    ASSERT_OK(ApplyNcclSettings(settings, NCCL_VERSION_CODE, "dp", config));
  }
  EXPECT_STREQ(config.netName, "IB");
}

TEST(ApplyNcclSettingsTest, AFieldTheLoadedNcclPredatesIsRefused) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  // NCCL 2.18.5 has netName and splitShare but not nvlsCTAs (2.27) or nvlinkCentricSched (2.28).
  EXPECT_OK(
      ApplyNcclSettings({.net_name = std::string("IB"), .split_share = true}, 21805, "dp", config));
  EXPECT_THAT(ApplyNcclSettings({.nvls_ctas = 4}, 21805, "tp", config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("NCCL setting nvls_ctas of 'tp' needs NCCL 2.27 or later"),
                             HasSubstr("ncclConfig_t field nvlsCTAs"),
                             HasSubstr("this process has NCCL 2.18.5"))));
  EXPECT_THAT(ApplyNcclSettings({.nvlink_centric_sched = true}, 22703, "ep", config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs NCCL 2.28")));
  EXPECT_THAT(CheckNcclSettingsSupported({.split_share = true}, 21700, "dp"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs NCCL 2.18")));
}

}  // namespace
}  // namespace nmesh::comm::nccl
