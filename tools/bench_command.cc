#include "nmesh/tools/bench_command.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <sstream>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/host_collectives.h"
#include "nmesh/config/strategy.h"
#include "nmesh/tools/cli.h"
#include "nmesh/tools/mesh_job.h"
#include "nmesh/tools/plan_command.h"

extern char** environ;

namespace nmesh::tools {
namespace {

using comm::Communicator;
using comm::DataType;
using nlohmann::ordered_json;

constexpr DataType kType = DataType::kFloat32;
constexpr uint64_t kElementBytes = sizeof(float);
constexpr uint64_t kMaxBytes = uint64_t{1} << 40;
// Marks output elements the collective has not written; inputs are never negative.
constexpr float kUnwritten = -1.0f;

struct OpName {
  BenchOp op;
  const char* name;
};
constexpr OpName kOpNames[] = {{BenchOp::kAllReduce, "all_reduce"},
                               {BenchOp::kAllGather, "all_gather"},
                               {BenchOp::kReduceScatter, "reduce_scatter"},
                               {BenchOp::kBroadcast, "broadcast"},
                               {BenchOp::kAllToAll, "all_to_all"}};

bool Reduces(BenchOp op) { return op == BenchOp::kAllReduce || op == BenchOp::kReduceScatter; }
std::string_view RedopName(BenchOp op) { return Reduces(op) ? "sum" : "none"; }

// Input element k of local rank r: a small integer, so that sums over any group are exact in
// float32, and distinct for ranks less than 64 apart.
float InputValue(int64_t r, uint64_t k) {
  return static_cast<float>(((r + 1) * 7 + static_cast<int64_t>(k % 64) * 3) % 64);
}

// Σ_r InputValue(r, k) over a group of n ranks, for each k mod 64 (the inputs have period 64).
std::array<float, 64> SumTable(int64_t n) {
  std::array<float, 64> sums{};
  for (uint64_t k = 0; k < 64; ++k) {
    double sum = 0;
    for (int64_t r = 0; r < n; ++r) sum += InputValue(r, k);
    sums[k] = static_cast<float>(sum);
  }
  return sums;
}

// The buffers of one call for a requested size, in elements (nccl-tests' conventions: see the
// header).
struct CallShape {
  uint64_t count = 0;  // passed to the collective
  uint64_t send = 0;   // elements of the send buffer (0 for broadcast: one buffer)
  uint64_t recv = 0;   // elements of the output buffer
  uint64_t bytes() const { return std::max(send, recv) * kElementBytes; }
};

CallShape ShapeOf(BenchOp op, uint64_t requested_bytes, int64_t n) {
  const uint64_t elements = requested_bytes / kElementBytes;
  const uint64_t ranks = static_cast<uint64_t>(n);
  const uint64_t per_rank = elements / ranks;
  switch (op) {
    case BenchOp::kAllReduce:
      return {elements, elements, elements};
    case BenchOp::kBroadcast:
      return {elements, 0, elements};
    case BenchOp::kAllGather:
      return {per_rank, per_rank, per_rank * ranks};
    case BenchOp::kReduceScatter:
      return {per_rank, per_rank * ranks, per_rank};
    case BenchOp::kAllToAll:
      return {per_rank, per_rank * ranks, per_rank * ranks};
  }
  return {};
}

absl::Status RunOnce(Communicator& comm, BenchOp op, const CallShape& shape, const void* send,
                     void* recv) {
  switch (op) {
    case BenchOp::kAllReduce:
      return comm.AllReduce(send, recv, shape.count, kType, comm::ReduceOp::kSum);
    case BenchOp::kAllGather:
      return comm.AllGather(send, recv, shape.count, kType);
    case BenchOp::kReduceScatter:
      return comm.ReduceScatter(send, recv, shape.count, kType, comm::ReduceOp::kSum);
    case BenchOp::kBroadcast:
      return comm.Broadcast(recv, shape.count, kType, /*root=*/0);
    case BenchOp::kAllToAll:
      return comm.AllToAll(send, recv, shape.count, kType);
  }
  return absl::InternalError("unknown bench op");
}

// Fills this rank's input (`send`, or for broadcast the one buffer, `recv`) and marks the output
// unwritten.
void FillInputs(BenchOp op, const CallShape& shape, int64_t me, std::vector<float>& send,
                std::vector<float>& recv) {
  for (uint64_t k = 0; k < shape.send; ++k) send[k] = InputValue(me, k);
  for (uint64_t k = 0; k < shape.recv; ++k) {
    recv[k] = op == BenchOp::kBroadcast && me == 0 ? InputValue(0, k) : kUnwritten;
  }
}

// Output elements of local rank `me` that differ from what the collective must produce,
// computed from InputValue alone.
int64_t CountWrong(BenchOp op, const CallShape& shape, int64_t me,
                   const std::array<float, 64>& sums, const std::vector<float>& out) {
  const uint64_t p = shape.count;
  int64_t wrong = 0;
  for (uint64_t k = 0; k < shape.recv; ++k) {
    float expected = 0;
    switch (op) {
      case BenchOp::kAllReduce:
        expected = sums[k % 64];
        break;
      case BenchOp::kBroadcast:
        expected = InputValue(0, k);
        break;
      case BenchOp::kAllGather:  // block j is rank j's input
        expected = InputValue(static_cast<int64_t>(k / p), k % p);
        break;
      case BenchOp::kReduceScatter:  // the sum of every rank's block `me`
        expected = sums[(static_cast<uint64_t>(me) * p + k) % 64];
        break;
      case BenchOp::kAllToAll:  // block j comes from rank j's block `me`
        expected = InputValue(static_cast<int64_t>(k / p), static_cast<uint64_t>(me) * p + k % p);
        break;
    }
    if (out[k] != expected) ++wrong;
  }
  return wrong;
}

// The communicator of `kind` on this member rank.
absl::StatusOr<Communicator*> KindComm(const mesh::DeviceMesh& device_mesh,
                                       const mesh::GroupKind& kind) {
  if (kind.mesh == mesh::MeshKind::kDevice) return device_mesh.Comm(kind.names.front());
  std::optional<mesh::DeviceMesh> moe = device_mesh.moe_mesh();
  if (!moe.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: the plan has a moe axis '%s' but the mesh has no moe mesh",
                        device_mesh.name(), kind.names.front()));
  }
  return moe->Comm(kind.names.front());
}

