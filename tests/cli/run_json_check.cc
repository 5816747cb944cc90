// Runs `mpirun ... nmesh run ... --format json` and checks its report against brute force:
//
//   run_json_check [--communicators N[,N]] [--shape a,b,c,d,e[/...]] [--moe ES,E[/...]]
//                  [--backend NAME]
//                  -- scripts/mpirun.sh -np 8 nmesh run --tp 2 --cp 2 --format json
//
// For every mesh of the report: the exit code is 0, "verified" is true, "backend" is "mpi" (or
// the --backend given), the
// device mesh has the given shape, each member appears once in rank order with "verified": true,
// and every group it observed (native axes, the contract's flattened groups for the strategy, and
// the moe axes) equals the group computed by brute force over the coordinates
// (tests/mesh/brute_force.h). "communicators_created" equals the number of distinct partitions
// that are not trivial, counted here by brute force (with --world-reused, for a run without a
// timeout, not the whole world in order either: that group reuses the world communicator), and,
// with --communicators, the number given. Exits 0 when everything holds, 1 otherwise (printing
// why).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <set>
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

std::vector<int64_t> Ints(const std::string& text) {
  std::vector<int64_t> values;
  for (const std::string& part : Split(text, ',')) values.push_back(std::stoll(part));
  return values;
}

// The contract's flattened groups (§4) as flags over the device mesh's axes.
std::map<std::string, std::vector<bool>> FlattenedOf(const std::string& strategy,
                                                     const std::vector<int64_t>& shape) {
  if (strategy == "fsdp2") {
    return {{"dp", {false, true, true, false, false}},
            {"dp_shard_cp", {false, false, true, true, false}},
            {"dp_cp", {false, true, true, true, false}}};
  }
  if (strategy == "megatron_fsdp" && shape[1] > 1) return {{"dp_cp", {true, true, false}}};
  return {};
}

// The backend every mesh must report (--backend).
std::string expected_backend = "mpi";
// --world-reused: the run had no timeout, so whole-world groups reuse the world communicator.
bool world_reused = false;

void CheckMesh(const json& mesh, const std::vector<int64_t>& shape,
               const std::vector<int64_t>& moe_shape, int64_t world,
               std::optional<int64_t> communicators) {
  const std::string label = mesh.value("label", std::string("mesh"));
  auto fail = [&](const std::string& what) { Fail(label + ": " + what); };
  if (mesh["verified"] != true) fail("not verified");
  if (mesh["backend"] != expected_backend) fail("backend is not " + expected_backend);
  if (mesh["device_mesh"]["shape"].get<std::vector<int64_t>>() != shape) fail("wrong shape");
  const std::vector<std::string> axes = mesh["device_mesh"]["axes"];
  std::vector<int64_t> ranks;
  if (!mesh["ranks"].is_null()) ranks = mesh["ranks"].get<std::vector<int64_t>>();
  const BruteMesh device{shape, ranks};

  // Named groups: native axes, flattened groups, moe axes.
  struct Named {
    std::string name;
    bool moe;
    std::vector<bool> in_set;
  };
  std::vector<Named> named;
  for (size_t a = 0; a < axes.size(); ++a) {
    std::vector<bool> in(axes.size(), false);
    in[a] = true;
    named.push_back({axes[a], false, in});
  }
  const auto flattened = FlattenedOf(mesh["strategy"], shape);
  if (mesh["device_mesh"]["flattened"].size() != flattened.size()) fail("wrong flattened groups");
  for (const auto& [name, in] : flattened) named.push_back({name, false, in});
  std::optional<BruteMesh> moe;
  if (!moe_shape.empty()) {
    if (mesh["moe_mesh"].is_null()) {
      fail("no moe mesh");
      return;
    }
    moe = BruteMesh{{shape[0], moe_shape[0], moe_shape[1]}, ranks};
    named.push_back({"ep_shard", true, {false, true, false}});
    named.push_back({"ep", true, {false, false, true}});
  } else if (!mesh["moe_mesh"].is_null()) {
    fail("unexpected moe mesh");
  }

  // Every member once, in rank order, with its groups as brute force has them.
  std::vector<int64_t> members = ranks;
  if (members.empty()) {
    members.resize(device.coords.size());
    std::iota(members.begin(), members.end(), 0);
  }
  std::sort(members.begin(), members.end());
  const json& per_rank = mesh["per_rank"];
  if (per_rank.size() != members.size()) {
    fail("per_rank has " + std::to_string(per_rank.size()) + " entries");
    return;
  }
  for (size_t i = 0; i < members.size(); ++i) {
    const json& entry = per_rank[i];
    const int64_t r = members[i];
    if (entry["rank"] != r) fail("per_rank out of rank order at " + std::to_string(i));
    if (entry["verified"] != true) fail("rank " + std::to_string(r) + " not verified");
    if (!entry["host"].is_string() || entry["host"].get<std::string>().empty()) {
      fail("rank " + std::to_string(r) + " has no host");
    }
    for (const Named& g : named) {
      const json& groups = entry[g.moe ? "moe_groups" : "groups"];
      const std::vector<int64_t> want = BruteGroupOf(g.moe ? *moe : device, r, g.in_set).ranks;
      if (!groups.contains(g.name) || groups[g.name].get<std::vector<int64_t>>() != want) {
        fail("rank " + std::to_string(r) + " group " + g.name + " differs from brute force");
      }
    }
  }
  for (const json& axis : mesh["axes"]) {
    if (axis["intra_node"] != true)
      fail("axis " + axis["name"].get<std::string>() + " spans hosts");
  }

  // Splits: distinct partitions that are not trivial and not the whole world in order.
  std::vector<int64_t> whole(static_cast<size_t>(world));
  std::iota(whole.begin(), whole.end(), 0);
  std::set<std::vector<std::vector<int64_t>>> partitions;
  for (const Named& g : named) {
    auto p = BrutePartition(g.moe ? *moe : device, g.in_set);
    std::sort(p.begin(), p.end());
    bool trivial = true;
    for (const auto& group : p) trivial = trivial && group.size() == 1;
    if (!trivial && !(world_reused && p.size() == 1 && p[0] == whole)) partitions.insert(p);
  }
  const int64_t created = mesh["communicators_created"];
  if (created != static_cast<int64_t>(partitions.size())) {
    fail("communicators_created is " + std::to_string(created) + ", brute force says " +
         std::to_string(partitions.size()));
  }
  if (communicators.has_value() && created != *communicators) {
    fail("communicators_created is " + std::to_string(created) + ", expected " +
         std::to_string(*communicators));
  }
}

}  // namespace

