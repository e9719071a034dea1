#!/usr/bin/env bash
# W/A methods on stories260K and on its outlier-stress variant (tquant stress: 4 channels x 30
# per layer at qkv_in, up_in and down_in, the same float function): OutlierTune as the paper
# has it and as the recipe has it, RepQuant, and RepQuant after OutlierTune's down_in
# smoothing and k balance. Calibration: the last 10 % (128 lines); evaluation: the first 400
# lines of the first 90 %. Prints one Markdown row per recipe. Needs ../shared, ./build/tquant.
#   scripts/stress_wa_tables.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/tquant-stress-wa}
S=../shared
TQ=./build/tquant
D=$S/data/tinystories/tinystories_valid_head.txt
CALIB="$D?from=0.9&limit=128"
EVAL="$D?to=0.9&limit=400"
export OMP_WAIT_POLICY=passive
mkdir -p "$OUT"
"$TQ" stress $S/models/stories260K/stories260K.gguf -o "$OUT/stress.gguf" > /dev/null
echo '{"name": "smoothed-repquant", "passes": [{"pass": "step_fold", "fold_sites": "down_in,k"},
  {"recipe": "w8a8-repquant"}]}' > "$OUT/smoothed-repquant.json"
PAPER="--set fold_sites=qkv_in,up_in --set a_gran=token --set qkv_scheme=same"
row() {  # row LABEL ARGS...: PPL and change on both models
  local label=$1 cells="" fp q
  shift
  for model in $S/models/stories260K/stories260K.gguf "$OUT/stress.gguf"; do
    "$TQ" quantize "$model" "$@" --calib "$CALIB" --eval "$EVAL" -o "$OUT/q" --json "$OUT/f.json" 2> /dev/null
    read -r fp q < <(python3 -c "import json; f = json.load(open('$OUT/f.json'))['eval']; print(f['ref_ppl'], f['ppl'])")
    cells+=$(python3 -c "print(f' {$q:.4f} ({($q / $fp - 1) * 100:+.2f} %) |')")
  done
  echo "| $label |$cells"
}
echo "| recipe | stories260K (fp32 4.2316) | stress variant (fp32 4.2316) |"
echo "| --- | --- | --- |"
for b in 8 6; do
  row "W${b}A${b} OutlierTune, the paper's (\`w${b}a${b}-outliertune $PAPER\`)" --recipe w${b}a${b}-outliertune $PAPER
  row "W${b}A${b} OutlierTune (\`w${b}a${b}-outliertune\`)" --recipe w${b}a${b}-outliertune
done
row "W8A8 RepQuant (\`w8a8-repquant\`)" --recipe w8a8-repquant
row "W8A8 RepQuant after the down_in smoothing and k balance (\`$OUT/smoothed-repquant.json\`)" --recipe "$OUT/smoothed-repquant.json"
rm -rf "$OUT/q"