// The sweep of one axis on this rank: rows with this rank's time and #wrong (reduced over the
// world by the caller, row by row, through `reduce_row`).
absl::StatusOr<BenchAxis> RunAxis(
    const mesh::GroupKind& kind, Communicator* comm, Communicator& world, const BenchConfig& config,
    const std::function<absl::Status(BenchRow&, size_t row, size_t rows)>& reduce_row) {
  BenchAxis axis;
  axis.name = absl::StrJoin(kind.names, "/");
  axis.names = kind.names;
  axis.group_size = kind.group_size;
  axis.group_count = kind.group_count;
  const int64_t n = kind.group_size;
  std::vector<CallShape> shapes;
  uint64_t max_send = 0, max_recv = 0;
  for (uint64_t requested : SweepSizes(config)) {
    const CallShape shape = ShapeOf(config.op, requested, n);
    if (shape.count == 0) continue;
    shapes.push_back(shape);
    max_send = std::max(max_send, shape.send);
    max_recv = std::max(max_recv, shape.recv);
  }
  // Buffers in the communicator's memory, sized once for the largest call, and host mirrors.
  comm::Buffer send_buffer, recv_buffer;
  std::vector<float> send_host, recv_host;
  std::array<float, 64> sums{};
  int64_t me = 0;
  if (comm != nullptr) {
    me = comm->rank();
    sums = SumTable(n);
    // Linux overcommits: a sweep larger than the machine would be killed while filling its
    // buffers, so refuse it here instead.
    const uint64_t copies = comm->memory_kind() == comm::MemoryKind::kHost ? 2 : 1;
    const uint64_t host_bytes = copies * (max_send + max_recv) * kElementBytes;
    const uint64_t physical = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                              static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    if (host_bytes > physical) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "axis '%s': the sweep needs %d bytes of host memory per rank (the buffers and their "
          "host copies for -e %d), more than this machine's %d; lower -e",
          axis.name, host_bytes, config.max_bytes, physical));
    }
    NMESH_ASSIGN_OR_RETURN(send_buffer, comm->AllocateBuffer(max_send * kElementBytes));
    NMESH_ASSIGN_OR_RETURN(recv_buffer, comm->AllocateBuffer(max_recv * kElementBytes));
    try {
      send_host.resize(max_send);
      recv_host.resize(max_recv);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("axis '%s': cannot allocate %d bytes of host memory for the buffers",
                          axis.name, (max_send + max_recv) * kElementBytes));
    }
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    const CallShape& shape = shapes[i];
    BenchRow row;
    row.size = shape.bytes();
    row.count = shape.count;
    if (comm != nullptr) {
      FillInputs(config.op, shape, me, send_host, recv_host);
      NMESH_RETURN_IF_ERROR(
          comm->CopyFromHost(send_buffer.data(), send_host.data(), shape.send * kElementBytes));
      NMESH_RETURN_IF_ERROR(
          comm->CopyFromHost(recv_buffer.data(), recv_host.data(), shape.recv * kElementBytes));
    }
    // Every group of the axis starts together, after the previous size has finished everywhere.
    NMESH_RETURN_IF_ERROR(world.Barrier());
    if (comm != nullptr) {
      for (int64_t w = 0; w < config.warmup; ++w) {
        NMESH_RETURN_IF_ERROR(
            RunOnce(*comm, config.op, shape, send_buffer.data(), recv_buffer.data()));
      }
      const auto start = std::chrono::steady_clock::now();
      for (int64_t it = 0; it < config.iters; ++it) {
        NMESH_RETURN_IF_ERROR(
            RunOnce(*comm, config.op, shape, send_buffer.data(), recv_buffer.data()));
      }
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      row.time_us = elapsed.count() * 1e6 / static_cast<double>(config.iters);
      NMESH_RETURN_IF_ERROR(
          comm->CopyToHost(recv_host.data(), recv_buffer.data(), shape.recv * kElementBytes));
      row.wrong = CountWrong(config.op, shape, me, sums, recv_host);
    }
    NMESH_RETURN_IF_ERROR(reduce_row(row, i, shapes.size()));
    axis.rows.push_back(row);
  }
  return axis;
}

