// Checks a `nmesh run --format json` report of a job spread over several hosts against the
// launcher's layout, computed here by brute force:
//
//   multihost_check --hosts "h0 h1" --slots S --map-by slot|node --shape a,b,c,d,e [--moe ES,E]
//                   [--placement as-launched|pack] --json FILE --stderr FILE
//
// The launcher puts rank r on hosts[r / S] (--map-by slot: each host's S slots in turn) or on
// hosts[r % H] (--map-by node: round-robin). From that alone this program derives, for every
// rank: its host, its local rank (the ranks before it on its host), and the mesh's rank order
// (as launched: 0..n-1; pack: by host in order of first appearance, then by rank). It then
// checks that the report has: "verified" true, "placement" as given, "ranks" equal to that order
// (null for 0..n-1), every member once in rank order with that host and local rank and every
// group (the FSDP2 axes, the contract's flattened groups and the moe axes) equal to brute force
// over the shape in that order; for every group kind in "axes", "intra_node" true exactly when
// every group of the kind lies on one host; and on stderr the warning "tp groups span hosts"
// (and for cp) exactly when that kind crosses hosts. Exits 0 when all holds, 1 otherwise
// (printing why), 2 on bad flags.
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "nmesh/tests/cli/checker.h"
#include "nmesh/tests/mesh/brute_force.h"

