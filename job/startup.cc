#include "nmesh/job/startup.h"

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/fingerprint.h"
#include "nmesh/base/version.h"
#include "nmesh/comm/mpi/rendezvous.h"
#include "nmesh/comm/store_exchange.h"
#include "nmesh/config/strategy.h"

namespace nmesh::job {
namespace {

// Room for each text field, so that a record stays within comm::mpi::kMaxRecordBytes.
constexpr size_t kCommandBytes = 160;
constexpr size_t kErrorBytes = 400;
constexpr size_t kMeshWordsBytes = 280;

// One line of text: newlines would break the record's format.
std::string OneLine(std::string_view text, size_t max_bytes) {
  std::string line(text.substr(0, std::min(text.size(), max_bytes)));
  std::replace(line.begin(), line.end(), '\n', ' ');
  if (text.size() > max_bytes) line.replace(line.size() - 3, 3, "...");
  return line;
}

// A mesh in words, e.g. "distributed: fsdp2 (dp_shard=2, tp=4) of world 8, moe (ep_shard=1,
// ep=4)", and every detail that decides its splits in `hash`.
std::string DescribeMesh(const mesh::MeshPlan& plan, std::string_view name, Fingerprint& hash) {
  const mesh::Layout& layout = plan.device_mesh();
  std::string words =
      absl::StrFormat("%s: %s %s of world %d", name, config::StrategyName(plan.strategy()),
                      layout.DebugString(), plan.world_size());
  hash.Add(words);
  for (const mesh::FlattenedGroup& group : plan.flattened()) {
    hash.Add(group.name);
    hash.Add(static_cast<int64_t>(group.axes.bits()));
  }
  hash.Add(plan.has_explicit_ranks() ? 1 : 0);
  if (plan.has_explicit_ranks()) {
    for (int64_t i = 0; i < layout.size(); ++i) hash.Add(layout.RankAtPosition(i));
    absl::StrAppend(&words, " on ranks [", layout.RankAtPosition(0),
                    layout.size() > 1 ? ", ...]" : "]");
  }
  if (plan.moe_mesh().has_value()) {
    const mesh::MoeMesh& moe = *plan.moe_mesh();
    absl::StrAppend(&words, absl::StrFormat(", moe (ep_shard=%d, ep=%d)", moe.ep_shard, moe.ep));
    hash.Add(moe.ep_shard);
    hash.Add(moe.ep);
    hash.Add(moe.stages);
  }
  return words;
}

constexpr absl::string_view kFields[] = {"version", "command",   "command_hash", "backend",
                                         "timeout", "code",      "error",        "meshes",
                                         "world",   "mesh_hash", "mesh_words"};

constexpr char kAgreedPayload[] = "type.nmesh/job.agreed";

}  // namespace

bool IsAgreed(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kAgreedPayload).has_value();
}

absl::Status MarkAgreed(absl::Status status) {
  if (!status.ok()) status.SetPayload(kAgreedPayload, absl::Cord("1"));
  return status;
}

std::string StartupRecord::Serialize() const {
  return absl::StrCat("version=", version, "\ncommand=", command, "\ncommand_hash=", command_hash,
                      "\nbackend=", backend, "\ntimeout=", timeout, "\ncode=", code,
                      "\nerror=", error, "\nmeshes=", meshes, "\nworld=", world,
                      "\nmesh_hash=", mesh_hash, "\nmesh_words=", mesh_words, "\n");
}

