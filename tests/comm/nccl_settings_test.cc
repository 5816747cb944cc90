// The NCCL settings field table (comm/nccl_settings.h): every field is parsed into its own member,
// accepted at both ends of its range and refused just outside; unknown fields, wrong types and bad
// command-line assignments are InvalidArgument naming the key. The expected ranges and members are
// written out here by hand from NCCL's documentation of ncclConfig_t, not read from the table.
#include "nmesh/comm/nccl_settings.h"

#include <climits>
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/testing/status_matchers.h"

namespace nmesh::comm {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

// Every set member, read by name without the table.
std::map<std::string, NcclValue> SetMembers(const NcclSettings& s) {
  std::map<std::string, NcclValue> out;
  auto add_int = [&](const char* name, const std::optional<int>& v) {
    if (v) out[name] = static_cast<int64_t>(*v);
  };
  auto add_bool = [&](const char* name, const std::optional<bool>& v) {
    if (v) out[name] = *v;
  };
  auto add_string = [&](const char* name, const std::optional<std::string>& v) {
    if (v) out[name] = *v;
  };
  add_int("cga_cluster_size", s.cga_cluster_size);
  add_int("min_ctas", s.min_ctas);
  add_int("max_ctas", s.max_ctas);
  add_string("net_name", s.net_name);
  add_bool("split_share", s.split_share);
  add_int("traffic_class", s.traffic_class);
  add_string("comm_name", s.comm_name);
  add_bool("collnet_enable", s.collnet_enable);
  add_int("cta_policy", s.cta_policy);
  add_bool("shrink_share", s.shrink_share);
  add_int("nvls_ctas", s.nvls_ctas);
  add_int("n_channels_per_net_peer", s.n_channels_per_net_peer);
  add_bool("nvlink_centric_sched", s.nvlink_centric_sched);
  return out;
}

struct IntField {
  std::string name;
  int64_t min, max;
};
// NCCL's documented ranges: cgaClusterSize 0-8, minCTAs/maxCTAs 1-32, CTAPolicy 0 (default),
// 1 (efficiency), 2 (zero); trafficClass non-negative; nvlsCTAs and nChannelsPerNetPeer positive.
const std::vector<IntField> kIntFields = {
    {"cga_cluster_size", 0, 8},
    {"min_ctas", 1, 32},
    {"max_ctas", 1, 32},
    {"traffic_class", 0, INT_MAX},
    {"cta_policy", 0, 2},
    {"nvls_ctas", 1, INT_MAX},
    {"n_channels_per_net_peer", 1, INT_MAX},
};
const std::vector<std::string> kBoolFields = {"split_share", "collnet_enable", "shrink_share",
                                              "nvlink_centric_sched"};
const std::vector<std::string> kStringFields = {"net_name", "comm_name"};

TEST(NcclSettingsTest, TheTableHasExactlyTheFieldsOfNccl228sConfigButBlocking) {
  std::vector<std::string> names;
  for (const NcclField& field : NcclFields()) names.emplace_back(field.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "cga_cluster_size", "min_ctas", "max_ctas", "net_name", "split_share",
                       "traffic_class", "comm_name", "collnet_enable", "cta_policy", "shrink_share",
                       "nvls_ctas", "n_channels_per_net_peer", "nvlink_centric_sched"}));
  EXPECT_EQ(FindNcclField("blocking"), nullptr);
  EXPECT_EQ(FindNcclField("maxCTAs"), nullptr);  // NCCL's spelling is not a setting name
}