std::string FormatBytes(uint64_t bytes) {
  constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {uint64_t{1} << 40, "T"}, {uint64_t{1} << 30, "G"}, {uint64_t{1} << 20, "M"}, {1024, "K"}};
  for (const auto& [unit, suffix] : kUnits) {
    if (bytes >= unit && bytes % unit == 0) return absl::StrFormat("%d%s", bytes / unit, suffix);
  }
  return absl::StrFormat("%d", bytes);
}

// A gnuplot string literal: single-quoted, quotes doubled.
std::string GnuplotQuote(std::string_view text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') quoted += '\'';
    quoted += c;
  }
  return quoted + "'";
}

// Runs `program script` with stdout and stderr into `log`; returns its exit status.
absl::StatusOr<int> RunProgram(const std::string& program, const std::string& script,
                               const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> argv = {const_cast<char*>(program.c_str()), const_cast<char*>(script.c_str()),
                             nullptr};
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot run '%s': %s (install gnuplot: scripts/install_deps.sh, or set "
                        "NMESH_GNUPLOT)",
                        program, std::strerror(rc)));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(
          absl::StrFormat("waiting for '%s' failed: %s", program, std::strerror(errno)));
    }
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Sizes are whole bytes with an optional K/M/G suffix (case-insensitive).
absl::StatusOr<uint64_t> ParseSizeFlag(std::string_view flag, const std::string& text) {
  absl::StatusOr<uint64_t> bytes = ParseByteSize(text);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %s", flag, bytes.status().message()));
  }
  if (*bytes == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be at least 1 byte, got '%s'", flag, text));
  }
  return *bytes;
}

}  // namespace

std::string_view BenchOpName(BenchOp op) {
  for (const OpName& entry : kOpNames) {
    if (entry.op == op) return entry.name;
  }
  return "unknown";
}

absl::StatusOr<BenchOp> ParseBenchOp(std::string_view name) {
  std::vector<std::string> names;
  for (const OpName& entry : kOpNames) {
    if (name == entry.name) return entry.op;
    names.push_back(entry.name);
  }
  return absl::InvalidArgumentError(absl::StrFormat("--op: unknown collective '%s'; expected %s",
                                                    name, absl::StrJoin(names, ", ")));
}

double BusBandwidthFactor(BenchOp op, int64_t n) {
  const double ranks = static_cast<double>(n);
  switch (op) {
    case BenchOp::kAllReduce:
      return 2.0 * (ranks - 1) / ranks;
    case BenchOp::kAllGather:
    case BenchOp::kReduceScatter:
    case BenchOp::kAllToAll:
      return (ranks - 1) / ranks;
    case BenchOp::kBroadcast:
      return 1.0;
  }
  return 1.0;
}

