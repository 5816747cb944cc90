#include "nmesh/job/verify_job.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/host_collectives.h"

namespace nmesh::job {
namespace {

using comm::Communicator;

// Fixed-width integers in this machine's byte order (the ranks of one job run one build of nmesh),
// and strings and lists prefixed with their length.
class Writer {
 public:
  void Int(int64_t value) { text_.append(reinterpret_cast<const char*>(&value), sizeof(value)); }
  void Bool(bool value) { Int(value ? 1 : 0); }
  void String(std::string_view value) {
    Int(static_cast<int64_t>(value.size()));
    text_.append(value);
  }
  void Ints(const std::vector<int64_t>& values) {
    Int(static_cast<int64_t>(values.size()));
    for (int64_t value : values) Int(value);
  }
  std::string Take() { return std::move(text_); }

 private:
  std::string text_;
};

// Reads what Writer wrote; every read fails (and stays failed) past the end of the text.
class Reader {
 public:
  explicit Reader(std::string_view text) : text_(text) {}

  bool ok() const { return ok_; }
  bool at_end() const { return text_.empty(); }

  int64_t Int() {
    int64_t value = 0;
    if (!ok_ || text_.size() < sizeof(value)) {
      ok_ = false;
      return 0;
    }
    std::memcpy(&value, text_.data(), sizeof(value));
    text_.remove_prefix(sizeof(value));
    return value;
  }
  bool Bool() { return Int() != 0; }
  // A length read from the text, refused when the rest of the text cannot hold that many items of
  // `item_bytes` (so that a damaged length never allocates).
  size_t Length(size_t item_bytes) {
    const int64_t n = Int();
    if (!ok_ || n < 0 || static_cast<uint64_t>(n) > text_.size() / item_bytes) {
      ok_ = false;
      return 0;
    }
    return static_cast<size_t>(n);
  }
  std::string String() {
    const size_t n = Length(1);
    std::string value(text_.substr(0, n));
    text_.remove_prefix(n);
    return value;
  }
  std::vector<int64_t> Ints() {
    std::vector<int64_t> values(Length(sizeof(int64_t)));
    for (int64_t& value : values) value = Int();
    return values;
  }

 private:
  std::string_view text_;
  bool ok_ = true;
};

void WriteChecks(const std::vector<GroupCheck>& checks, Writer& w) {
  w.Int(static_cast<int64_t>(checks.size()));
  for (const GroupCheck& check : checks) {
    w.String(check.name);
    w.Ints(check.observed);
    w.Bool(check.verified);
  }
}

std::vector<GroupCheck> ReadChecks(Reader& r) {
  // Each check takes at least three integers.
  std::vector<GroupCheck> checks(r.Length(3 * sizeof(int64_t)));
  for (GroupCheck& check : checks) {
    check.name = r.String();
    check.observed = r.Ints();
    check.verified = r.Bool();
  }
  return checks;
}

}  // namespace

std::string EncodeRankResults(const std::vector<std::optional<RankVerification>>& results) {
  Writer w;
  w.Int(static_cast<int64_t>(results.size()));
  for (const std::optional<RankVerification>& result : results) {
    w.Bool(result.has_value());
    if (!result.has_value()) continue;
    w.Int(result->rank);
    w.String(result->host);
    w.Int(result->local_rank);
    w.Ints(result->coordinate);
    WriteChecks(result->groups, w);
    w.Bool(result->moe_groups.has_value());
    if (result->moe_groups.has_value()) WriteChecks(*result->moe_groups, w);
    w.Bool(result->verified);
    w.Int(static_cast<int64_t>(result->mismatches.size()));
    for (const std::string& line : result->mismatches) w.String(line);
  }
  return w.Take();
}

absl::StatusOr<std::vector<std::optional<RankVerification>>> DecodeRankResults(
    std::string_view text, size_t meshes) {
  Reader r(text);
  std::vector<std::optional<RankVerification>> results(r.Length(sizeof(int64_t)));
  for (std::optional<RankVerification>& result : results) {
    if (!r.Bool()) continue;
    RankVerification& v = result.emplace();
    v.rank = r.Int();
    v.host = r.String();
    v.local_rank = r.Int();
    v.coordinate = r.Ints();
    v.groups = ReadChecks(r);
    if (r.Bool()) v.moe_groups = ReadChecks(r);
    v.verified = r.Bool();
    v.mismatches.resize(r.Length(sizeof(int64_t)));
    for (std::string& line : v.mismatches) line = r.String();
  }
  if (!r.ok() || !r.at_end() || results.size() != meshes) {
    return absl::InternalError(absl::StrFormat(
        "a verification report of %d bytes does not decode as the results of %d mesh(es)",
        text.size(), meshes));
  }
  return results;
}

absl::Status CheckFaultSkip(const FaultSkip& skip, int64_t world_size,
                            const std::vector<JobMesh>& meshes) {
  if (skip.rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--fault-skip %d:%s: rank %d is outside the world (%d ranks)", skip.rank,
                        skip.group, skip.rank, world_size));
  }
  for (const JobMesh& run : meshes) {
    if (run.plan->Contains(skip.rank) && run.plan->ResolveGroup(skip.group).ok()) {
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("--fault-skip %d:%s: no mesh with rank %d as a member has a group '%s'",
                      skip.rank, skip.group, skip.rank, skip.group));
}

