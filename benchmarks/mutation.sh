#!/usr/bin/env bash
# Mutation testing of mouseemo's numeric core with mutmut 3, one module at a time, one process.
#
#   bash benchmarks/mutation.sh MODULE [SAMPLE]
#
# MODULE is one of: hog similarity cells frames metrics joint_metrics correlates correlates_stats
# scorers splits.
# SAMPLE (optional) runs only that many mutants, drawn at random with a fixed seed (for modules
# whose full run would take too long; MUTATION_SEED=N draws another sample, default 0). Each module runs in its own copy of the project under
# .mutation/MODULE/, made afresh on every run (mutmut reads [tool.mutmut] from pyproject.toml there; this script sets the
# files to mutate and the focused tests to run), so runs do not share or clobber mutmut's state.
# Survivors: `cd .mutation/MODULE && mutmut results` and `mutmut show NAME`.
set -euo pipefail

module=${1:?usage: bash benchmarks/mutation.sh MODULE [SAMPLE]}
sample=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)

case "$module" in
  hog)           mutate='"mouseemo/ops/_hog/*.py"'
                 tests='"tests/test_core_hog.py", "tests/test_core_hog_paths.py"' ;;
  similarity)    mutate='"mouseemo/ops/similarity.py"'
                 tests='"tests/test_core_similarity.py", "tests/test_similarity.py"' ;;
  cells)         mutate='"mouseemo/ops/cells.py"'
                 tests='"tests/test_core_cells.py"' ;;
  frames)        mutate='"mouseemo/ops/frames.py"'
                 tests='"tests/test_core_frames.py"' ;;
  metrics)       mutate='"mouseemo/models/metrics.py"'
                 tests='"tests/test_core_metrics.py"' ;;
  joint_metrics) mutate='"mouseemo/models/joint_metrics.py"'
                 tests='"tests/test_core_joint_metrics.py"' ;;
  # correlate_neurons against its direct reference, and the fast tests of the older file (its
  # calibration-population tests take minutes per mutant; the command-line test runs
  # `python -m mouseemo` in a subprocess, which inherits mutmut's stats-collecting mode and fails there)
  correlates)    mutate='"mouseemo/analysis/correlates.py"'
                 ct=tests/test_correlates.py
                 # (the warning-location test sees mutmut's trampoline as the caller: it runs in the suite)
                 tests="\"tests/test_core_correlates.py\", \"tests/test_core_correlate_neurons.py\", \"--deselect\", \"tests/test_core_correlates.py::test_correlate_neurons_warns_at_the_callers_line_and_takes_one_stratum\""
                 for t in planted_neurons_are_found_with_their_emotion_and_lag null_is_calibrated_for_autocorrelated_independent_signals \
                          pair_test_is_calibrated_on_untuned_neurons_and_finds_the_tuned_ones two_sided_finds_suppressed_neurons \
                          correlate_bad_input short_session_warns_with_the_smallest_achievable_p_value \
                          traces_on_imaging_clock_bins_and_errors slow_baseline_keeps_an_emotion_block_and_takes_the_drift; do
                   tests+=", \"$ct::test_$t\""
                 done ;;
  correlates_stats) mutate='"mouseemo/analysis/correlates_stats.py"'
                 tests='"tests/test_core_correlates.py"' ;;
  scorers)       mutate='"mouseemo/inference/scorers.py"'
                 tests='"tests/test_core_scorers.py"' ;;
  splits)        mutate='"mouseemo/data/splits.py"'
                 tests='"tests/test_core_splits.py", "tests/test_session_splits.py"' ;;
  *) echo "unknown module $module" >&2; exit 2 ;;
esac

work="$root/.mutation/$module"
# a fresh copy of the project every time: mutmut keeps a survivor's verdict while its function is
# unchanged, even after the tests change
rm -rf "$work" && mkdir -p "$work"
for p in mouseemo conf tests benchmarks docs setup.py pyproject.toml README.md mkdocs.yml; do
  cp -a "$root/$p" "$work/$p"
done
python3 - "$work/pyproject.toml" "$mutate" "$tests" <<'PY'
import re, sys
path, mutate, tests = sys.argv[1:]
text = open(path, encoding="utf-8").read()
text = re.sub(r"^only_mutate = .*$", f"only_mutate = [{mutate}]", text, flags=re.M)
text = re.sub(r"^pytest_add_cli_args_test_selection = .*$",
              f"pytest_add_cli_args_test_selection = [{tests}]", text, flags=re.M)
open(path, "w", encoding="utf-8").write(text)
PY
cd "$work"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=""
unset PYTHONPATH
# tests that read real frames find them from the copy too
real="${MOUSEEMO_REAL_DATA:-$root/../shared/data/real}"
[[ -d "$real" ]] && export MOUSEEMO_REAL_DATA="$(cd "$real" && pwd)"
names=()
if [[ -n "$sample" ]]; then
  # generate the mutants (a run of no mutant), then draw the sample with a fixed seed
  mutmut run --max-children 1 "none-such-mutant" >/dev/null 2>&1 || true
  mapfile -t names < <(python3 - "$sample" "${MUTATION_SEED:-0}" <<'PY'
import random, re, sys
from pathlib import Path
names = []
for meta in sorted(Path("mutants").rglob("*.py.meta")):
    import json
    names += sorted(json.loads(meta.read_text())["exit_code_by_key"])
random.Random(int(sys.argv[2])).shuffle(names)
print("\n".join(sorted(names[: int(sys.argv[1])])))
PY
)
fi
start=$(date +%s)
mutmut run --max-children 1 "${names[@]}" >run.log 2>&1 || { tail -c 3000 run.log; exit 1; }
echo "$module: mutmut run took $(( $(date +%s) - start )) s (log: $work/run.log)"
mutmut results --all true >results.txt
python3 - results.txt <<'PY'
import collections, re, sys
count = collections.defaultdict(collections.Counter)
for line in open(sys.argv[1], encoding="utf-8"):
    name, _, status = line.strip().rpartition(": ")
    count[re.sub(r"\.x[_\u01c1].*", "", name)][status] += 1
for module, c in sorted(count.items()):
    total = sum(c.values())
    print(f"{module}: killed {c['killed']}/{total} ({100 * c['killed'] / total:.1f}%) {dict(c)}")
PY
grep -v ": killed$" results.txt || true