std::optional<StartupRecord> StartupRecord::Parse(std::string_view text) {
  StartupRecord record;
  size_t seen = 0;
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(text.data(), text.size()), '\n', absl::SkipEmpty())) {
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) return std::nullopt;
    const absl::string_view key = line.substr(0, eq);
    const absl::string_view value = line.substr(eq + 1);
    if (std::find(std::begin(kFields), std::end(kFields), key) == std::end(kFields)) {
      return std::nullopt;
    }
    ++seen;
    bool ok = true;
    if (key == "version") record.version = std::string(value);
    if (key == "command") record.command = std::string(value);
    if (key == "command_hash") ok = absl::SimpleAtoi(value, &record.command_hash);
    if (key == "backend") record.backend = std::string(value);
    if (key == "timeout") record.timeout = std::string(value);
    if (key == "code") ok = absl::SimpleAtoi(value, &record.code);
    if (key == "error") record.error = std::string(value);
    if (key == "meshes") ok = absl::SimpleAtoi(value, &record.meshes);
    if (key == "world") record.world = std::string(value);
    if (key == "mesh_hash") ok = absl::SimpleAtoi(value, &record.mesh_hash);
    if (key == "mesh_words") record.mesh_words = std::string(value);
    if (!ok) return std::nullopt;
  }
  if (seen != std::size(kFields)) return std::nullopt;
  return record;
}

StartupRecord MakeStartupRecord(std::string_view command, std::string_view backend,
                                std::optional<absl::Duration> timeout, const absl::Status& planned,
                                absl::Span<const mesh::MeshPlan* const> plans,
                                absl::Span<const std::string> mesh_names) {
  StartupRecord record;
  record.version = VersionString();
  record.command = OneLine(command, kCommandBytes);
  Fingerprint command_hash;
  command_hash.Add(command);
  record.command_hash = command_hash.value();
  record.backend = std::string(backend);
  record.timeout = timeout.has_value() ? absl::FormatDuration(*timeout) : "none";
  if (!planned.ok()) {
    record.code = static_cast<int>(planned.code());
    record.error = OneLine(std::string(planned.message()), kErrorBytes);
    return record;
  }
  Fingerprint hash;
  std::vector<std::string> words;
  for (size_t i = 0; i < plans.size(); ++i) {
    words.push_back(DescribeMesh(*plans[i], i < mesh_names.size() ? mesh_names[i] : "mesh", hash));
  }
  record.meshes = static_cast<int64_t>(plans.size());
  record.mesh_hash = hash.value();
  record.mesh_words =
      OneLine(words.empty() ? "no mesh" : absl::StrJoin(words, "; "), kMeshWordsBytes);
  return record;
}

