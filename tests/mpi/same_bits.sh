#!/usr/bin/env bash
# Under mpirun the work splits over the ranks and the results are the same bits as
# one process (src/core/ranks.h): eval figures (PPL, KLD, top-1), the budget
# allocator's plan (its HQQ fits and output-KL probes split), GPTQ's and HQQ's
# per-linear solves, KurtBoost's fits and auto-gguf's scored candidates, with 1, 2
# and 4 ranks against no mpirun at all; a failure ends every rank with exit status 2
# and writes nothing.
# Usage: same_bits.sh TQUANT MPIEXEC SOURCE_DIR
set -euo pipefail
tq=$1 mpiexec=$2 src=$3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 TQ_QUIET=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
model=$src/models/demo/stories-demo.gguf
text=$src/models/demo/sample.txt
mpi() { local n=$1; shift; "$mpiexec" --oversubscribe -np "$n" "$tq" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# The allocator's output-KL probes: 4 layers x 7 linears x every rung, split over the ranks.
echo '{"name": "budget-test", "passes": [{"pass": "budget", "budget": 4.5, "kl_batches": 3}]}' > "$dir/budget.json"
calib="$text?limit=5"
"$tq" quantize "$model" --recipe "$dir/budget.json" --calib "$calib" -o "$dir/q0" -t 1 2> "$dir/q0.log"
for n in 1 2 4; do
  mpi $n quantize "$model" --recipe "$dir/budget.json" --calib "$calib" -o "$dir/q$n" -t 1 2> "$dir/q$n.log" ||
    { cat "$dir/q$n.log" >&2; fail "quantize under $n ranks"; }
  diff -r "$dir/q0" "$dir/q$n" > /dev/null || fail "$n ranks wrote another model than one process"
  ls "$dir" | grep -q "q$n\.\(tmp\|partial\)" && fail "$n ranks left a temporary behind"
done
grep -q '"rungs"' "$dir/q0/plan.json" || fail "the plan holds no allocation"

# Per-linear solves and scored candidates: each recipe's output (plan, weights) under 2 and 4 ranks
# is the one process's, byte for byte (but the run time that auto-gguf records).
for recipe in w4-gptq-g32 w4-hqq-g32 w4-kurtboost auto-gguf; do
  args=(--recipe "$recipe" --calib "$text?limit=4" -t 1)
  [ "$recipe" = auto-gguf ] && args+=(--max-bpw 8)
  "$tq" quantize "$model" "${args[@]}" -o "$dir/$recipe-0" 2> "$dir/$recipe-0.log" ||
    { cat "$dir/$recipe-0.log" >&2; fail "$recipe in one process"; }
  for n in 2 4; do
    mpi $n quantize "$model" "${args[@]}" -o "$dir/$recipe-$n" 2> "$dir/$recipe-$n.log" ||
      { cat "$dir/$recipe-$n.log" >&2; fail "$recipe under $n ranks"; }
    diff -r -I '"seconds":' "$dir/$recipe-0" "$dir/$recipe-$n" > /dev/null || fail "$recipe: $n ranks wrote another model than one process"
  done
done

# Eval of the allocated model against the fp32 one: 13 lines (shares of 3 and 4 lines under 4 ranks).
data="$text?limit=13"
"$tq" eval "$dir/q0" --data "$data" --compare "$model" -t 1 --json "$dir/e0.json" > "$dir/e0.txt"
for n in 1 2 4; do
  mpi $n eval "$dir/q0" --data "$data" --compare "$model" -t 1 --json "$dir/e$n.json" > "$dir/e$n.txt" ||
    fail "eval under $n ranks"
  cmp "$dir/e0.json" "$dir/e$n.json" || fail "$n ranks: other figures than one process"
  cmp "$dir/e0.txt" "$dir/e$n.txt" || fail "$n ranks: another report than one process (printed once)"
done
grep -q '"kld_mean"' "$dir/e0.json" || fail "no KLD in the figures"

# A failure ends every rank: bad input, exit status 2, nothing written.
set +e
mpi 2 eval "$model" --data "$dir/missing.txt" --json "$dir/bad.json" > /dev/null 2> "$dir/bad.log"
rc=$?
set -e
[ $rc -eq 2 ] || { cat "$dir/bad.log" >&2; fail "a failed run under 2 ranks exited with $rc, not 2"; }
grep -q "tquant: error (rank [01] of 2): .*missing.txt" "$dir/bad.log" || { cat "$dir/bad.log" >&2; fail "no error message"; }
[ ! -e "$dir/bad.json" ] || fail "a failed run wrote its output"
echo "same bits for 1, 2 and 4 ranks"
