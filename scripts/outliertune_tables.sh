#!/usr/bin/env bash
# Issue 7 tables: fp32, per-tensor RTN (each calibrator), SmoothQuant (α 0.5 and
# searched), OutlierTune without symmetrization, OutlierTune (and clip 0.8) at
# W8A8 and W6A6 on stories260K and the two MNIST ViTs (docs/methods.md §0.5 splits).
# Every row quantizes the same sites: qkv_in, o_in, up_in, down_in, q, k, v
# (probs and the head stay float); the last row leaves q, k, v float to show
# what the attention operands cost. Usage:
#   scripts/outliertune_tables.sh [OUT_DIR] [MODEL...]   MODEL: stories vit-sonjuhy vit-agentzz1
# Writes one JSON per run into OUT_DIR (default /tmp/tquant-ot-tables) and the
# tables as Markdown to stdout. Needs ../shared and a built ./build/tquant.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/tquant-ot-tables}
shift || true
MODELS=${*:-stories vit-sonjuhy vit-agentzz1}
S=../shared
TQ=./build/tquant
export OMP_WAIT_POLICY=passive  # no spinning threads on a shared machine; results do not depend on it
mkdir -p "$OUT"

SITES="qkv_in,o_in,up_in,down_in,q,k,v"
run() {  # run MODEL_KEY BITS ROW_NAME ARGS...
  local key=$1 b=$2 row=$3
  shift 3
  local json="$OUT/$key-w${b}a${b}-$row.json"
  [ -s "$json" ] && return 0
  "$TQ" quantize "$MODEL" "$@" --calib "$CALIB" --eval "$EVAL" -o "$OUT/q" --json "$json" 2> "$OUT/$key-w${b}a${b}-$row.log"
}

for key in $MODELS; do
  case $key in
    stories)
      MODEL=$S/models/stories260K/stories260K.gguf
      CALIB="$S/data/tinystories/tinystories_valid_head.txt?from=0.9&limit=128"
      EVAL="$S/data/tinystories/tinystories_valid_head.txt?to=0.9" ;;
    vit-sonjuhy | vit-agentzz1)
      [ $key = vit-sonjuhy ] && MODEL=$S/models/vit-mnist-sonjuhy || MODEL=$S/models/vit-mnist-tiny-agentzz1
      CALIB="mnist:$S/data/mnist?from=0.9&limit=32"
      EVAL="mnist:$S/data/mnist?to=0.9" ;;
    *) echo "unknown model $key" >&2; exit 2 ;;
  esac
  for b in 8 6; do
    for c in minmax percentile mse kl; do
      run $key $b rtn-$c --recipe w${b}a${b}-rtn --set sites=$SITES --set head=false --calibrator $c
    done
    run $key $b smoothquant-a0.5 --recipe w${b}a${b}-smoothquant
    run $key $b smoothquant-search --recipe w${b}a${b}-smoothquant --set search=true
    run $key $b outliertune-nosym --recipe w${b}a${b}-outliertune --set symmetrize=false
    run $key $b outliertune --recipe w${b}a${b}-outliertune
    run $key $b outliertune-clip0.8 --recipe w${b}a${b}-outliertune --set clip=0.8
    # Attribution, not a method: the same with the attention operands q, k, v left in float.
    run $key $b outliertune-qkv-float --recipe w${b}a${b}-outliertune --set sites=o_in,down_in
  done
done
rm -rf "$OUT/q"

/usr/bin/python3 - "$OUT" $MODELS <<'EOF'
import glob, json, os, re, sys
out, models = sys.argv[1], sys.argv[2:]
rows = ["rtn-minmax", "rtn-percentile", "rtn-mse", "rtn-kl", "smoothquant-a0.5", "smoothquant-search",
        "outliertune-nosym", "outliertune", "outliertune-clip0.8", "outliertune-qkv-float"]
for key in models:
    for b in (8, 6):
        runs = {r: json.load(open(f"{out}/{key}-w{b}a{b}-{r}.json")) for r in rows
                if os.path.exists(f"{out}/{key}-w{b}a{b}-{r}.json")}
        if not runs: continue
        any_run = next(iter(runs.values()))
        lm = "ppl" in any_run["eval"]
        print(f"\n### {key} W{b}A{b}\n")
        if lm:
            print("| method | PPL | ΔPPL | KLD | top-1 agree | clamped |\n|---|---:|---:|---:|---:|---:|")
            print(f"| fp32 | {any_run['fp32_ppl']:.4f} | | | | |")
        else:
            print("| method | accuracy | Δ | KLD | top-1 agree | clamped |\n|---|---:|---:|---:|---:|---:|")
            print(f"| fp32 | {100 * any_run['fp32_accuracy']:.2f} % | | | | |")
        for r, j in runs.items():
            e, name = j["eval"], r
            if r == "smoothquant-search":
                log = open(f"{out}/{key}-w{b}a{b}-{r}.log").read()
                scores = re.findall(r"alpha ([0-9.]+): calibration KLD ([0-9.]+)", log)
                best = min(scores, key=lambda s: float(s[1]))[0] if scores else "?"
                name = f"smoothquant (searched α = {best})"
            if lm:
                d = 100 * (e["ppl"] / j["fp32_ppl"] - 1)
                print(f"| {name} | {e['ppl']:.4f} | {d:+.2f} % | {e['kld_mean']:.4f} | {100 * e['top1_agree']:.2f} % | {j['saturated']} |")
            else:
                d = 100 * (e["accuracy"] - j["fp32_accuracy"])
                print(f"| {name} | {100 * e['accuracy']:.2f} % | {d:+.2f} | {e['kld_mean']:.4f} | {100 * e['top1_agree']:.2f} % | {j['saturated']} |")
EOF