int main(int argc, char** argv) {
  nmesh::tools::testing::checker_name = "run_json_check";
  std::vector<std::string> communicators, shapes, moes;
  std::string nccl_settings;  // the first mesh's "nccl_settings", as JSON
  std::string command;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (arg == "--world-reused") {
      world_reused = true;
      continue;
    }
    if (i + 1 >= argc) return Fail("missing value for " + arg), 2;
    if (arg == "--communicators")
      communicators = Split(argv[++i], ',');
    else if (arg == "--shape")
      shapes = Split(argv[++i], '/');
    else if (arg == "--moe")
      moes = Split(argv[++i], '/');
    else if (arg == "--backend")
      expected_backend = argv[++i];
    else if (arg == "--nccl-settings")
      nccl_settings = argv[++i];
    else
      return Fail("unknown flag " + arg), 2;
  }
  for (++i; i < argc; ++i) command += std::string(command.empty() ? "" : " ") + "'" + argv[i] + "'";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return Fail("cannot run " + command), 1;
  std::string output;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) output.append(buffer, n);
  const int status = pclose(pipe);
  std::cout << output;
  if (status != 0) Fail("the command exited with status " + std::to_string(status));
  json report;
  try {
    report = json::parse(output);
  } catch (const json::exception& e) {
    Fail(std::string("output is not JSON: ") + e.what());
    return 1;
  }
  const std::vector<json> meshes = report.contains("meshes")
                                       ? report["meshes"].get<std::vector<json>>()
                                       : std::vector<json>{report};
  if (meshes.size() != shapes.size())
    Fail("expected " + std::to_string(shapes.size()) + " mesh(es)");
  if (report["verified"] != true) Fail("the report is not verified");
  if (!nccl_settings.empty() && !meshes.empty() &&
      meshes[0]["nccl_settings"] != json::parse(nccl_settings)) {
    Fail("nccl_settings is " + meshes[0]["nccl_settings"].dump() + ", expected " + nccl_settings);
  }
  const int64_t world = meshes.empty() ? 0 : meshes[0]["world_size"].get<int64_t>();
  for (size_t m = 0; m < meshes.size() && m < shapes.size(); ++m) {
    std::optional<int64_t> expected;
    if (m < communicators.size()) expected = std::stoll(communicators[m]);
    const std::vector<int64_t> moe =
        m < moes.size() && !moes[m].empty() ? Ints(moes[m]) : std::vector<int64_t>{};
    CheckMesh(meshes[m], Ints(shapes[m]), moe, world, expected);
  }
  if (failures == 0) std::cerr << "run_json_check: OK\n";
  return failures == 0 ? 0 : 1;
}