TEST(NcclSettingsTest, EveryIntegerFieldAcceptsItsBoundsAndRefusesJustOutside) {
  for (const IntField& f : kIntFields) {
    SCOPED_TRACE(f.name);
    for (int64_t ok : {f.min, f.max}) {
      NcclSettings s;
      ASSERT_OK(SetNcclField(s, f.name, NcclValue{ok}, "k"));
      EXPECT_EQ(SetMembers(s), (std::map<std::string, NcclValue>{{f.name, NcclValue{ok}}}));
    }
    for (int64_t bad : {f.min - 1, f.max + 1}) {
      NcclSettings s;
      EXPECT_THAT(SetNcclField(s, f.name, NcclValue{bad}, "tp." + f.name),
                  StatusIs(absl::StatusCode::kInvalidArgument,
                           AllOf(HasSubstr("tp." + f.name + " must be an integer"),
                                 HasSubstr("got " + std::to_string(bad)))));
      EXPECT_TRUE(s.empty());
    }
    NcclSettings s;
    EXPECT_THAT(SetNcclField(s, f.name, NcclValue{true}, "k"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got true")));
    EXPECT_THAT(SetNcclField(s, f.name, NcclValue{std::string("16")}, "k"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got '16'")));
  }
  // The message gives the range as documented.
  NcclSettings s;
  EXPECT_THAT(SetNcclField(s, "max_ctas", NcclValue{int64_t{33}}, "distributed.nccl.tp.max_ctas"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("distributed.nccl.tp.max_ctas must be an integer from 1 to 32, "
                                 "got 33")));
  EXPECT_THAT(
      SetNcclField(s, "traffic_class", NcclValue{int64_t{-1}}, "k"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("k must be an integer >= 0, got -1")));
}

TEST(NcclSettingsTest, EveryBooleanFieldAcceptsBooleansAndZeroOrOne) {
  for (const std::string& name : kBoolFields) {
    SCOPED_TRACE(name);
    for (auto [value, want] :
         {std::pair{NcclValue{true}, true}, std::pair{NcclValue{false}, false},
          std::pair{NcclValue{int64_t{1}}, true}, std::pair{NcclValue{int64_t{0}}, false}}) {
      NcclSettings s;
      ASSERT_OK(SetNcclField(s, name, value, "k"));
      EXPECT_EQ(SetMembers(s), (std::map<std::string, NcclValue>{{name, NcclValue{want}}}));
    }
    for (const NcclValue& bad :
         {NcclValue{int64_t{2}}, NcclValue{int64_t{-1}}, NcclValue{std::string("yes")}}) {
      NcclSettings s;
      EXPECT_THAT(SetNcclField(s, name, bad, "k"),
                  StatusIs(absl::StatusCode::kInvalidArgument,
                           HasSubstr("k must be a boolean (true/false or 1/0)")));
      EXPECT_TRUE(s.empty());
    }
  }
}

TEST(NcclSettingsTest, EveryStringFieldAcceptsANonEmptyString) {
  for (const std::string& name : kStringFields) {
    SCOPED_TRACE(name);
    NcclSettings s;
    ASSERT_OK(SetNcclField(s, name, NcclValue{std::string("IB")}, "k"));
    EXPECT_EQ(SetMembers(s),
              (std::map<std::string, NcclValue>{{name, NcclValue{std::string("IB")}}}));
    for (const NcclValue& bad : {NcclValue{std::string()}, NcclValue{int64_t{3}}}) {
      NcclSettings t;
      EXPECT_THAT(
          SetNcclField(t, name, bad, "k"),
          StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("k must be a non-empty string")));
    }
  }
}

TEST(NcclSettingsTest, AnUnknownFieldIsRefusedListingTheKnownOnes) {
  NcclSettings s;
  EXPECT_THAT(SetNcclField(s, "max_cta", NcclValue{int64_t{4}}, "distributed.nccl.tp"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("distributed.nccl.tp: unknown NCCL setting 'max_cta'"),
                             HasSubstr("known settings are cga_cluster_size, min_ctas, max_ctas"),
                             HasSubstr("nvlink_centric_sched"))));
  EXPECT_THAT(SetNcclField(s, "blocking", NcclValue{int64_t{0}}, "k"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'blocking'")));
}

TEST(NcclSettingsTest, TextValuesAreTypedByTheField) {
  NcclSettings s;
  ASSERT_OK(SetNcclFieldFromText(s, "max_ctas", "16", "k"));
  ASSERT_OK(SetNcclFieldFromText(s, "split_share", "false", "k"));
  ASSERT_OK(SetNcclFieldFromText(s, "collnet_enable", "1", "k"));
  ASSERT_OK(SetNcclFieldFromText(s, "net_name", "16", "k"));  // a string field keeps the text
  EXPECT_EQ(SetMembers(s),
            (std::map<std::string, NcclValue>{{"max_ctas", NcclValue{int64_t{16}}},
                                              {"split_share", NcclValue{false}},
                                              {"collnet_enable", NcclValue{true}},
                                              {"net_name", NcclValue{std::string("16")}}}));
  EXPECT_THAT(SetNcclFieldFromText(s, "max_ctas", "sixteen", "tp.max_ctas"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tp.max_ctas must be an integer from 1 to 32, got 'sixteen'")));
  EXPECT_THAT(SetNcclFieldFromText(s, "max_ctas", "true", "k"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(SetNcclFieldFromText(s, "max_ctas", "99999999999999999999", "k"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(NcclSettingsTest, MinCtasMustNotExceedMaxCtas) {
  NcclSettings s{.min_ctas = 8, .max_ctas = 8};
  EXPECT_OK(CheckNcclSettings(s, "tp"));
  s.min_ctas = 9;
  EXPECT_THAT(
      CheckNcclSettings(s, "distributed.nccl.tp"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("distributed.nccl.tp: min_ctas (9) must not exceed max_ctas (8)")));
  EXPECT_OK(CheckNcclSettings({.min_ctas = 32}, "tp"));  // one alone is never a conflict
}

TEST(NcclSettingsTest, MergeTakesEveryFieldTheOverrideSets) {
  const NcclSettings base{.min_ctas = 2, .max_ctas = 8, .net_name = "IB"};
  const NcclSettings over{.max_ctas = 16, .split_share = false};
  const NcclSettings merged = MergeNcclSettings(base, over);
  EXPECT_EQ(merged,
            (NcclSettings{.min_ctas = 2, .max_ctas = 16, .net_name = "IB", .split_share = false}));
  EXPECT_EQ(MergeNcclSettings(base, {}), base);
  EXPECT_EQ(MergeNcclSettings({}, over), over);
}

TEST(NcclSettingsTest, TextListsTheSetFieldsInTableOrder) {
  EXPECT_EQ(NcclSettingsText({}), "");
  EXPECT_EQ(
      NcclSettingsText(
          {.max_ctas = 16, .net_name = "IB", .split_share = false, .nvlink_centric_sched = true}),
      "max_ctas=16 net_name=IB split_share=false nvlink_centric_sched=true");
  EXPECT_EQ(
      NcclSettingsMapText({{"tp", {.max_ctas = 16}}, {"dp", {.cga_cluster_size = 2}}, {"cp", {}}}),
      "dp{cga_cluster_size=2} tp{max_ctas=16}");
}

TEST(NcclSettingsTest, AssignmentsAccumulatePerName) {
  NcclSettingsMap map;
  ASSERT_OK(ParseNcclAssignment("tp.max_ctas=16", map));
  ASSERT_OK(ParseNcclAssignment("tp.net_name=Socket", map));
  ASSERT_OK(ParseNcclAssignment("dp_shard_cp.split_share=0", map));
  ASSERT_OK(ParseNcclAssignment("tp.max_ctas=8", map));  // the last one wins
  EXPECT_EQ(map, (NcclSettingsMap{{"tp", {.max_ctas = 8, .net_name = "Socket"}},
                                  {"dp_shard_cp", {.split_share = false}}}));
}

TEST(NcclSettingsTest, BadAssignmentsAreRefusedAndChangeNothing) {
  NcclSettingsMap map{{"tp", {.max_ctas = 8}}};
  const NcclSettingsMap before = map;
  for (const char* text :
       {"tp", "tp.max_ctas", ".max_ctas=16", "max_ctas=16", "tp=max_ctas.16", ""}) {
    SCOPED_TRACE(text);
    EXPECT_THAT(ParseNcclAssignment(text, map),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("expected AXIS.SETTING=VALUE (e.g. tp.max_ctas=16)")));
  }
  EXPECT_THAT(ParseNcclAssignment("tp.max_cta=16", map),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tp.max_cta: unknown NCCL setting 'max_cta'")));
  EXPECT_THAT(ParseNcclAssignment("tp.max_ctas=33", map),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tp.max_ctas must be an integer from 1 to 32, got 33")));
  EXPECT_THAT(ParseNcclAssignment("ep.net_name=", map),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ep.net_name must be a non-empty string")));
  EXPECT_EQ(map, before);
}

}  // namespace
}  // namespace nmesh::comm
