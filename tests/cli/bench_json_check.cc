// Runs `mpirun ... nmesh bench ... --format json` and checks its report:
//
//   bench_json_check --op OP -b BYTES -e BYTES -f FACTOR --axes NAME:SIZE[,NAME:SIZE...]
//                    [--async 0|1] [--png FILE] -- scripts/mpirun.sh -np 8 nmesh bench ...
//                    --format json
//   bench_json_check --exit CODE --output REGEX -- COMMAND...
//
// Report mode: the command exits 0 and prints one JSON object whose "op" is OP, whose total
// "wrong" is 0, and whose axes are exactly the NAME:SIZE list, in order (NAME is the axis' "name",
// SIZE its group size). Every axis has one row per size of the sweep -b, -b*f, ... <= -e, skipping
// sizes with no element per rank, where size and count follow nccl-tests' conventions (recomputed
// here from the flags: the size is the largest buffer in whole float32 elements, per rank for
// all_gather, reduce_scatter and all_to_all; for all_to_all_v in whole units of n(n-1)/2 elements,
// one element for a group of 1, the count being the whole buffer); each row has #wrong 0, a
// positive time,
// algbw = size / time and busbw = algbw * nccl-tests' factor for OP and the group size; the
// axis' avg_busbw is the mean. With --png, FILE (removed first) must start with the PNG
// signature afterwards. --async 1: the report says "async": true; --async 0: it has no "async".
//
// Exit mode: the command's exit status is CODE and its combined output matches the extended
// regular expression REGEX.
//
// Exits 0 when everything holds, 1 otherwise (printing why), 2 on bad flags.
#include <sys/wait.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"
#include "nmesh/tests/cli/checker.h"

namespace {

using nlohmann::json;

using nmesh::tools::testing::Fail;
using nmesh::tools::testing::failures;
using nmesh::tools::testing::Split;

// The command's output (stdout, plus stderr when `with_stderr`) and exit status.
std::pair<std::string, int> Run(const std::string& command, bool with_stderr) {
  FILE* pipe = popen((command + (with_stderr ? " 2>&1" : "")).c_str(), "r");
  if (pipe == nullptr) return {"", -1};
  std::string output;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) output.append(buffer, n);
  const int status = pclose(pipe);
  return {output, WIFEXITED(status) ? WEXITSTATUS(status) : 128};
}

double Factor(const std::string& op, int64_t n) {
  const double d = static_cast<double>(n);
  if (op == "all_reduce") return 2 * (d - 1) / d;
  if (op == "broadcast") return 1;
  return (d - 1) / d;  // all_gather, reduce_scatter, all_to_all
}

bool Near(double a, double b) { return std::fabs(a - b) <= 1e-9 * std::max(std::fabs(b), 1e-30); }

void CheckAxis(const json& axis, const std::string& op, int64_t n, uint64_t b, uint64_t e,
               uint64_t f) {
  const std::string name = axis["name"].get<std::string>();
  std::vector<std::pair<uint64_t, uint64_t>> expected;  // (size, count)
  for (uint64_t requested = b; requested <= e; requested *= f) {
    const uint64_t elements = requested / 4;
    const uint64_t un = static_cast<uint64_t>(n);
    if (op == "all_to_all_v") {
      // Rank s sends (s + d) mod n units to rank d: n(n-1)/2 units in all.
      const uint64_t units = n == 1 ? 1 : un * (un - 1) / 2;
      const uint64_t count = elements / units * units;
      if (count > 0) expected.emplace_back(count * 4, count);
      continue;
    }
    const bool per_rank = op == "all_gather" || op == "reduce_scatter" || op == "all_to_all";
    const uint64_t count = per_rank ? elements / un : elements;
    const uint64_t size = (per_rank ? count * un : count) * 4;
    if (count > 0) expected.emplace_back(size, count);
  }
  const json& rows = axis["rows"];
  if (rows.size() != expected.size()) {
    Fail(name + ": " + std::to_string(rows.size()) + " rows, expected " +
         std::to_string(expected.size()));
    return;
  }
  double sum = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const json& row = rows[i];
    const std::string where = name + " row " + std::to_string(i);
    if (row["size"].get<uint64_t>() != expected[i].first) {
      Fail(where + ": size " + row["size"].dump() + ", expected " +
           std::to_string(expected[i].first));
    }
    if (row["count"].get<uint64_t>() != expected[i].second) {
      Fail(where + ": count " + row["count"].dump() + ", expected " +
           std::to_string(expected[i].second));
    }
    if (row["wrong"].get<int64_t>() != 0) Fail(where + ": #wrong " + row["wrong"].dump());
    if (row["type"] != "float32") Fail(where + ": type " + row["type"].dump());
    const std::string redop = op == "all_reduce" || op == "reduce_scatter" ? "sum" : "none";
    if (row["redop"] != redop) Fail(where + ": redop " + row["redop"].dump());
    const double time_us = row["time_us"].get<double>();
    const double algbw = row["algbw"].get<double>();
    const double busbw = row["busbw"].get<double>();
    if (!(time_us > 0)) Fail(where + ": time " + row["time_us"].dump());
    if (!Near(algbw, static_cast<double>(expected[i].first) / time_us / 1e3)) {
      Fail(where + ": algbw " + row["algbw"].dump() + " is not size / time");
    }
    if (!Near(busbw, algbw * Factor(op, n))) {
      Fail(where + ": busbw " + row["busbw"].dump() + " is not algbw * " +
           std::to_string(Factor(op, n)));
    }
    sum += busbw;
  }
  if (!rows.empty() && !Near(axis["avg_busbw"].get<double>(), sum / rows.size())) {
    Fail(name + ": avg_busbw " + axis["avg_busbw"].dump() + " is not the mean busbw");
  }
}

