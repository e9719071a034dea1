#!/usr/bin/env bash
# Issue 6 tables: fp32, per-tensor RTN with the best calibrator, the RepQ-ViT variant
# (wXaY-repqvit: no learning), RepQuant without reconstruction (--set recon_steps=0) and
# full RepQuant (wXaY-repquant) at W8A8, W6A6, W4A8 and W4A4 on stories260K (PPL, KLD) and the two
# MNIST ViTs (accuracy), docs/methods.md §0.5 splits. The RTN rows quantize qkv_in, o_in,
# up_in, down_in, q, k, v and the head (weights per-row symmetric, activations
# per-tensor static; probs float); the RepQuant rows quantize the same plus probs
# (log√2), weights per-row asymmetric, and on the LM o_in, down_in, q, k, v per token
# (docs/methods.md §1.2). The full recipe's quantization time and peak memory come from
# /usr/bin/time. Usage:
#   scripts/repquant_tables.sh [OUT_DIR] [MODEL...]   MODEL: stories vit-sonjuhy vit-agentzz1
# Environment: EVAL_LIMIT=N evaluates only the first N items of the evaluation split
# (default: all); CLIP_STEPS=N and RECON_STEPS=N override the clipping and reconstruction
# steps per block (default: the recipe's 500 and 2000).
# Writes one JSON per run into OUT_DIR (default /tmp/tquant-rq-tables) and the tables as
# Markdown to stdout. Needs ../shared and a built ./build/tquant.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/tquant-rq-tables}
shift || true
MODELS=${*:-stories vit-sonjuhy vit-agentzz1}
S=../shared
TQ=./build/tquant
LIMIT=${EVAL_LIMIT:+&limit=$EVAL_LIMIT}
CLIP=${CLIP_STEPS:+--set clip_steps=$CLIP_STEPS}
RECON=${RECON_STEPS:+--set recon_steps=$RECON_STEPS}
export OMP_WAIT_POLICY=passive  # no spinning threads on a shared machine; results do not depend on it
mkdir -p "$OUT"

run() {  # run MODEL_KEY BITS ROW_NAME ARGS...
  local key=$1 b=$2 row=$3
  shift 3
  local json="$OUT/$key-$b-$row.json"
  [ -s "$json" ] && return 0
  /usr/bin/time -f '%e s wall, %M KiB peak RSS' -o "$OUT/$key-$b-$row.time" \
    "$TQ" quantize "$MODEL" "$@" --calib "$CALIB" --eval "$EVAL" -o "$OUT/q" --json "$json" 2> "$OUT/$key-$b-$row.log"
}

for key in $MODELS; do
  case $key in
    stories)
      MODEL=$S/models/stories260K/stories260K.gguf
      CALIB="$S/data/tinystories/tinystories_valid_head.txt?from=0.9&limit=128"
      EVAL="$S/data/tinystories/tinystories_valid_head.txt?to=0.9$LIMIT" ;;
    vit-sonjuhy | vit-agentzz1)
      [ $key = vit-sonjuhy ] && MODEL=$S/models/vit-mnist-sonjuhy || MODEL=$S/models/vit-mnist-tiny-agentzz1
      CALIB="mnist:$S/data/mnist?from=0.9&limit=32"
      EVAL="mnist:$S/data/mnist?to=0.9$LIMIT" ;;
    *) echo "unknown model $key" >&2; exit 2 ;;
  esac
  for b in w8a8 w6a6 w4a8 w4a4; do
    for c in minmax percentile mse kl pmse; do
      run $key $b rtn-$c --recipe $b-rtn --set sites=qkv_in,o_in,up_in,down_in,q,k,v,head_in --calibrator $c
    done
    run $key $b repqvit --recipe $b-repqvit
    run $key $b repquant-norecon --recipe $b-repquant $CLIP --set recon_steps=0
    run $key $b repquant --recipe $b-repquant $CLIP $RECON
  done
done
rm -rf "$OUT/q"

/usr/bin/python3 - "$OUT" $MODELS <<'EOF'
import json, os, sys
out, models = sys.argv[1], sys.argv[2:]
cals = ["minmax", "percentile", "mse", "kl", "pmse"]
def load(key, b, row):
    f = f"{out}/{key}-{b}-{row}.json"
    return json.load(open(f)) if os.path.exists(f) else None
for key in models:
    print(f"\n### {key}\n")
    lm = None
    for b in ("w8a8", "w6a6", "w4a8", "w4a4"):
        rtn = {c: load(key, b, "rtn-" + c) for c in cals}
        rtn = {c: j for c, j in rtn.items() if j}
        rows = []
        if rtn:
            c, j = min(rtn.items(), key=lambda cj: cj[1]["eval"]["kld_mean"])
            rows.append((f"RTN per-tensor ({c}, best KLD of {len(rtn)})", j))
        for row, name in (("repqvit", "RepQ-ViT variant"), ("repquant-norecon", "RepQuant without reconstruction"),
                          ("repquant", "RepQuant")):
            j = load(key, b, row)
            if j: rows.append((name, j))
        if not rows: continue
        if lm is None:
            lm = "ppl" in rows[0][1]["eval"]
            if lm:
                print("| W/A | method | PPL | ΔPPL | KLD | top-1 agree |\n|---|---|---:|---:|---:|---:|")
                print(f"| 32/32 | fp32 | {rows[0][1]['fp32_ppl']:.4f} | | | |")
            else:
                print("| W/A | method | accuracy | Δ | KLD | top-1 agree |\n|---|---|---:|---:|---:|---:|")
                print(f"| 32/32 | fp32 | {100 * rows[0][1]['fp32_accuracy']:.2f} % | | | |")
        for name, j in rows:
            e, wa = j["eval"], b[1] + "/" + b[3]
            if lm:
                print(f"| {wa} | {name} | {e['ppl']:.4f} | {100 * (e['ppl'] / j['fp32_ppl'] - 1):+.2f} % | {e['kld_mean']:.4f} | {100 * e['top1_agree']:.2f} % |")
            else:
                print(f"| {wa} | {name} | {100 * e['accuracy']:.2f} % | {100 * (e['accuracy'] - j['fp32_accuracy']):+.2f} | {e['kld_mean']:.4f} | {100 * e['top1_agree']:.2f} % |")
    print("\nQuantization time and peak memory of the full recipe (the recipe alone; peak RSS after it, "
          "before evaluation; the whole command under /usr/bin/time):\n")
    for b in ("w8a8", "w6a6", "w4a8", "w4a4"):
        j, f = load(key, b, "repquant"), f"{out}/{key}-{b}-repquant.time"
        if j: print(f"- {b}-repquant: {j['quantize_seconds']:.1f} s, {j['peak_rss_bytes_after_quantize'] / 2**20:.0f} MiB"
                    f" (whole command: {open(f).read().strip() if os.path.exists(f) else '?'})")
EOF