absl::StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid size '%s' (%s; expected bytes with an optional K, M or G suffix, e.g. 64K)", text,
        why));
  };
  std::string digits(text);
  uint64_t unit = 1;
  if (!digits.empty()) {
    switch (absl::ascii_toupper(static_cast<unsigned char>(digits.back()))) {
      case 'K':
        unit = uint64_t{1} << 10;
        break;
      case 'M':
        unit = uint64_t{1} << 20;
        break;
      case 'G':
        unit = uint64_t{1} << 30;
        break;
      default:
        break;
    }
    if (unit != 1) digits.pop_back();
  }
  if (digits.empty() || digits.find_first_not_of("0123456789.") != std::string::npos ||
      std::count(digits.begin(), digits.end(), '.') > 1 || digits == ".") {
    return bad("not a number");
  }
  const double value = std::strtod(digits.c_str(), nullptr) * static_cast<double>(unit);
  if (value > static_cast<double>(kMaxBytes)) return bad("more than 1 TiB");
  if (value != std::floor(value)) return bad("not a whole number of bytes");
  return static_cast<uint64_t>(value);
}

std::vector<uint64_t> SweepSizes(const BenchConfig& config) {
  std::vector<uint64_t> sizes;
  for (uint64_t size = config.min_bytes; size <= config.max_bytes;) {
    sizes.push_back(size);
    const uint64_t factor = static_cast<uint64_t>(config.factor);
    if (size > config.max_bytes / factor) break;  // the next size would pass max (or overflow)
    size *= factor;
  }
  return sizes;
}

absl::StatusOr<std::vector<mesh::GroupKind>> SelectBenchAxes(const mesh::MeshPlan& plan,
                                                             absl::Span<const std::string> axes) {
  const std::vector<mesh::GroupKind> kinds = mesh::DistinctGroupKinds(plan);
  if (axes.empty()) {
    std::vector<mesh::GroupKind> selected;
    for (const mesh::GroupKind& kind : kinds) {
      if (kind.group_size > 1) selected.push_back(kind);
    }
    return selected;
  }
  std::vector<bool> chosen(kinds.size(), false);
  for (const std::string& name : axes) {
    bool found = false;
    for (size_t k = 0; k < kinds.size() && !found; ++k) {
      const std::vector<std::string>& names = kinds[k].names;
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        chosen[k] = true;
        found = true;
      }
    }
    if (!found) {
      std::vector<std::string> all;
      for (const mesh::GroupKind& kind : kinds) {
        all.insert(all.end(), kind.names.begin(), kind.names.end());
      }
      return absl::InvalidArgumentError(absl::StrFormat(
          "--axes: unknown axis '%s'; this mesh has %s", name, absl::StrJoin(all, ", ")));
    }
  }
  std::vector<mesh::GroupKind> selected;
  for (size_t k = 0; k < kinds.size(); ++k) {
    if (chosen[k]) selected.push_back(kinds[k]);
  }
  return selected;
}

double BenchAxis::AverageBusBandwidth() const {
  if (rows.empty()) return 0;
  double sum = 0;
  for (const BenchRow& row : rows) sum += row.busbw;
  return sum / static_cast<double>(rows.size());
}

int64_t BenchReport::TotalWrong() const {
  int64_t wrong = 0;
  for (const BenchAxis& axis : axes) {
    for (const BenchRow& row : axis.rows) wrong += row.wrong;
  }
  return wrong;
}