absl::Status DecideStartup(absl::Span<const std::optional<std::string>> records,
                           absl::Duration timeout, std::string_view where) {
  const int64_t size = static_cast<int64_t>(records.size());
  // A rank launched with another world size first: it explains the ranks that are missing.
  if (size > 0 && records[0].has_value()) {
    const std::optional<StartupRecord> first = StartupRecord::Parse(*records[0]);
    for (int64_t r = 1; first.has_value() && r < size; ++r) {
      if (!records[static_cast<size_t>(r)].has_value()) continue;
      const std::optional<StartupRecord> other =
          StartupRecord::Parse(*records[static_cast<size_t>(r)]);
      if (other.has_value() && other->world != first->world) {
        return MarkAgreed(absl::InvalidArgumentError(absl::StrFormat(
            "ranks disagree on the world size: rank 0 was launched with %s, rank %d with %s",
            first->world, r, other->world)));
      }
    }
  }
  std::vector<int64_t> missing;
  for (int64_t r = 0; r < size; ++r) {
    if (!records[static_cast<size_t>(r)].has_value()) missing.push_back(r);
  }
  if (!missing.empty()) {
    constexpr size_t kShown = 16;
    std::vector<int64_t> shown(
        missing.begin(),
        missing.begin() + static_cast<std::ptrdiff_t>(std::min(missing.size(), kShown)));
    return absl::UnavailableError(absl::StrFormat(
        "start-up: %s %s%s of %d did not arrive%s within %s (late, stopped or dead; "
        "--startup-timeout-s sets how long the others wait)",
        missing.size() == 1 ? "rank" : "ranks", absl::StrJoin(shown, ", "),
        missing.size() > kShown ? absl::StrFormat(", ... (%d ranks)", missing.size()) : "", size,
        std::string(where), absl::FormatDuration(timeout)));
  }
  std::vector<StartupRecord> parsed;
  for (int64_t r = 0; r < size; ++r) {
    std::optional<StartupRecord> record = StartupRecord::Parse(*records[static_cast<size_t>(r)]);
    if (!record.has_value()) {
      return MarkAgreed(absl::InvalidArgumentError(absl::StrFormat(
          "ranks disagree on the job: rank %d sent a start-up record this nmesh (%s) cannot read: "
          "every rank must run the same nmesh",
          r, VersionString())));
    }
    parsed.push_back(*std::move(record));
  }
  const StartupRecord& first = parsed.front();
  auto disagree = [&](std::string_view what, int64_t r, std::string_view verb,
                      std::string_view mine, std::string_view theirs) {
    return MarkAgreed(absl::InvalidArgumentError(absl::StrFormat(
        "ranks disagree on the %s: rank 0 %s %s, rank %d %s %s", what, verb,
        Abbreviate(mine, kMeshWordsBytes), r, verb, Abbreviate(theirs, kMeshWordsBytes))));
  };
  for (int64_t r = 1; r < size; ++r) {
    const StartupRecord& other = parsed[static_cast<size_t>(r)];
    if (other.version != first.version) {
      return disagree("job", r, "runs nmesh", first.version, other.version);
    }
  }
  for (int64_t r = 0; r < size; ++r) {
    const StartupRecord& record = parsed[static_cast<size_t>(r)];
    if (record.code == 0) continue;
    std::string message = record.error;
    if (r != 0) absl::StrAppend(&message, absl::StrFormat(" [reported by rank %d of %d]", r, size));
    return MarkAgreed(absl::Status(static_cast<absl::StatusCode>(record.code), message));
  }
  for (int64_t r = 1; r < size; ++r) {
    const StartupRecord& other = parsed[static_cast<size_t>(r)];
    if (other.command_hash != first.command_hash) {
      return disagree("job", r, "runs", absl::StrCat("'", first.command, "'"),
                      absl::StrCat("'", other.command, "'"));
    }
    if (other.backend != first.backend) {
      return disagree("backend", r, "asks for", first.backend, other.backend);
    }
  }
  for (int64_t r = 1; r < size; ++r) {
    const StartupRecord& other = parsed[static_cast<size_t>(r)];
    if (other.timeout != first.timeout) {
      return disagree("mesh", r, "has timeout", first.timeout, other.timeout);
    }
    if (other.meshes != first.meshes || other.mesh_hash != first.mesh_hash) {
      return disagree("mesh", r, "builds", first.mesh_words, other.mesh_words);
    }
  }
  return absl::OkStatus();
}

namespace {

class MpiExchange : public StartupExchange {
 public:
  explicit MpiExchange(comm::mpi::Session& session) : session_(session) {}
  int rank() const override { return session_.world_rank(); }
  int size() const override { return session_.world_size(); }
  std::string WorldWords() const override { return absl::StrCat(session_.world_size()); }
  std::string Where() const override { return ""; }
  absl::StatusOr<std::string> Rendezvous(std::string_view record, absl::Duration timeout,
                                         const Decision& decide) override {
    return comm::mpi::Rendezvous(session_, record, timeout, decide);
  }

 private:
  comm::mpi::Session& session_;
};

class StoreExchange : public StartupExchange {
 public:
  StoreExchange(comm::Store& store, int rank, int size, std::string size_variable)
      : store_(store), rank_(rank), size_(size), size_variable_(std::move(size_variable)) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string WorldWords() const override { return absl::StrCat(size_variable_, "=", size_); }
  std::string Where() const override { return absl::StrCat(" at the store ", store_.Describe()); }
  absl::StatusOr<std::string> Rendezvous(std::string_view record, absl::Duration timeout,
                                         const Decision& decide) override {
    absl::StatusOr<int64_t> claims = store_.Add(absl::StrCat("claim/", rank_), 1);
    if (!claims.ok()) return claims.status();
    if (*claims > 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "rank %d is claimed twice at the store %s: two processes of this job have the same "
          "rank, or another job uses the same store prefix (give each job its own URL path or "
          "NMESH_JOB_ID)",
          rank_, store_.Describe()));
    }
    return comm::StoreRendezvous(store_, "startup", rank_, size_, record, timeout, decide);
  }

 private:
  comm::Store& store_;
  const int rank_;
  const int size_;
  const std::string size_variable_;
};

}  // namespace

