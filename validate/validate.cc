#include "nmesh/validate/validate.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/validate/checked_math.h"
#include "nmesh/validate/error_fields.h"

namespace nmesh::validate {
namespace {

// Python's repr of a string as the reference prints it in sets and lists: 'name'.
std::string Quoted(std::string_view name) { return absl::StrFormat("'%s'", name); }

// The sizes the strategy table reads; a missing size is 1.
struct SupportSizes {
  int64_t dp_replicate = 1;
  int64_t tp = 1;
  int64_t pp = 1;
  int64_t cp = 1;
  int64_t ep = 1;
};

template <typename Sizes>
SupportSizes SupportSizesOf(const Sizes& s) {
  return {s.dp_replicate.value_or(1), s.tp.value_or(1), s.pp.value_or(1), s.cp.value_or(1),
          s.ep.value_or(1)};
}

std::optional<UnsupportedSize> FindUnsupported(StrategyKind strategy, const SupportSizes& s) {
  if (strategy != StrategyKind::kFsdp2 && s.dp_replicate > 1) {
    return UnsupportedSize{"dp_replicate_size is only supported with FSDP2Config",
                           "dp_replicate_size", s.dp_replicate};
  }
  struct Axis {
    std::string_view what;
    std::string_view field;
    int64_t value;
  };
  std::vector<Axis> unsupported;
  if (strategy == StrategyKind::kMegatronFsdp) {
    unsupported = {{"pipeline", "pp_size", s.pp}, {"expert", "ep_size", s.ep}};
  } else if (strategy == StrategyKind::kDdp) {
    unsupported = {{"tensor", "tp_size", s.tp},
                   {"pipeline", "pp_size", s.pp},
                   {"context", "cp_size", s.cp},
                   {"expert", "ep_size", s.ep}};
  }
  for (const Axis& axis : unsupported) {
    if (axis.value > 1) {
      return UnsupportedSize{
          absl::StrFormat("%s does not support %s parallelism", StrategyName(strategy), axis.what),
          axis.field, axis.value};
    }
  }
  return std::nullopt;
}

std::vector<std::string_view> FieldNames(absl::Span<const NamedSize> sizes) {
  std::vector<std::string_view> fields;
  for (const NamedSize& size : sizes) fields.push_back(size.field);
  return fields;
}

std::string FieldList(absl::Span<const NamedSize> sizes) {
  return absl::StrJoin(sizes, " * ", [](std::string* out, const NamedSize& size) {
    absl::StrAppend(out, std::string(size.field));
  });
}

std::string ValueList(absl::Span<const NamedSize> sizes) {
  return absl::StrJoin(sizes, " * ", [](std::string* out, const NamedSize& size) {
    absl::StrAppend(out, size.value);
  });
}

// "t * c * p = N", or "t * c * p, which overflows int64".
std::string ProductText(absl::Span<const NamedSize> sizes, const std::optional<int64_t>& product) {
  if (!product.has_value()) return absl::StrCat(ValueList(sizes), ", which overflows int64");
  return absl::StrCat(ValueList(sizes), " = ", *product);
}

std::optional<int64_t> ProductOf(absl::Span<const NamedSize> sizes) {
  std::vector<int64_t> values;
  for (const NamedSize& size : sizes) values.push_back(size.value);
  return CheckedProduct(values);
}

// `first` followed by the fields of `sizes`.
std::vector<std::string_view> Named(std::vector<std::string_view> first,
                                    absl::Span<const NamedSize> sizes) {
  for (std::string_view field : FieldNames(sizes)) first.push_back(field);
  return first;
}

// The product of the sizes must be the mesh size; the reference leaves this to PyTorch.
absl::Status CheckMeshSize(absl::Span<const NamedSize> factors, int64_t mesh_size,
                           bool has_rank_list) {
  const std::optional<int64_t> product = ProductOf(factors);
  if (product == mesh_size) return absl::OkStatus();
  // 0.7.0 builds a smaller mesh over the first ranks (the caller shrinks it); PyTorch rejects a
  // larger one.
  if (!has_rank_list && product.has_value() && *product < mesh_size) return absl::OkStatus();
  if (!has_rank_list && product.has_value()) {
    return WithFields(
        absl::InvalidArgumentError(absl::StrFormat(
            "Mesh should not be bigger than default world size %d, but found %d ranks! (%s) (%s)",
            mesh_size, *product, FieldList(factors), ProductText(factors, product))),
        "", FieldNames(factors));
  }
  if (has_rank_list) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mesh ranks (%d) must match mesh size (%s)", mesh_size,
                        product.has_value() ? absl::StrCat(*product) : ProductText(factors, {})));
  }
  if (factors.size() == 1) {
    return WithFields(
        absl::InvalidArgumentError(absl::StrFormat("%s (%d) must equal world_size (%d)",
                                                   factors[0].field, factors[0].value, mesh_size)),
        factors[0].field, {factors[0].field, "world_size"});
  }
  return WithFields(absl::InvalidArgumentError(
                        absl::StrFormat("(%s) (%s) must equal world_size (%d)", FieldList(factors),
                                        ProductText(factors, product), mesh_size)),
                    "", Named(FieldNames(factors), {{"world_size", mesh_size}}));
}