absl::StatusOr<JobVerification> VerifyJob(Job& job, const VerifyJobOptions& options) {
  const int64_t rank = job.rank();
  Communicator& world = job.host_world();
  const comm::Topology& topo = job.topology();
  std::vector<JobMesh>& meshes = job.meshes();
  const bool faulty = options.fault_skip.has_value() && options.fault_skip->rank == rank;

  JobVerification result;
  result.meshes.resize(meshes.size());
  std::vector<std::optional<RankVerification>> mine(meshes.size());
  int64_t verified = 1;
  for (size_t m = 0; m < meshes.size(); ++m) {
    const JobMesh& run = meshes[m];
    const double seconds = run.build_seconds;
    NMESH_RETURN_IF_ERROR(comm::HostAllReduce(world, &seconds, &result.meshes[m].build_seconds, 1,
                                              comm::DataType::kFloat64, comm::ReduceOp::kMax));
    if (!run.mesh->is_member()) continue;
    VerifyOptions verify;
    if (faulty) {
      verify.skip_group = options.fault_skip->group;
      if (options.on_fault_skip) options.on_fault_skip(run);
    }
    NMESH_ASSIGN_OR_RETURN(RankVerification v, VerifyRank(*run.plan, *run.mesh, rank, verify));
    v.host = topo.host_names[static_cast<size_t>(rank)];
    v.local_rank = topo.local_rank;
    if (!v.verified) verified = 0;
    mine[m] = std::move(v);
  }

  NMESH_ASSIGN_OR_RETURN(std::vector<std::string> gathered,
                         comm::HostGatherV(world, EncodeRankResults(mine), /*root=*/0));
  NMESH_RETURN_IF_ERROR(comm::HostAllReduce(world, &verified, &verified, 1, comm::DataType::kInt64,
                                            comm::ReduceOp::kMin));
  result.verified = verified == 1;
  if (rank != 0) return result;

  for (size_t m = 0; m < meshes.size(); ++m) {
    absl::StatusOr<std::vector<GroupPlacement>> rows =
        PlacementOf(*meshes[m].plan, topo.host_names);
    NMESH_CHECK(rows.ok()) << rows.status();  // every mesh rank is a rank of the job
    result.meshes[m].placement = *std::move(rows);
  }
  for (size_t from = 0; from < gathered.size(); ++from) {
    absl::StatusOr<std::vector<std::optional<RankVerification>>> results =
        DecodeRankResults(gathered[from], meshes.size());
    if (!results.ok()) {
      return absl::InternalError(
          absl::StrFormat("rank %d's verification results: %s", from, results.status().message()));
    }
    for (size_t m = 0; m < meshes.size(); ++m) {
      std::optional<RankVerification>& v = (*results)[m];
      if (!v.has_value()) continue;
      MeshVerification& mesh = result.meshes[m];
      mesh.verified = mesh.verified && v->verified;
      mesh.ranks.push_back(*std::move(v));
    }
  }
  for (size_t m = 0; m < meshes.size(); ++m) {
    result.meshes[m].warnings = CrossHostWarnings(meshes[m].spec.label, result.meshes[m].placement);
  }
  return result;
}

}  // namespace nmesh::job
