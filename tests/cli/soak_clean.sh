#!/usr/bin/env bash
# soak_clean.sh CHECKER NP STEPS CMD [ARGS...]
# Runs CMD (an `nmesh soak ... --report-dir @DIR@` job of NP ranks, @DIR@ replaced by a fresh
# directory) and passes when it exits 0, prints exactly one summary ("soak         completed: STEPS
# steps ...") for the whole job, and every rank's report says completed, STEPS steps, no recovery
# (CHECKER: soak_report_check).
set -u
checker="$1" np="$2" steps="$3"
shift 3
dir=$(mktemp -d "${TMPDIR:-/tmp}/nmesh_soak.XXXXXX")
trap 'rm -rf "$dir"' EXIT
args=()
for a in "$@"; do args+=("${a//@DIR@/$dir}"); done
out=$("${args[@]}" 2>"$dir.err")
rc=$?
printf '%s\n' "$out"
cat "$dir.err" >&2
rm -f "$dir.err"
[ "$rc" -eq 0 ] || { echo "soak_clean: the job exited $rc" >&2; exit 1; }
summaries=$(printf '%s\n' "$out" | grep -c "^soak         completed: $steps steps ")
[ "$summaries" -eq 1 ] || { echo "soak_clean: $summaries summaries, expected 1" >&2; exit 1; }
printf '%s\n' "$out" | grep -q "^recoveries   0$" || { echo "soak_clean: no 'recoveries 0' line" >&2; exit 1; }
"$checker" --dir "$dir" --np "$np" --steps "$steps" --events 0 --spares 0