// The FSDP2 checks on a resolved dp; returns non_pp = dp·cp·tp.
absl::StatusOr<int64_t> CheckFsdp2(int64_t dp, int64_t dp_replicate, int64_t cp, int64_t tp,
                                   int64_t ep) {
  if (dp % dp_replicate != 0) {
    return WithFields(
        absl::InvalidArgumentError(absl::StrFormat(
            "dp_size must be a multiple of dp_replicate_size (dp_size=%d, dp_replicate_size=%d)",
            dp, dp_replicate)),
        "dp_size", {"dp_size", "dp_replicate_size"});
  }
  if (dp_replicate >= dp && dp_replicate != 1) {
    return WithFields(absl::InvalidArgumentError(absl::StrFormat(
                          "dp_replicate_size=%d must be less than dp_size=%d since DDP usecase is "
                          "not supported by FSDP2",
                          dp_replicate, dp)),
                      "dp_replicate_size", {"dp_replicate_size", "dp_size"});
  }
  const NamedSize non_pp_factors[] = {{"dp_size", dp}, {"cp_size", cp}, {"tp_size", tp}};
  const std::optional<int64_t> non_pp = ProductOf(non_pp_factors);
  if (!non_pp.has_value()) {
    return WithFields(absl::InvalidArgumentError(
                          absl::StrFormat("non_pp_size (%s) (%s)", FieldList(non_pp_factors),
                                          ProductText(non_pp_factors, std::nullopt))),
                      "", FieldNames(non_pp_factors));
  }
  if (*non_pp % ep != 0) {
    return WithFields(absl::InvalidArgumentError(absl::StrFormat(
                          "non_pp_size=%d must be a multiple of ep_size=%d", *non_pp, ep)),
                      "", {"ep_size"});
  }
  return *non_pp;
}

}  // namespace

absl::Status CheckGivenSize(std::string_view field, const std::optional<int64_t>& value,
                            bool may_infer) {
  if (!value.has_value() || (may_infer && *value == kInferDp)) return absl::OkStatus();
  if (*value <= 0) {
    return FieldError(field,
                      absl::StrFormat("%s must be a positive integer, got %d", field, *value));
  }
  if (*value > kMaxMeshSize) {
    return FieldError(
        field, absl::StrFormat("%s must be at most %d, got %d", field, kMaxMeshSize, *value));
  }
  return absl::OkStatus();
}