namespace {

using nlohmann::json;
using nmesh::mesh::testing::BruteGroupOf;
using nmesh::mesh::testing::BruteMesh;
using nmesh::mesh::testing::BrutePartition;
using nmesh::tools::testing::Fail;
using nmesh::tools::testing::failures;
using nmesh::tools::testing::Split;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

int main(int argc, char** argv) {
  nmesh::tools::testing::checker_name = "multihost_check";
  std::map<std::string, std::string> flags = {{"--placement", "as-launched"}, {"--moe", ""}};
  for (int i = 1; i < argc; i += 2) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return Fail("missing value for " + arg), 2;
    flags[arg] = argv[i + 1];
  }
  for (const char* needed : {"--hosts", "--slots", "--map-by", "--shape", "--json", "--stderr"}) {
    if (!flags.count(needed)) return Fail(std::string("missing ") + needed), 2;
  }
  std::vector<std::string> hosts;
  for (const std::string& h : Split(flags["--hosts"], ' ')) {
    if (!h.empty()) hosts.push_back(h);
  }
  const int64_t slots = std::stoll(flags["--slots"]);
  const bool by_node = flags["--map-by"] == "node";
  std::vector<int64_t> shape;
  for (const std::string& s : Split(flags["--shape"], ',')) shape.push_back(std::stoll(s));
  std::vector<int64_t> moe_shape;
  for (const std::string& s : Split(flags["--moe"], ',')) moe_shape.push_back(std::stoll(s));
  const bool pack = flags["--placement"] == "pack";
  const int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());

  // The launcher's layout.
  auto host_of = [&](int64_t r) -> size_t {
    return static_cast<size_t>(by_node ? r % static_cast<int64_t>(hosts.size()) : r / slots);
  };
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (pack) {
    std::map<size_t, int64_t> first_seen;
    for (int64_t r = 0; r < n; ++r) first_seen.emplace(host_of(r), static_cast<int64_t>(r));
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return first_seen[host_of(a)] < first_seen[host_of(b)];
    });
  }
  bool identity = true;
  for (int64_t p = 0; p < n; ++p) identity = identity && order[static_cast<size_t>(p)] == p;

  json report;
  try {
    report = json::parse(ReadFile(flags["--json"]));
  } catch (const json::exception& e) {
    Fail(std::string("the report is not JSON: ") + e.what());
    return 1;
  }
  const std::string err = ReadFile(flags["--stderr"]);
  if (report["verified"] != true) Fail("not verified");
  if (report["placement"] != flags["--placement"]) Fail("placement is not " + flags["--placement"]);
  if (report["device_mesh"]["shape"].get<std::vector<int64_t>>() != shape) Fail("wrong shape");
  if (identity ? !report["ranks"].is_null() : report["ranks"] != json(order)) {
    Fail("ranks are " + report["ranks"].dump() + ", the launcher's layout gives " +
         (identity ? std::string("null") : json(order).dump()));
  }

  const BruteMesh device{shape, identity ? std::vector<int64_t>{} : order};
  std::optional<BruteMesh> moe;
  if (!moe_shape.empty()) moe = BruteMesh{{shape[0], moe_shape[0], moe_shape[1]}, device.ranks};
  struct Named {
    std::string name;
    bool moe;
    std::vector<bool> in_set;
  };
  const std::vector<Named> named = [&] {
    std::vector<Named> all = {{"pp", false, {true, false, false, false, false}},
                              {"dp_replicate", false, {false, true, false, false, false}},
                              {"dp_shard", false, {false, false, true, false, false}},
                              {"cp", false, {false, false, false, true, false}},
                              {"tp", false, {false, false, false, false, true}},
                              {"dp", false, {false, true, true, false, false}},
                              {"dp_shard_cp", false, {false, false, true, true, false}},
                              {"dp_cp", false, {false, true, true, true, false}}};
    if (moe.has_value()) {
      all.push_back({"ep_shard", true, {false, true, false}});
      all.push_back({"ep", true, {false, false, true}});
    }
    return all;
  }();

  // Every rank: host, local rank, groups.
  const json& per_rank = report["per_rank"];
  if (per_rank.size() != static_cast<size_t>(n)) {
    Fail("per_rank has " + std::to_string(per_rank.size()) + " entries, expected " +
         std::to_string(n));
    return 1;
  }
  for (int64_t r = 0; r < n; ++r) {
    const json& entry = per_rank[static_cast<size_t>(r)];
    const std::string who = "rank " + std::to_string(r);
    if (entry["rank"] != r) Fail("per_rank out of rank order at " + std::to_string(r));
    if (entry["verified"] != true) Fail(who + " not verified");
    if (entry["host"] != hosts[host_of(r)]) {
      Fail(who + " is on " + entry["host"].dump() + ", the launcher put it on " +
           hosts[host_of(r)]);
    }
    int64_t local = 0;
    for (int64_t q = 0; q < r; ++q) local += host_of(q) == host_of(r) ? 1 : 0;
    if (entry["local_rank"] != local) {
      Fail(who + " has local rank " + entry["local_rank"].dump() + ", expected " +
           std::to_string(local));
    }
    for (const Named& g : named) {
      const json& groups = entry[g.moe ? "moe_groups" : "groups"];
      const std::vector<int64_t> want = BruteGroupOf(g.moe ? *moe : device, r, g.in_set).ranks;
      if (!groups.contains(g.name) || groups[g.name].get<std::vector<int64_t>>() != want) {
        Fail(who + " group " + g.name + " is " + groups.value(g.name, json()).dump() +
             ", brute force says " + json(want).dump());
      }
    }
  }

  // Which kinds stay inside hosts, and the warnings.
  std::map<std::string, bool> intra;
  for (const Named& g : named) {
    bool inside = true;
    for (const std::vector<int64_t>& group : BrutePartition(g.moe ? *moe : device, g.in_set)) {
      for (int64_t member : group) inside = inside && host_of(member) == host_of(group.front());
    }
    intra[g.name] = inside;
  }
  size_t rows = 0;
  for (const json& axis : report["axes"]) {
    const std::string name = axis["name"];
    if (!intra.count(name)) {
      Fail("unexpected group kind " + name);
      continue;
    }
    ++rows;
    if (axis["intra_node"] != intra[name]) {
      Fail(name + " is reported " + (intra[name] ? "cross-node" : "intra-node") +
           ", the launcher's layout says otherwise");
    }
  }
  if (rows != named.size()) Fail("axes has " + std::to_string(rows) + " known rows");
  for (const char* name : {"tp", "cp"}) {
    const bool warned = err.find(std::string(name) + " groups span hosts") != std::string::npos;
    if (warned == intra[name]) {
      Fail(std::string(warned ? "a warning about " : "no warning about ") + name +
           " groups spanning hosts, which " + (intra[name] ? "stay inside" : "cross") + " hosts");
    }
  }
  std::cout << "multihost_check: " << n << " ranks on " << hosts.size() << " hosts ("
            << flags["--map-by"] << ", " << flags["--placement"] << "):";
  for (const Named& g : named) std::cout << " " << g.name << (intra[g.name] ? "=intra" : "=cross");
  std::cout << (failures == 0 ? " -- ok\n" : " -- FAILED\n");
  return failures == 0 ? 0 : 1;
}
