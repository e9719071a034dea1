#!/usr/bin/env bash
# Runs every parser fuzzer (fuzz/fuzz_*.cpp, built with ASan and UBSan) from
# the committed seed corpus fuzz/corpus/<target> (small files the project
# writes itself: tests/io/test_fuzz_seeds.cpp), either for SECONDS each (CI)
# or until each has run N inputs (make fuzz-long), JOBS at a time. Inputs grow
# to the size of the largest seed of their target (libFuzzer's default).
#   scripts/fuzz.sh BUILD_DIR time SECONDS
#   scripts/fuzz.sh BUILD_DIR runs N
# TARGETS="gguf plan_json" runs only those. New inputs go to a scratch copy of
# the corpus. A crash, sanitizer report, leak, hang (30 s of wall time: less
# gives false reports on a loaded machine) or an allocation over 1 GiB fails
# the run; the input that did it is kept in BUILD_DIR/fuzz-artifacts/.
set -uo pipefail
build=$1 mode=$2 amount=$3
jobs=${JOBS:-1}
case $mode in
  time) limit=(-max_total_time="$amount") ;;
  runs) limit=(-runs="$amount") ;;
  *) echo "usage: $0 BUILD_DIR time SECONDS | runs N" >&2; exit 2 ;;
esac
# One thread per fuzzer: OpenMP's idle threads would spin and take the CPU the fuzzers need.
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"

run_one() {
  local t=$1 log="$work/$1.log" start rc runs secs
  mkdir -p "$work/$t"
  cp "$here/fuzz/corpus/$t"/* "$work/$t/"
  start=$(date +%s)
  "$build/fuzz_$t" "${limit[@]}" -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$t-" "$work/$t" >"$log" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$')
  echo "fuzz_$t: ${runs:-?} inputs in ${secs} s, exit $rc"
  if [ $rc -ne 0 ]; then tail -40 "$log"; return 1; fi
}

status=0
running=0
all=$(for src in "$here"/fuzz/fuzz_*.cpp; do t=$(basename "$src" .cpp); echo "${t#fuzz_}"; done)
for t in ${TARGETS:-$all}; do
  if [ ! -d "$here/fuzz/corpus/$t" ]; then echo "fuzz_$t: no seed corpus in fuzz/corpus/$t"; status=1; continue; fi
  run_one "$t" &
  running=$((running + 1))
  if [ $running -ge "$jobs" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ $running -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
