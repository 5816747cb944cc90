#!/usr/bin/env bash
# Runs two builds of the nmesh CLI on the same `nmesh plan` invocations and compares stdout,
# stderr and the exit code of each:
#   scripts/compare_cli.sh OLD_NMESH NEW_NMESH [RECIPE_DIR...]
# Every *.yaml under each RECIPE_DIR (default: examples/ and ../shared/recipes/) is planned with
# --config, without and with each --section, without --world and with several, in text and JSON,
# and with flags over the file; then a set of bad inputs (recipes written to a temporary directory,
# bad flags). Both binaries run with argv[0] "nmesh". Prints
# "N invocations compared, M differ" and exits 1 when any differs, 2 on a usage error.
set -uo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 OLD_NMESH NEW_NMESH [RECIPE_DIR...]" >&2
  exit 2
fi
old_bin=$1
new_bin=$2
shift 2
for bin in "$old_bin" "$new_bin"; do
  if [[ ! -x $bin ]]; then
    echo "$0: not an executable: $bin" >&2
    exit 2
  fi
done
repo=$(cd "$(dirname "$0")/.." && pwd)
recipe_dirs=("$@")
if [[ ${#recipe_dirs[@]} -eq 0 ]]; then
  recipe_dirs=("$repo/examples")
  [[ -d $repo/../shared/recipes ]] && recipe_dirs+=("$repo/../shared/recipes")
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
compared=0
differ=0

# run_one BINARY PREFIX ARGS...: PREFIX.out, PREFIX.err and PREFIX.rc.
run_one() {
  local bin=$1 prefix=$2
  shift 2
  (exec -a nmesh "$bin" "$@") >"$prefix.out" 2>"$prefix.err" </dev/null
  echo $? >"$prefix.rc"
}

# compare ARGS...: one invocation of both binaries.
compare() {
  run_one "$old_bin" "$work/old" "$@"
  run_one "$new_bin" "$work/new" "$@"
  compared=$((compared + 1))
  local part same=1
  for part in out err rc; do
    if ! cmp -s "$work/old.$part" "$work/new.$part"; then
      if [[ $same -eq 1 ]]; then
        printf 'DIFFERS: nmesh'
        printf ' %q' "$@"
        printf '\n'
      fi
      same=0
      echo "  $part:"
      diff "$work/old.$part" "$work/new.$part" | head -20 | sed 's/^/    /'
    fi
  done
  [[ $same -eq 1 ]] || differ=$((differ + 1))
}

# compare_formats ARGS...: text and JSON.
compare_formats() {
  compare "$@"
  compare "$@" --format json
}

# Every recipe, as a whole and by section.
recipes=()
for dir in "${recipe_dirs[@]}"; do
  while IFS= read -r -d '' file; do recipes+=("$file"); done \
    < <(find "$dir" -name '*.yaml' -type f -print0 | sort -z)
done
for recipe in "${recipes[@]}"; do
  for section in "" distributed teacher_distributed; do
    section_flag=()
    [[ -n $section ]] && section_flag=(--section "$section")
    compare_formats plan --config "$recipe" "${section_flag[@]}"
    for world in 4 8 16 64; do
      compare_formats plan --config "$recipe" "${section_flag[@]}" --world "$world"
    done
  done
  compare plan --config "$recipe" --world 8 --all-ranks --format json
  compare plan --config "$recipe" --world 8 --rank 1
  # Flags override the file: a size, and pp 1 (a pipeline block is dropped with a warning).
  compare plan --config "$recipe" --world 8 --tp 2
  compare_formats plan --config "$recipe" --world 16 --pp 1
done

# Bad inputs: recipe files (NAME then content, in pairs).
bad_recipes=(
  empty ''
  not_a_map $'- a\n- b\n'
  malformed $'distributed: [\n'
  no_section $'model: x\n'
  section_not_map $'distributed: 3\n'
  duplicate $'distributed: {}\ndistributed: {}\n'
  bad_tp $'distributed:\n  tp_size: two\n'
  zero_tp $'distributed:\n  tp_size: 0\n'
  unknown_key $'distributed:\n  bogus: 1\n  other: 2\n'
  bad_strategy $'distributed:\n  strategy: zero3\n'
  null_strategy $'distributed:\n  strategy: null\n'
  ddp_tp $'distributed:\n  strategy: ddp\n  tp_size: 2\n'
  mfsdp_pp $'distributed:\n  strategy: mfsdp\n  pp_size: 2\n  pipeline: {}\n'
  mfsdp_selective $'distributed:\n  strategy: mfsdp\n  activation_checkpointing: selective\n'
  bad_checkpointing $'distributed:\n  activation_checkpointing: sometimes\n'
  pp_no_pipeline $'distributed:\n  pp_size: 2\n'
  pipeline_dropped $'distributed:\n  pp_size: 1\n  pipeline:\n    pp_schedule: gpipe\n'
  pipeline_dtype $'distributed:\n  pp_size: 2\n  pipeline:\n    dtype: fp16\n'
  bad_dtype $'distributed:\n  mp_policy:\n    param_dtype: float64\n'
  unknown_dtype $'distributed:\n  autocast_dtype: fp8\n'
  bad_frozen $'distributed:\n  multimodal:\n    frozen_sharding: sideways\n'
  bad_scope $'distributed:\n  activation_checkpointing_scope: [vision, all]\n'
  bad_zero_dp $'distributed:\n  strategy: megatron_fsdp\n  zero_dp_strategy: 7\n'
  mfsdp_tp_plan $'distributed:\n  strategy: mfsdp\n  tp_plan: {a: b}\n'
  bad_round $'distributed:\n  pp_size: 2\n  pipeline:\n    round_virtual_stages_to_pp_multiple: sideways\n'
  bad_slack $'distributed:\n  pp_size: 2\n  pipeline:\n    pp_recv_buffer_pool_slack: -1\n'
  loss_fn $'distributed:\n  pp_size: 2\n  pipeline:\n    loss_fn: foo.bar\n'
  bad_moe $'distributed:\n  ep_size: 2\n  moe:\n    bogus: 1\n'
  indivisible $'distributed:\n  tp_size: 3\n'
  dp_replicate $'distributed:\n  dp_size: 4\n  dp_replicate_size: 3\n'
  bad_timeout $'distributed: {}\ndist_env:\n  timeout_minutes: -1\n'
  bad_nccl $'distributed:\n  tp_size: 2\n  nccl:\n    tp: {max_ctas: 99}\n'
  nccl_unknown_axis $'distributed:\n  nccl:\n    ring: {max_ctas: 4}\n'
  kd_no_teacher $'separate_meshes: true\ndistributed:\n  dp_size: 2\n'
  kd_no_switch $'distributed: {}\nteacher_distributed: {}\n'
  kd_no_dp $'separate_meshes: true\ndistributed:\n  dp_size: 2\nteacher_distributed:\n  tp_size: 2\n'
  kd_ddp $'separate_meshes: true\ndistributed:\n  strategy: ddp\n  dp_size: 2\nteacher_distributed:\n  dp_size: 2\n'
  kd_teacher_ddp $'separate_meshes: true\ndistributed:\n  dp_size: 2\nteacher_distributed:\n  strategy: ddp\n  dp_size: 2\n'
  kd_conflict $'separate_meshes: true\ndistributed:\n  strategy: ddp\n  dp_size: 2\n  tp_size: 2\nteacher_distributed:\n  dp_size: 2\n'
  kd_bad_size $'separate_meshes: true\ndistributed:\n  dp_size: 2\n  tp_size: -3\nteacher_distributed:\n  dp_size: 2\n'
  kd_ok $'separate_meshes: true\ndistributed:\n  dp_size: 2\n  tp_size: 2\nteacher_distributed:\n  dp_size: 1\n  tp_size: 2\n'
)
for ((i = 0; i < ${#bad_recipes[@]}; i += 2)); do
  file="$work/${bad_recipes[i]}.yaml"
  printf '%s' "${bad_recipes[i + 1]}" >"$file"
  compare_formats plan --config "$file"
  compare_formats plan --config "$file" --world 8
  compare_formats plan --config "$file" --section teacher_distributed --world 12
  compare plan --config "$file" --tp 2 --world 8
  compare plan --config "$file" --strategy ddp --world 4
done

# Bad paths and flags.
mkdir -p "$work/a_directory"
compare_formats plan --config "$work/missing.yaml"
compare_formats plan --config "$work/a_directory"
compare_formats plan --config /dev/null
compare_formats plan --config "$repo/examples/ddp.yaml" --section bogus
compare_formats plan --config "$repo/examples/ddp.yaml" --tp x
compare_formats plan --config "$repo/examples/ddp.yaml" --strategy bogus
compare_formats plan --config "$repo/examples/fsdp2_tp2_cp2.yaml" --world 6
compare_formats plan --section distributed
compare_formats plan --strategy ddp --tp 2 --world 4
compare_formats plan --tp 0
compare_formats plan --strategy Megatron-FSDP --cp 2 --world 4

echo "$compared invocations compared, $differ differ"
[[ $differ -eq 0 ]]
