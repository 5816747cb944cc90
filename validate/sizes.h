// The two size types of a mesh: the sizes a user requests, and the sizes a mesh resolves to.
//
//   RequestedSizes requested;
//   requested.world_size = 16;
//   requested.tp = 2;
//   requested.cp = 2;                 // dp not given: inferred, 16 / (2 * 2 * 1) = 4
//   ResolvedSizes resolved;           // what a plan of them reports
//   resolved.dp = 4;
//   resolved.tp = 2;
//   resolved.cp = 2;
//   int64_t pp = resolved.pp_size();  // 1: no pp axis
//
// validate::ResolveSizes (nmesh/validate/validate.h) turns the one into the other; a mesh plan and
// a live MeshContext both report ResolvedSizes.
#ifndef NMESH_VALIDATE_SIZES_H_
#define NMESH_VALIDATE_SIZES_H_

#include <cstdint>
#include <optional>

namespace nmesh::validate {

// dp_size -1 asks for dp to be inferred, as an absent dp_size does.
inline constexpr int64_t kInferDp = -1;

// The sizes as the user gave them. std::nullopt means "not given" (YAML null/none/None too): tp,
// pp, cp, ep and dp_replicate then default to 1, and dp is inferred. Values are not checked here:
// CheckRequestedSizes rejects zero, negative and too large sizes with a message naming the field.
struct RequestedSizes {
  std::optional<int64_t> dp = std::nullopt;
  std::optional<int64_t> dp_replicate = std::nullopt;
  std::optional<int64_t> tp = std::nullopt;
  std::optional<int64_t> pp = std::nullopt;
  std::optional<int64_t> cp = std::nullopt;
  std::optional<int64_t> ep = std::nullopt;
  // The number of ranks the mesh spans. With an explicit rank list it is the list's length (and,
  // when given, must equal it).
  std::optional<int64_t> world_size = std::nullopt;
};

// The sizes of a mesh's axes and flattened groups. A field is set when the mesh has that axis or
// group. A plan sets, per strategy:
//   FSDP2: every field (ep and ep_shard are 1 without a moe mesh);
//   MegatronFSDP: dp, cp, tp, and dp_cp when cp > 1;
//   DDP: dp.
// A MeshContext sets the fields its meshes have (pp, tp, cp, dp, dp_replicate, dp_shard,
// dp_shard_cp, dp_cp from the device mesh, ep and ep_shard from the moe mesh), each read from its
// communicator.
struct ResolvedSizes {
  std::optional<int64_t> pp = std::nullopt;
  std::optional<int64_t> dp = std::nullopt;
  std::optional<int64_t> dp_replicate = std::nullopt;
  std::optional<int64_t> dp_shard = std::nullopt;
  std::optional<int64_t> cp = std::nullopt;
  std::optional<int64_t> tp = std::nullopt;
  std::optional<int64_t> ep = std::nullopt;
  std::optional<int64_t> ep_shard = std::nullopt;
  std::optional<int64_t> dp_shard_cp = std::nullopt;
  std::optional<int64_t> dp_cp = std::nullopt;

  // The size properties a MeshContext reports: a missing axis gives 1, except dp_size and
  // dp_replicate_size, which stay "none" (std::nullopt).
  int64_t pp_size() const { return pp.value_or(1); }
  bool pp_enabled() const { return pp_size() > 1; }
  int64_t tp_size() const { return tp.value_or(1); }
  int64_t cp_size() const { return cp.value_or(1); }
  int64_t ep_size() const { return ep.value_or(1); }
  std::optional<int64_t> dp_size() const { return dp; }
  std::optional<int64_t> dp_replicate_size() const { return dp_replicate; }
  int64_t dp_shard_size() const { return dp_shard.value_or(1); }

  friend bool operator==(const ResolvedSizes&, const ResolvedSizes&) = default;
};

}  // namespace nmesh::validate

#endif  // NMESH_VALIDATE_SIZES_H_