absl::Status CheckRequestedSizes(const RequestedSizes& sizes) {
  NMESH_RETURN_IF_ERROR(CheckGivenSize("dp_size", sizes.dp, /*may_infer=*/true));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("dp_replicate_size", sizes.dp_replicate));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("tp_size", sizes.tp));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("pp_size", sizes.pp));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("cp_size", sizes.cp));
  NMESH_RETURN_IF_ERROR(CheckGivenSize("ep_size", sizes.ep));
  return CheckGivenSize("world_size", sizes.world_size);
}

bool HasPipeline(const RequestedSizes& sizes) { return sizes.pp.value_or(1) > 1; }

bool HasMoe(const RequestedSizes& sizes) { return sizes.ep.value_or(1) > 1; }

absl::Status CheckSelectiveCheckpointing(std::string_view strategy_name) {
  if (strategy_name == StrategyName(StrategyKind::kFsdp2) ||
      strategy_name == StrategyName(StrategyKind::kDdp)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "selective activation checkpointing is supported only for FSDP2 and DDP configs. "
      "(strategy '%s')",
      strategy_name));
}

std::optional<UnsupportedSize> FindUnsupportedSize(StrategyKind strategy,
                                                   const RequestedSizes& sizes) {
  return FindUnsupported(strategy, SupportSizesOf(sizes));
}

std::optional<UnsupportedSize> FindUnsupportedSize(StrategyKind strategy,
                                                   const ResolvedSizes& sizes) {
  return FindUnsupported(strategy, SupportSizesOf(sizes));
}

std::vector<NamedSize> MeshSizeFactors(StrategyKind strategy, int64_t dp, int64_t tp, int64_t cp,
                                       int64_t pp) {
  switch (strategy) {
    case StrategyKind::kFsdp2:
      return {{"dp_size", dp}, {"tp_size", tp}, {"cp_size", cp}, {"pp_size", pp}};
    case StrategyKind::kMegatronFsdp:
      return {{"dp_size", dp}, {"tp_size", tp}, {"cp_size", cp}};
    case StrategyKind::kDdp:
      break;
  }
  return {{"dp_size", dp}};
}

std::optional<int64_t> RequestedMeshSize(const RequestedSizes& sizes) {
  if (!sizes.dp.has_value()) return std::nullopt;
  return CheckedProduct(
      {*sizes.dp, sizes.tp.value_or(1), sizes.cp.value_or(1), sizes.pp.value_or(1)});
}

absl::StatusOr<int64_t> InferDp(StrategyKind strategy, int64_t mesh_size, int64_t tp, int64_t cp,
                                int64_t pp) {
  if (strategy == StrategyKind::kDdp) return mesh_size;
  std::vector<NamedSize> others = {{"tp_size", tp}, {"cp_size", cp}};
  if (strategy == StrategyKind::kFsdp2) others.push_back({"pp_size", pp});
  const std::optional<int64_t> product = ProductOf(others);
  if (!product.has_value() || mesh_size % *product != 0) {
    return WithFields(absl::InvalidArgumentError(absl::StrFormat(
                          "world_size (%d) must be divisible by (%s) (%s)", mesh_size,
                          FieldList(others), ProductText(others, product))),
                      "", Named({"world_size"}, others));
  }
  return mesh_size / *product;
}

