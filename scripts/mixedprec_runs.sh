#!/usr/bin/env bash
# Runs the mixed-precision figures of issue 8 on one model: uniform HQQ at every
# rung, SensiBoost/KurtBoost at the paper's settings, random-layer boosting at
# equal memory (5 seeds) and the budget allocator's frontier. One JSON of
# figures (and the plan) per run lands in OUT; scripts/mixedprec_table.py
# turns them into tables.
#   scripts/mixedprec_runs.sh MODEL CALIB EVAL OUT [parts...]
# parts: uniform boost random budget (default: all)
set -euo pipefail
model=$1 calib=$2 eval=$3 out=$4
shift 4
parts=${*:-uniform boost random budget}
tq=${TQ:-$(dirname "$0")/../build/tquant}
mkdir -p "$out"

run() {  # name, then quantize arguments
  local name=$1
  shift
  [[ -f $out/$name.json ]] && return 0
  "$tq" quantize "$model" --calib "$calib" --eval "$eval" -o "$out/$name.q" --json "$out/$name.json" "$@" \
    2>"$out/$name.log"
  cp "$out/$name.q/plan.json" "$out/$name.plan.json"
  rm -rf "$out/$name.q"
  echo "$name done" >&2
}

for part in $parts; do
  case $part in
    uniform)
      for b in 2 3 4 8; do for g in 128 64 32; do run "hqq-b${b}g${g}" --recipe "w$b-hqq-g$g"; done; done ;;
    boost)
      for f in kurt sensi; do for b in 4 3; do for stop in 2 3; do
        run "$f-w$b-stop$stop" --recipe "w$b-${f}boost" --set stop=$stop
      done; done; done ;;
    random)
      for f in kurt sensi; do for b in 4 3; do for stop in 2 3; do
        run "$f-w$b-stop$stop" --recipe "w$b-${f}boost" --set stop=$stop
        # Random layers only where the detector boosted something (else they equal the base).
        python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["notes"]["boost"]["modules"]
sys.exit(0 if any(v["boosted"] for v in m.values()) else 1)' "$out/$f-w$b-stop$stop.plan.json" || continue
        for seed in 1 2 3 4 5; do
          run "$f-w$b-stop$stop-random$seed" --recipe "w$b-${f}boost" --set stop=$stop --set select=random --seed $seed
        done
      done; done; done ;;
    budget)
      for bpw in ${BUDGETS:-2.75 3.0 3.25 3.5 3.75 4.0 4.25 4.5 5.0 6.0}; do run "budget-$bpw" --recipe w4-budget --budget "$bpw"; done ;;
  esac
done