std::unique_ptr<StartupExchange> MpiStartupExchange(comm::mpi::Session& session) {
  return std::make_unique<MpiExchange>(session);
}

std::unique_ptr<StartupExchange> StoreStartupExchange(comm::Store& store, int rank, int size,
                                                      std::string size_variable) {
  return std::make_unique<StoreExchange>(store, rank, size, std::move(size_variable));
}

absl::Status AgreeAtStartup(StartupExchange& exchange, StartupRecord mine, absl::Duration timeout) {
  mine.world = exchange.WorldWords();
  const std::string where = exchange.Where();
  absl::StatusOr<std::string> verdict = exchange.Rendezvous(
      mine.Serialize(), timeout,
      [timeout, &where, world = mine.world](absl::Span<const std::optional<std::string>> records) {
        absl::Status decided = DecideStartup(records, timeout, where);
        return absl::StrCat(static_cast<int>(decided.code()), "\n", IsAgreed(decided) ? 1 : 0, "\n",
                            world, "\n", decided.message());
      });
  if (!verdict.ok()) return verdict.status();
  const std::vector<absl::string_view> parts = absl::StrSplit(*verdict, absl::MaxSplits('\n', 3));
  int code = 0, agreed = 0;
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &code) ||
      !absl::SimpleAtoi(parts[1], &agreed) || code < 0 ||
      code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::InternalError("start-up: rank 0 sent an answer this rank cannot read");
  }
  if (parts[2] != mine.world) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ranks disagree on the world size: rank 0 was launched with %s, rank %d with %s",
        std::string(parts[2]), exchange.rank(), mine.world));
  }
  if (code == 0) return absl::OkStatus();
  absl::Status status(static_cast<absl::StatusCode>(code), std::string(parts[3]));
  return agreed ? MarkAgreed(std::move(status)) : status;
}

absl::Status AgreeAtStartup(comm::mpi::Session& session, const StartupRecord& mine,
                            absl::Duration timeout) {
  MpiExchange exchange(session);
  return AgreeAtStartup(exchange, mine, timeout);
}

absl::Status MeetAfterAgreement(comm::mpi::Session& session, absl::Time deadline) {
  const absl::Duration timeout =
      std::max(absl::Ceil(deadline - absl::Now(), absl::Seconds(1)), absl::Seconds(1));
  absl::StatusOr<std::string> verdict = comm::mpi::Rendezvous(
      session, "after the agreement", timeout,
      [timeout](absl::Span<const std::optional<std::string>> records) {
        std::vector<int64_t> missing;
        for (size_t r = 0; r < records.size(); ++r) {
          if (!records[r].has_value()) missing.push_back(static_cast<int64_t>(r));
        }
        if (missing.empty()) return std::string();
        constexpr size_t kShown = 16;
        std::vector<int64_t> shown(
            missing.begin(),
            missing.begin() + static_cast<std::ptrdiff_t>(std::min(missing.size(), kShown)));
        return absl::StrFormat(
            "start-up: %s %s%s of %d did not come back from the agreement within %s (stopped or "
            "dead since it sent its record; --startup-timeout-s sets how long the others wait)",
            missing.size() == 1 ? "rank" : "ranks", absl::StrJoin(shown, ", "),
            missing.size() > kShown ? absl::StrFormat(", ... (%d ranks)", missing.size()) : "",
            records.size(), absl::FormatDuration(timeout));
      });
  if (!verdict.ok()) return verdict.status();
  if (verdict->empty()) return absl::OkStatus();
  return absl::UnavailableError(*verdict);
}

absl::Duration StartupTimeout(std::optional<absl::Duration> startup_timeout,
                              std::optional<absl::Duration> timeout) {
  if (startup_timeout.has_value()) return *startup_timeout;
  if (timeout.has_value()) return std::max(*timeout, kMinStartupTimeout);
  return kDefaultStartupTimeout;
}

}  // namespace nmesh::job
