#!/usr/bin/env bash
# The main job on the bundled demo model (models/demo): measure the float model,
# quantize it two ways, measure what was lost, generate with the quantized
# model and export the weight-only one for llama.cpp. Needs only this
# repository. Outputs land in out/demo/ (override: DEMO_OUT=DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
tq=./build/tquant
model=${DEMO_MODEL:-models/demo/stories-demo.gguf}
text=models/demo/sample.txt
out=${DEMO_OUT:-out/demo}
mkdir -p "$out"
# First half of the sample calibrates, second half evaluates (never the same text).
calib="$text?to=0.5"
heldout="$text?from=0.5"

step() { printf '\n== %s\n' "$*"; }

step "the model"
$tq inspect "$model" | awk "NR <= 12"

step "fp32 perplexity on held-out text"
$tq eval "$model" --data "$heldout"

step "W8A8 OutlierTune (8-bit weights and activations, dequantization folded into the weights)"
$tq quantize "$model" --recipe w8a8-outliertune --calib "$calib" --eval "$heldout" \
  -o "$out/w8a8-outliertune" --report "$out/report-w8a8"
$tq eval "$out/w8a8-outliertune" --data "$heldout" --compare "$model"

step "W4 weight-only HQQ, groups of 64"
$tq quantize "$model" --recipe w4-hqq-g64 --calib "$calib" --eval "$heldout" -o "$out/w4-hqq-g64"
$tq eval "$out/w4-hqq-g64" --data "$heldout" --compare "$model"

step "generate with the W8A8 model"
$tq run "$out/w8a8-outliertune" -p "Once upon a time" -n 64 --seed 1

step "export the W4 model as GGUF for llama.cpp, and evaluate the file"
$tq export "$out/w4-hqq-g64" --gguf "$out/w4-hqq-g64.gguf" --json "$out/w4-hqq-g64.export.json" | awk "NR <= 3"
$tq eval "$out/w4-hqq-g64.gguf" --data "$heldout" --compare "$model"

printf '\nreport: %s\n' "$out/report-w8a8/report.html"