void CheckPng(const std::string& path) {
  std::ifstream png(path, std::ios::binary);
  std::string magic(8, '\0');
  if (!png.read(magic.data(), 8) || magic != std::string("\x89PNG\r\n\x1a\n", 8)) {
    Fail(path + " is not a PNG file");
  }
}

}  // namespace

int main(int argc, char** argv) {
  nmesh::tools::testing::checker_name = "bench_json_check";
  std::string op = "all_reduce", png, regex;
  uint64_t b = 0, e = 0, f = 0;
  int exit_code = -1, async = -1;
  std::vector<std::pair<std::string, int64_t>> axes;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (i + 1 >= argc) return Fail("missing value for " + arg), 2;
    const std::string value = argv[++i];
    if (arg == "--op") {
      op = value;
    } else if (arg == "-b") {
      b = std::stoull(value);
    } else if (arg == "-e") {
      e = std::stoull(value);
    } else if (arg == "-f") {
      f = std::stoull(value);
    } else if (arg == "--async") {
      async = std::stoi(value);
    } else if (arg == "--png") {
      png = value;
    } else if (arg == "--exit") {
      exit_code = std::stoi(value);
    } else if (arg == "--output") {
      regex = value;
    } else if (arg == "--axes") {
      for (const std::string& item : Split(value, ',')) {
        const size_t colon = item.rfind(':');
        if (colon == std::string::npos) return Fail("--axes wants NAME:SIZE, got " + item), 2;
        axes.emplace_back(item.substr(0, colon), std::stoll(item.substr(colon + 1)));
      }
    } else {
      return Fail("unknown flag " + arg), 2;
    }
  }
  std::string command;
  for (++i; i < argc; ++i) command += std::string(command.empty() ? "" : " ") + "'" + argv[i] + "'";
  if (command.empty()) return Fail("no command after --"), 2;

  if (exit_code >= 0) {
    const auto [output, status] = Run(command, /*with_stderr=*/true);
    std::cout << output;
    if (status != exit_code) {
      Fail("the command exited with status " + std::to_string(status) + ", expected " +
           std::to_string(exit_code));
    }
    std::string flat = output;
    for (char& c : flat) c = c == '\n' ? ' ' : c;
    if (!std::regex_search(flat, std::regex(regex, std::regex::extended))) {
      Fail("the output does not match " + regex);
    }
  } else {
    if (b == 0 || e < b || f < 2) return Fail("report mode needs -b, -e >= -b and -f >= 2"), 2;
    if (!png.empty()) std::remove(png.c_str());  // a stale image must not pass
    const auto [output, status] = Run(command, /*with_stderr=*/false);
    std::cout << output;
    if (status != 0) Fail("the command exited with status " + std::to_string(status));
    json report;
    try {
      report = json::parse(output);
    } catch (const json::exception& error) {
      Fail(std::string("output is not JSON: ") + error.what());
      return 1;
    }
    if (report["op"] != op) Fail("op " + report["op"].dump() + ", expected " + op);
    if (report["wrong"] != 0) Fail("total #wrong " + report["wrong"].dump());
    if (async == 1 && report.value("async", false) != true) Fail("the report is not async");
    if (async == 0 && report.contains("async")) Fail("the report has \"async\"");
    const json& got = report["axes"];
    if (got.size() != axes.size()) {
      Fail(std::to_string(got.size()) + " axes, expected " + std::to_string(axes.size()));
    }
    for (size_t a = 0; a < got.size() && a < axes.size(); ++a) {
      if (got[a]["name"] != axes[a].first || got[a]["group_size"] != axes[a].second) {
        Fail("axis " + std::to_string(a) + " is " + got[a]["name"].dump() + " of " +
             got[a]["group_size"].dump() + " ranks, expected " + axes[a].first + " of " +
             std::to_string(axes[a].second));
        continue;
      }
      CheckAxis(got[a], op, axes[a].second, b, e, f);
    }
    if (!png.empty()) CheckPng(png);
  }
  if (failures == 0) std::cerr << "bench_json_check: OK\n";
  return failures == 0 ? 0 : 1;
}
