#!/usr/bin/env bash
# Issue 5 "done when" 2 on the 5-layer MNIST ViT: QuantTune (λ 0.05, k 3) and, as the control, the
# same fine-tune with λ = 0, both on test images 9,000–9,999 (the fine-tune pool of docs/methods.md §0.5;
# ../shared has no MNIST train set), the last tenth of them the guard set. Then per-tensor RTN at
# W8A8 and W7A7 with each calibrator on the original and both fine-tuned models, calibrated on
# images 9,000–9,031 and evaluated on images 0–8,999. Usage:
#   scripts/quanttune_mnist.sh [OUT_DIR] [STEPS] [LAMBDA] [LR] [BITS]     BITS: e.g. "8 7" (default), "6"
# Writes models, records (*.quanttune.json) and one JSON per quantization into OUT_DIR (default
# /tmp/tquant-qt-mnist) and the table as Markdown to stdout. Needs ../shared and ./build/tquant.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/tquant-qt-mnist}
STEPS=${2:-200}
LAMBDA=${3:-0.05}
LR=${4:-1e-4}
BITS=${5:-8 7}
S=../shared
TQ=./build/tquant
export OMP_WAIT_POLICY=passive
mkdir -p "$OUT"
MODEL=$S/models/vit-mnist-sonjuhy
POOL="mnist:$S/data/mnist?from=0.9"
CALIB="mnist:$S/data/mnist?from=0.9&limit=32"
EVAL="mnist:$S/data/mnist?to=0.9"
TUNE="--data $POOL --steps $STEPS --lr $LR --batch 16 --guard-every 50 --seed 1 --threads 2"

[ -d "$OUT/control" ] || "$TQ" quanttune "$MODEL" $TUNE --lambda 0 -o "$OUT/control" --log "$OUT/control.csv" \
  > "$OUT/control.txt"
[ -d "$OUT/quanttune" ] || "$TQ" quanttune "$MODEL" $TUNE --lambda "$LAMBDA" -o "$OUT/quanttune" \
  --log "$OUT/quanttune.csv" > "$OUT/quanttune.txt"
cat "$OUT/control.txt" "$OUT/quanttune.txt"

for m in original control quanttune; do
  [ $m = original ] && path=$MODEL || path=$OUT/$m
  for b in $BITS; do
    for c in minmax percentile mse kl; do
      json=$OUT/$m-w${b}a${b}-$c.json
      [ -s "$json" ] || "$TQ" quantize "$path" --recipe w${b}a${b}-rtn --calibrator $c --calib "$CALIB" --eval "$EVAL" \
        --threads 2 -o "$OUT/q" --json "$json" 2> "$OUT/$m-w${b}a${b}-$c.log"
    done
  done
done
rm -rf "$OUT/q"

/usr/bin/python3 - "$OUT" $BITS <<'PY'
import json, sys
out, bits = sys.argv[1], [int(b) for b in sys.argv[2:]]
print("\n| model | fp32 | bits | minmax | percentile | mse | kl | best | drop (best) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for m in ("original", "control", "quanttune"):
    for b in bits:
        acc = {c: json.load(open(f"{out}/{m}-w{b}a{b}-{c}.json")) for c in ("minmax", "percentile", "mse", "kl")}
        fp = next(iter(acc.values()))["fp32_accuracy"]
        q = {c: j["eval"]["accuracy"] for c, j in acc.items()}
        best = max(q, key=q.get)
        cells = " | ".join(f"{100 * q[c]:.2f}" for c in ("minmax", "percentile", "mse", "kl"))
        print(f"| {m} | {100 * fp:.2f} | W{b}A{b} | {cells} | {best} | {100 * (fp - q[best]):.2f} |")
PY
