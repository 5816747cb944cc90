#include "nmesh/tools/bench_format.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/config/strategy.h"
#include "nmesh/tools/plan_command.h"

namespace nmesh::tools {

using nlohmann::ordered_json;
using perf::BenchAxis;
using perf::BenchOp;
using perf::BenchRow;

std::string FormatExactSize(uint64_t bytes) {
  constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {uint64_t{1} << 40, "T"}, {uint64_t{1} << 30, "G"}, {uint64_t{1} << 20, "M"}, {1024, "K"}};
  for (const auto& [unit, suffix] : kUnits) {
    if (bytes >= unit && bytes % unit == 0) return absl::StrFormat("%d%s", bytes / unit, suffix);
  }
  return absl::StrFormat("%d", bytes);
}

std::string BenchProgressLine(BenchOp op, const BenchAxis& axis, const BenchRow& row, size_t index,
                              size_t rows) {
  return absl::StrFormat("nmesh bench: %s %s [%d/%d] %s B: %.2f us, busbw %.3f GB/s\n", axis.name,
                         perf::BenchOpName(op), index + 1, rows, FormatExactSize(row.size),
                         row.time_us, row.busbw);
}

void WriteBenchText(const perf::BenchReport& report, const perf::BenchConfig& config,
                    const mesh::MeshPlan& plan, std::ostream& out) {
  const bool reduces = perf::Reduces(report.op);
  out << absl::StrFormat("# nmesh bench: %s, float32, %s%s, backend %s, %d ranks%s\n",
                         perf::BenchOpName(report.op), reduces ? "sum" : "no reduction",
                         report.op == BenchOp::kBroadcast ? ", root 0 of each group" : "",
                         report.backend, report.world_size,
                         report.async ? ", async (each call's handle waited)" : "");
  out << absl::StrFormat("# sweep: -b %s -e %s -f %d, %d warm-up and %d timed calls per size\n",
                         FormatExactSize(config.min_bytes), FormatExactSize(config.max_bytes),
                         config.factor, config.warmup, config.iters);
  out << absl::StrFormat("# mesh: %s %s\n", config::StrategyName(plan.strategy()),
                         plan.device_mesh().DebugString());
  out << "# time: the slowest rank's average; algbw = size / time; busbw = algbw * factor\n";
  if (report.op == BenchOp::kAllToAllV) {
    out << "# all_to_all_v: local rank s sends unit * ((s + d) mod n) elements to local rank d; "
           "count = the elements each rank sends\n";
  }
  for (const BenchAxis& axis : report.axes) {
    out << absl::StrFormat("#\n# axis %s: %d group(s) of %d rank(s), busbw factor %.4f\n",
                           axis.name, axis.group_count, axis.group_size,
                           perf::BusBandwidthFactor(report.op, axis.group_size));
    out << absl::StrFormat("# %12s %12s %8s %6s %10s %9s %9s %7s\n", "size", "count", "type",
                           "redop", "time", "algbw", "busbw", "#wrong");
    out << absl::StrFormat("# %12s %12s %8s %6s %10s %9s %9s %7s\n", "(B)", "(elements)", "", "",
                           "(us)", "(GB/s)", "(GB/s)", "");
    for (const BenchRow& row : axis.rows) {
      out << absl::StrFormat("  %12d %12d %8s %6s %10.2f %9.3f %9.3f %7d\n", row.size, row.count,
                             comm::DataTypeName(perf::kBenchType), perf::RedopName(report.op),
                             row.time_us, row.algbw, row.busbw, row.wrong);
    }
    out << absl::StrFormat("# Avg bus bandwidth (%s): %.3f GB/s\n", axis.name,
                           axis.AverageBusBandwidth());
  }
  const int64_t wrong = report.TotalWrong();
  out << absl::StrFormat("#\n# #wrong: %d %s\n", wrong, wrong == 0 ? "OK" : "FAILED");
}

ordered_json BenchJson(const perf::BenchReport& report, const perf::BenchConfig& config,
                       const mesh::MeshPlan& plan) {
  const std::string type(comm::DataTypeName(perf::kBenchType));
  const std::string redop(perf::RedopName(report.op));
  ordered_json axes = ordered_json::array();
  for (const BenchAxis& axis : report.axes) {
    ordered_json rows = ordered_json::array();
    for (const BenchRow& row : axis.rows) {
      rows.push_back({{"size", row.size},
                      {"count", row.count},
                      {"type", type},
                      {"redop", redop},
                      {"time_us", row.time_us},
                      {"algbw", row.algbw},
                      {"busbw", row.busbw},
                      {"wrong", row.wrong}});
    }
    axes.push_back({{"name", axis.name},
                    {"names", axis.names},
                    {"group_size", axis.group_size},
                    {"group_count", axis.group_count},
                    {"avg_busbw", axis.AverageBusBandwidth()},
                    {"rows", std::move(rows)}});
  }
  ordered_json object = {
      {"op", std::string(perf::BenchOpName(report.op))},
      {"type", type},
      {"redop", redop},
      {"root", report.op == BenchOp::kBroadcast ? ordered_json(0) : ordered_json(nullptr)}};
  if (report.async) object["async"] = true;
  object["backend"] = report.backend;
  object["world_size"] = report.world_size;
  object["sweep"] = {{"min_bytes", config.min_bytes},
                     {"max_bytes", config.max_bytes},
                     {"factor", config.factor},
                     {"iters", config.iters},
                     {"warmup", config.warmup}};
  object["mesh"] = PlanSummaryJson(plan);
  object["axes"] = std::move(axes);
  object["wrong"] = report.TotalWrong();
  return object;
}

}  // namespace nmesh::tools