absl::StatusOr<BenchReport> RunBench(const mesh::MeshPlan& plan, const mesh::DeviceMesh& mesh,
                                     Communicator& world, const BenchConfig& config,
                                     std::ostream* progress) {
  if (config.factor < 2 || config.iters < 1 || config.warmup < 0 || config.min_bytes < 1 ||
      config.min_bytes > config.max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad bench config: -b %d -e %d -f %d -n %d -w %d", config.min_bytes,
                        config.max_bytes, config.factor, config.iters, config.warmup));
  }
  NMESH_ASSIGN_OR_RETURN(std::vector<mesh::GroupKind> kinds, SelectBenchAxes(plan, config.axes));
  BenchReport report;
  report.op = config.op;
  report.backend = std::string(world.backend());
  report.world_size = world.size();
  const bool member = mesh.is_member();
  const bool speaker = progress != nullptr && world.rank() == 0;
  for (const mesh::GroupKind& kind : kinds) {
    Communicator* comm = nullptr;
    if (member) {
      NMESH_ASSIGN_OR_RETURN(comm, KindComm(mesh, kind));
    }
    const double factor = BusBandwidthFactor(config.op, kind.group_size);
    const std::string name = absl::StrJoin(kind.names, "/");
    auto reduce_row = [&](BenchRow& row, size_t i, size_t rows) -> absl::Status {
      NMESH_RETURN_IF_ERROR(comm::HostAllReduce<double>(world, absl::MakeConstSpan(&row.time_us, 1),
                                                        absl::MakeSpan(&row.time_us, 1),
                                                        comm::ReduceOp::kMax));
      NMESH_RETURN_IF_ERROR(comm::HostAllReduce<int64_t>(world, absl::MakeConstSpan(&row.wrong, 1),
                                                         absl::MakeSpan(&row.wrong, 1),
                                                         comm::ReduceOp::kSum));
      row.algbw = row.time_us > 0 ? static_cast<double>(row.size) / (row.time_us * 1e3) : 0;
      row.busbw = row.algbw * factor;
      if (speaker) {
        *progress << absl::StrFormat("nmesh bench: %s %s [%d/%d] %s B: %.2f us, busbw %.3f GB/s\n",
                                     name, BenchOpName(config.op), i + 1, rows,
                                     FormatBytes(row.size), row.time_us, row.busbw)
                  << std::flush;
      }
      return absl::OkStatus();
    };
    NMESH_ASSIGN_OR_RETURN(BenchAxis axis, RunAxis(kind, comm, world, config, reduce_row));
    report.axes.push_back(std::move(axis));
  }
  return report;
}

void WriteBenchText(const BenchReport& report, const BenchConfig& config,
                    const mesh::MeshPlan& plan, std::ostream& out) {
  const bool reduces = Reduces(report.op);
  out << absl::StrFormat("# nmesh bench: %s, float32, %s%s, backend %s, %d ranks\n",
                         BenchOpName(report.op), reduces ? "sum" : "no reduction",
                         report.op == BenchOp::kBroadcast ? ", root 0 of each group" : "",
                         report.backend, report.world_size);
  out << absl::StrFormat("# sweep: -b %s -e %s -f %d, %d warm-up and %d timed calls per size\n",
                         FormatBytes(config.min_bytes), FormatBytes(config.max_bytes),
                         config.factor, config.warmup, config.iters);
  out << absl::StrFormat("# mesh: %s %s\n", config::StrategyName(plan.strategy()),
                         plan.device_mesh().DebugString());
  out << "# time: the slowest rank's average; algbw = size / time; busbw = algbw * factor\n";
  for (const BenchAxis& axis : report.axes) {
    out << absl::StrFormat("#\n# axis %s: %d group(s) of %d rank(s), busbw factor %.4f\n",
                           axis.name, axis.group_count, axis.group_size,
                           BusBandwidthFactor(report.op, axis.group_size));
    out << absl::StrFormat("# %12s %12s %8s %6s %10s %9s %9s %7s\n", "size", "count", "type",
                           "redop", "time", "algbw", "busbw", "#wrong");
    out << absl::StrFormat("# %12s %12s %8s %6s %10s %9s %9s %7s\n", "(B)", "(elements)", "", "",
                           "(us)", "(GB/s)", "(GB/s)", "");
    for (const BenchRow& row : axis.rows) {
      out << absl::StrFormat("  %12d %12d %8s %6s %10.2f %9.3f %9.3f %7d\n", row.size, row.count,
                             comm::DataTypeName(kType), RedopName(report.op), row.time_us,
                             row.algbw, row.busbw, row.wrong);
    }
    out << absl::StrFormat("# Avg bus bandwidth (%s): %.3f GB/s\n", axis.name,
                           axis.AverageBusBandwidth());
  }
  const int64_t wrong = report.TotalWrong();
  out << absl::StrFormat("#\n# #wrong: %d %s\n", wrong, wrong == 0 ? "OK" : "FAILED");
}