absl::StatusOr<ResolvedSizes> ResolveSizes(StrategyKind strategy, const RequestedSizes& in,
                                           int64_t mesh_size, bool has_rank_list) {
  if (const std::optional<UnsupportedSize> bad = FindUnsupportedSize(strategy, in)) {
    const bool replicate = bad->field == "dp_replicate_size";
    const std::string detail = replicate ? absl::StrFormat("(%s=%d, strategy %s)", bad->field,
                                                           bad->value, StrategyName(strategy))
                                         : absl::StrFormat("(%s=%d)", bad->field, bad->value);
    return WithFields(absl::InvalidArgumentError(absl::StrCat(bad->rule, " ", detail)),
                      replicate ? bad->field : "", {bad->field});
  }
  const int64_t dp_replicate = in.dp_replicate.value_or(1);
  const int64_t tp = in.tp.value_or(1);
  const int64_t pp = in.pp.value_or(1);
  const int64_t cp = in.cp.value_or(1);
  const int64_t ep = in.ep.value_or(1);
  int64_t dp = 0;
  if (in.dp.has_value() && *in.dp != kInferDp) {
    dp = *in.dp;
  } else {
    NMESH_ASSIGN_OR_RETURN(dp, InferDp(strategy, mesh_size, tp, cp, pp));
  }

  ResolvedSizes sizes;
  sizes.dp = dp;
  switch (strategy) {
    case StrategyKind::kFsdp2: {
      NMESH_ASSIGN_OR_RETURN(const int64_t non_pp, CheckFsdp2(dp, dp_replicate, cp, tp, ep));
      NMESH_RETURN_IF_ERROR(
          CheckMeshSize(MeshSizeFactors(strategy, dp, tp, cp, pp), mesh_size, has_rank_list));
      const int64_t dp_shard = dp / dp_replicate;
      sizes.pp = pp;
      sizes.dp_replicate = dp_replicate;
      sizes.dp_shard = dp_shard;
      sizes.cp = cp;
      sizes.tp = tp;
      sizes.ep = ep;
      sizes.ep_shard = ep > 1 ? non_pp / ep : 1;
      sizes.dp_shard_cp = dp_shard * cp;
      sizes.dp_cp = dp * cp;
      break;
    }
    case StrategyKind::kMegatronFsdp:
      NMESH_RETURN_IF_ERROR(
          CheckMeshSize(MeshSizeFactors(strategy, dp, tp, cp, pp), mesh_size, has_rank_list));
      sizes.cp = cp;
      sizes.tp = tp;
      if (cp > 1) sizes.dp_cp = dp * cp;
      break;
    case StrategyKind::kDdp:
      NMESH_RETURN_IF_ERROR(
          CheckMeshSize(MeshSizeFactors(strategy, dp, tp, cp, pp), mesh_size, has_rank_list));
      break;
  }
  return sizes;
}

absl::Status ValidateAxisNames(std::string_view mesh, absl::Span<const std::string> names,
                               absl::Span<const std::string_view> allowed) {
  const std::set<std::string_view> allowed_set(allowed.begin(), allowed.end());
  std::set<std::string_view> unknown;
  for (const std::string& name : names) {
    if (allowed_set.count(name) == 0) unknown.insert(name);
  }
  if (unknown.empty()) return absl::OkStatus();
  std::vector<std::string> unknown_text, allowed_text;
  for (std::string_view name : unknown) unknown_text.push_back(Quoted(name));
  for (std::string_view name : allowed_set) allowed_text.push_back(Quoted(name));
  return absl::InvalidArgumentError(
      absl::StrFormat("%s contains unknown axis names {%s}; allowed names are [%s]", mesh,
                      absl::StrJoin(unknown_text, ", "), absl::StrJoin(allowed_text, ", ")));
}

absl::Status ValidateDistributedSetup(const DistributedSetup& setup) {
  const ResolvedSizes& s = setup.sizes;
  auto got = [](std::string_view rule, std::string_view field, int64_t value) {
    return FieldError(field, absl::StrFormat("%s, got %s=%d", rule, field, value));
  };
  if (setup.has_pipeline && s.pp_size() <= 1) {
    return got("pipeline_config requires pp_size > 1", "pp_size", s.pp_size());
  }
  if (setup.has_moe && s.ep_size() <= 1) {
    return got("moe_parallel_config requires ep_size > 1", "ep_size", s.ep_size());
  }
  if (!setup.strategy.has_value()) return absl::OkStatus();
  if (const std::optional<UnsupportedSize> bad = FindUnsupportedSize(*setup.strategy, s)) {
    return got(bad->rule, bad->field, bad->value);
  }
  return absl::OkStatus();
}

}  // namespace nmesh::validate
