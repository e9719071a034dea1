#!/bin/bash
# Issue 15 table: tquant GGUF files of stories260K at the size of each of llama.cpp's own
# files (../shared/golden/llama.cpp-quants), evaluated exactly as that folder's README does.
#   bash scripts/gguf_tables.sh > gguf_table.md      (KEEP=DIR also keeps the four tquant files there)
# auto-gguf at --max-bytes of each golden file (calibrated on the last 10 % of the lines, first
# 128), exported with tquant export --gguf, then tquant eval on the first 90 % (30 windows of 256).
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
G=../shared/golden/llama.cpp-quants
S=../shared/models/stories260K/stories260K.gguf
T=../shared/data/tinystories/tinystories_valid_head.txt
eval_kld() {  # FILE -> "PPL KLD top1"
  ./build/tquant eval "$1" --data "$T?to=0.9" --protocol chunks --ctx 256 --limit 30 --compare $S --json $tmp/e.json \
    >/dev/null 2>&1
  python3 -c "import json; e=json.load(open('$tmp/e.json')); print('%.4f %.5f %.2f' % (e['ppl'], e['kld_mean'], 100*e['top1_agree']))"
}
echo "| size of | llama.cpp bytes | llama.cpp PPL | llama.cpp KLD | tquant bytes | tquant PPL | tquant KLD | tquant top-1 | allocator s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for F in Q4_0-imatrix Q4_1-imatrix Q5_0-imatrix Q8_0; do
  N=$(stat -c %s $G/stories260K-$F.gguf)
  read lp lk lt <<<"$(eval_kld $G/stories260K-$F.gguf)"
  ./build/tquant quantize $S --recipe auto-gguf --max-bytes $N --calib "$T?from=0.9&limit=128" -o $tmp/q \
    --json $tmp/q.json 2>/dev/null
  ./build/tquant export $tmp/q --gguf $tmp/q.gguf >/dev/null
  [ -n "$KEEP" ] && cp $tmp/q.gguf "$KEEP/tquant-size-of-$F.gguf"
  read tp tk tt <<<"$(eval_kld $tmp/q.gguf)"
  secs=$(python3 -c "import json; print('%.1f' % json.load(open('$tmp/q.json'))['quantize_seconds'])")
  echo "| $F | $N | $lp | $lk | $(stat -c %s $tmp/q.gguf) | $tp | $tk | $tt % | $secs |"
done

# What each part gives, at the size of llama.cpp's Q4_0 + imatrix file.
N=$(stat -c %s $G/stories260K-Q4_0-imatrix.gguf)
echo
echo "| Q4_0-imatrix size ($N bytes) | bytes | PPL | KLD | top-1 |"
echo "| --- | --- | --- | --- | --- |"
for F in Q4_0 Q4_0-imatrix; do
  read p k t <<<"$(eval_kld $G/stories260K-$F.gguf)"
  echo "| llama.cpp $F | $(stat -c %s $G/stories260K-$F.gguf) | $p | $k | $t % |"
done
ablate() {  # LABEL RECIPE [args]
  ./build/tquant quantize $S --recipe $2 --calib "$T?from=0.9&limit=128" -o $tmp/q "${@:3}" 2>/dev/null
  ./build/tquant export $tmp/q --gguf $tmp/q.gguf >/dev/null
  read p k t <<<"$(eval_kld $tmp/q.gguf)"
  echo "| $1 | $(stat -c %s $tmp/q.gguf) | $p | $k | $t % |"
}
ablate "tquant gguf-Q4_0-ref (ggml's reference encoders, llama.cpp's types)" gguf-Q4_0-ref
ablate "tquant gguf-Q4_0, scale search only (rtn, no AWQ)" gguf-Q4_0 --set method=rtn --set awq=false
ablate "tquant gguf-Q4_0, scale search + GPTQ (no AWQ)" gguf-Q4_0 --set awq=false
ablate "tquant gguf-Q4_0 (scale search, GPTQ, AWQ)" gguf-Q4_0
ablate "tquant auto-gguf, rtn only, no AWQ" auto-gguf --max-bytes $N --set method=rtn --set awq=false
ablate "tquant auto-gguf, no AWQ" auto-gguf --max-bytes $N --set awq=false
ablate "tquant auto-gguf" auto-gguf --max-bytes $N