ordered_json BenchJson(const BenchReport& report, const BenchConfig& config,
                       const mesh::MeshPlan& plan) {
  ordered_json axes = ordered_json::array();
  for (const BenchAxis& axis : report.axes) {
    ordered_json rows = ordered_json::array();
    for (const BenchRow& row : axis.rows) {
      rows.push_back({{"size", row.size},
                      {"count", row.count},
                      {"type", std::string(comm::DataTypeName(kType))},
                      {"redop", std::string(RedopName(report.op))},
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
  return ordered_json{
      {"op", std::string(BenchOpName(report.op))},
      {"type", std::string(comm::DataTypeName(kType))},
      {"redop", std::string(RedopName(report.op))},
      {"root", report.op == BenchOp::kBroadcast ? ordered_json(0) : ordered_json(nullptr)},
      {"backend", report.backend},
      {"world_size", report.world_size},
      {"sweep",
       {{"min_bytes", config.min_bytes},
        {"max_bytes", config.max_bytes},
        {"factor", config.factor},
        {"iters", config.iters},
        {"warmup", config.warmup}}},
      {"mesh", PlanSummaryJson(plan)},
      {"axes", std::move(axes)},
      {"wrong", report.TotalWrong()}};
}

absl::Status PlotBench(const BenchReport& report, const std::string& path) {
  const char* env = std::getenv("NMESH_GNUPLOT");
  const std::string program = env != nullptr && *env != '\0' ? env : "gnuplot";
  const char* tmp = std::getenv("TMPDIR");
  std::string dir_template =
      absl::StrFormat("%s/nmesh-plot-XXXXXX", tmp != nullptr && *tmp != '\0' ? tmp : "/tmp");
  if (mkdtemp(dir_template.data()) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrFormat("--plot: cannot create a temporary directory '%s': %s", dir_template,
                        std::strerror(errno)));
  }
  const std::filesystem::path dir(dir_template);
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } cleanup{dir};

  // One data block per axis (gnuplot's "index"), separated by two blank lines.
  const std::string data = (dir / "busbw.dat").string();
  {
    std::ofstream file(data);
    for (const BenchAxis& axis : report.axes) {
      file << "# " << axis.name << "\n";
      for (const BenchRow& row : axis.rows) {
        file << absl::StrFormat("%d %.9g\n", row.size, row.busbw);
      }
      file << "\n\n";
    }
  }
  std::vector<std::string> plots;
  for (size_t i = 0; i < report.axes.size(); ++i) {
    const BenchAxis& axis = report.axes[i];
    if (axis.rows.empty()) continue;
    plots.push_back(absl::StrFormat(
        "%s index %d using 1:2 with linespoints lw 2 pt 7 title %s", GnuplotQuote(data), i,
        GnuplotQuote(absl::StrFormat("%s (%d ranks)", axis.name, axis.group_size))));
  }
  if (plots.empty()) {
    return absl::FailedPreconditionError("--plot: no rows to plot (every size was too small)");
  }
  const std::string script = (dir / "plot.gp").string();
  {
    std::ofstream file(script);
    file << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
         << "  set terminal pngcairo size 900,540 noenhanced font ',10'\n"
         << "} else {\n"
         << "  set terminal png size 900,540 noenhanced\n"
         << "}\n"
         << "set output " << GnuplotQuote(path) << "\n"
         << "set title "
         << GnuplotQuote(absl::StrFormat("nmesh bench: %s (float32), backend %s, %d ranks",
                                         BenchOpName(report.op), report.backend, report.world_size))
         << "\n"
         << "set xlabel 'message size (bytes)'\n"
         << "set ylabel 'bus bandwidth (GB/s)'\n"
         << "set logscale x 2\n"
         << "set format x '%.0b%B'\n"
         << "set yrange [0:*]\n"
         << "set grid\n"
         << "set key left top\n"
         << "plot " << absl::StrJoin(plots, ", \\\n     ") << "\n"
         << "unset output\n";
  }
  const std::string log = (dir / "gnuplot.log").string();
  NMESH_ASSIGN_OR_RETURN(int exit_code, RunProgram(program, script, log));
  if (exit_code != 0) {
    std::string output = ReadFile(log);
    if (output.size() > 2000) output = output.substr(0, 2000) + "...";
    return absl::FailedPreconditionError(
        absl::StrFormat("--plot: %s exited with status %d while drawing '%s': %s", program,
                        exit_code, path, output));
  }
  std::error_code error;
  const auto bytes = std::filesystem::file_size(path, error);
  if (error || bytes == 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("--plot: %s wrote no image to '%s'", program, path));
  }
  return absl::OkStatus();
}

CLI::App* AddBenchCommand(CLI::App& app, BenchOptions& options) {
  CLI::App* bench = app.add_subcommand(
      "bench",
      "Measure a collective per mesh axis, nccl-tests style, and check its results (mpirun -np N)");
  AddMeshOptions(*bench, options.mesh);
  bench
      ->add_option("--axes", options.axes,
                   "Comma-separated axes or groups to measure (default: every kind of group with "
                   "more than one rank)")
      ->type_name("A,B,...");
  std::vector<std::string> ops;
  for (const OpName& entry : kOpNames) ops.push_back(entry.name);
  bench->add_option("--op", options.op, "Collective: " + absl::StrJoin(ops, ", "))
      ->check(CLI::IsMember(ops));
  bench->add_option("-b,--minbytes", options.min_bytes, "Smallest size in bytes (K/M/G suffixes)")
      ->type_name("SIZE");
  bench->add_option("-e,--maxbytes", options.max_bytes, "Largest size in bytes (default 32M)")
      ->type_name("SIZE");
  AddInt64Option(*bench, "-f,--stepfactor", options.factor,
                 "Multiply the size by this between rows (default 2)");
  AddInt64Option(*bench, "-n,--iters", options.iters, "Timed calls per size (default 20)");
  AddInt64Option(*bench, "-w,--warmup_iters", options.warmup, "Warm-up calls per size (default 5)");
  bench
      ->add_option("--backend", options.backend,
                   "auto (NCCL when every rank has a GPU, else MPI), mpi or nccl")
      ->check(CLI::IsMember({"auto", "mpi", "nccl"}));
  bench->add_option("--format", options.format, "Output format: text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
  bench
      ->add_option_function<std::string>(
          "--plot", [&options](const std::string& v) { options.plot = v; },
          "Draw busbw against size into this PNG (rank 0, with gnuplot)")
      ->type_name("FILE.png");
  bench->add_flag("--progress", options.progress,
                  "One line per axis and size on stderr (default: only when stderr is a terminal)");
  bench
      ->add_option("--timeout-s", options.timeout_s,
                   "Timeout of every communicator, in seconds (default none: the recipe's "
                   "dist_env.timeout_minutes is ignored)")
      ->type_name("T");
  bench
      ->add_option("--flight-recorder", options.flight_recorder,
                   "On a timeout, write each reporting rank's flight records as JSON into DIR")
      ->type_name("DIR");
  return bench;
}

absl::StatusOr<BenchConfig> BenchConfigFromOptions(const BenchOptions& options) {
  BenchConfig config;
  NMESH_ASSIGN_OR_RETURN(config.op, ParseBenchOp(options.op));
  if (!options.axes.empty()) {
    const std::vector<std::string> names = absl::StrSplit(options.axes, ',');
    for (const std::string& name : names) {
      if (name.empty()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("--axes: empty axis name in '%s'", options.axes));
      }
      config.axes.emplace_back(name);
    }
  }
  NMESH_ASSIGN_OR_RETURN(config.min_bytes, ParseSizeFlag("-b (--minbytes)", options.min_bytes));
  NMESH_ASSIGN_OR_RETURN(config.max_bytes, ParseSizeFlag("-e (--maxbytes)", options.max_bytes));
  if (config.min_bytes > config.max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("-b (--minbytes) %s is larger than -e (--maxbytes) %s", options.min_bytes,
                        options.max_bytes));
  }
  config.factor = options.factor.value_or(config.factor);
  if (config.factor < 2) {
    return absl::InvalidArgumentError(
        absl::StrFormat("-f (--stepfactor) must be at least 2, got %d", config.factor));
  }
  config.iters = options.iters.value_or(config.iters);
  // A bound keeps a typo (or INT64_MAX) from running for ever; nccl-tests runs 20.
  constexpr int64_t kMaxIters = 1000000;
  if (config.iters < 1 || config.iters > kMaxIters) {
    return absl::InvalidArgumentError(
        absl::StrFormat("-n (--iters) must be between 1 and %d, got %d", kMaxIters, config.iters));
  }
  config.warmup = options.warmup.value_or(config.warmup);
  if (config.warmup < 0 || config.warmup > kMaxIters) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "-w (--warmup_iters) must be between 0 and %d, got %d", kMaxIters, config.warmup));
  }
  if (options.plot.has_value()) {
    const std::string& plot = *options.plot;
    if (plot.size() <= 4 || absl::AsciiStrToLower(plot.substr(plot.size() - 4)) != ".png") {
      return absl::InvalidArgumentError(
          absl::StrFormat("--plot: the file name must end in .png, got '%s'", plot));
    }
  }
  return config;
}

namespace {

// Rank 0 checks that it can write the plot before the sweep, so that a bad path fails in seconds
// rather than after the whole benchmark. The file is left as it was.
absl::Status CheckPlotWritable(const std::string& path) {
  std::error_code error;
  const bool existed = std::filesystem::exists(path, error);
  std::FILE* file = std::fopen(path.c_str(), "ab");
  if (file == nullptr) {
    // Bad input, like a bad flag: a usage error (exit 2), found before the sweep.
    return absl::InvalidArgumentError(
        absl::StrFormat("--plot: cannot write '%s': %s", path, std::strerror(errno)));
  }
  std::fclose(file);
  if (!existed) std::filesystem::remove(path, error);
  return absl::OkStatus();
}

}  // namespace

int RunBenchCommand(const BenchOptions& options, std::ostream& out, std::ostream& err) {
  const bool json = options.format == "json";
  // Flags first, before MPI: every rank finds the same error.
  absl::StatusOr<BenchConfig> config = BenchConfigFromOptions(options);
  if (!config.ok()) return JobReporter(LauncherRank(), json, out, err).Fail(config.status());
  absl::StatusOr<std::optional<absl::Duration>> timeout = TimeoutFromFlag(options.timeout_s);
  if (!timeout.ok()) return JobReporter(LauncherRank(), json, out, err).Fail(timeout.status());

  // No communicator timeout unless --timeout-s asks for one, whatever the recipe says.
  JobReporter reporter(LauncherRank(), json, out, err);
  ReportTimeouts(options.flight_recorder, reporter);
  absl::StatusOr<job::BackendChoice> backend_choice = job::ParseBackendChoice(options.backend);
  if (!backend_choice.ok()) return reporter.Fail(backend_choice.status());
  std::variant<CliJob, int> started = StartJob({.mesh = options.mesh,
                                                .backend = *backend_choice,
                                                .timeout = *timeout,
                                                .recipe_timeout = false,
                                                .all_sections = false,
                                                .build_contexts = false},
                                               reporter);
  if (const int* code = std::get_if<int>(&started)) return *code;
  Job& job = *std::get<CliJob>(started).job;
  const JobMesh& target = job.meshes().front();
  if (absl::Status axes = SelectBenchAxes(*target.plan, config->axes).status(); !axes.ok()) {
    return reporter.Fail(axes);
  }
  absl::Status writable;
  if (options.plot.has_value() && job.rank() == 0) writable = CheckPlotWritable(*options.plot);
  if (absl::Status agreed = comm::AgreeOnStatus(job.mpi_world(), writable); !agreed.ok()) {
    return reporter.Fail(agreed);
  }
  reporter.Note(
      absl::StrFormat("bench: backend %s (%s)", job.backend().name, job.backend().reason));

  const bool progress = options.progress || (&err == &std::cerr && isatty(STDERR_FILENO) == 1);
  absl::StatusOr<BenchReport> report = RunBench(*target.plan, *target.mesh, *job.backend().world,
                                                *config, progress ? &err : nullptr);
  if (!report.ok()) reporter.Abort(report.status());

  absl::Status plotted;
  if (job.rank() == 0) {
    if (options.plot.has_value()) plotted = PlotBench(*report, *options.plot);
    if (json) {
      ordered_json object = BenchJson(*report, *config, *target.plan);
      if (options.plot.has_value()) {
        object["plot"] = plotted.ok() ? ordered_json{{"path", *options.plot}}
                                      : ordered_json{{"path", *options.plot},
                                                     {"error", std::string(plotted.message())}};
      }
      out << DumpJson(object) << "\n";
    } else {
      WriteBenchText(*report, *config, *target.plan, out);
      if (options.plot.has_value() && plotted.ok()) out << "# plot: " << *options.plot << "\n";
    }
    out.flush();
  }
  // Every rank exits with the same code.
  if (absl::Status agreed = comm::AgreeOnStatus(job.mpi_world(), plotted); !agreed.ok()) {
    if (job.rank() == 0) err << absl::StrFormat("nmesh: error: %s\n", agreed.message());
    return kExitRuntimeFailure;
  }
  if (const int64_t wrong = report->TotalWrong(); wrong != 0) {
    reporter.Note(absl::StrFormat(
        "error: %d output element(s) differ from the expected values (see the #wrong column)",
        wrong));
    return kExitRuntimeFailure;
  }
  return kExitOk;
}

}  // namespace nmesh::tools
