#!/bin/bash
# Issue 15 stress table: outlier-stress variants of stories260K (tquant stress: N channels per
# layer and site scaled by F at qkv_in, up_in, down_in; the same float function), quantized
# the way llama-quantize does (gguf-TYPE-ref: ggml's reference encoders, llama.cpp's type rules)
# and by auto-gguf at the size of llama.cpp's Q8_0 and Q4_1 files of the original model.
# Evaluated as ../shared/golden/llama.cpp-quants/README.md says.
#   bash scripts/gguf_stress_tables.sh > stress_table.md
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
G=../shared/golden/llama.cpp-quants
S=../shared/models/stories260K/stories260K.gguf
T=../shared/data/tinystories/tinystories_valid_head.txt
C="$T?from=0.9&limit=128"
fp=3.7848  # the float model's PPL on this protocol (the golden README)
row() {  # LABEL FILE
  ./build/tquant eval "$2" --data "$T?to=0.9" --protocol chunks --ctx 256 --limit 30 --compare $S --json $tmp/e.json \
    >/dev/null 2>&1
  python3 -c "
import json; e=json.load(open('$tmp/e.json'))
print('| $1 | %d | %.4f | %+.2f %% | %.5f |' % ($(stat -c %s "$2"), e['ppl'], 100*(e['ppl']/$fp-1), e['kld_mean']))"
}
quant() {  # MODEL RECIPE OUT [args]
  ./build/tquant quantize "$1" --recipe $2 --calib "$C" -o $tmp/q "${@:4}" 2>/dev/null &&
    ./build/tquant export $tmp/q --gguf "$3" >/dev/null
}
for V in "2 200" "4 30"; do
  set -- $V
  ./build/tquant stress $S -o $tmp/s.gguf --channels $1 --factor $2 --seed 1 2>/dev/null
  echo
  echo "Stress: $1 channels x $2 per layer at qkv_in, up_in and down_in (seed 1)"
  echo
  echo "| file | bytes | PPL | ΔPPL | KLD |"
  echo "| --- | --- | --- | --- | --- |"
  row "stress variant, F32" $tmp/s.gguf
  for R in Q8_0 Q4_1 Q4_0; do
    quant $tmp/s.gguf gguf-$R-ref $tmp/r.gguf && row "llama.cpp-like $R (gguf-$R-ref)" $tmp/r.gguf
  done
  for F in Q8_0 Q4_1 Q4_1-imatrix; do
    N=$(stat -c %s $G/stories260K-$F.gguf)
    quant $tmp/s.gguf auto-gguf $tmp/a.gguf --max-bytes $N && row "tquant auto-gguf, size of llama.cpp $F" $tmp/a.gguf
    quant $tmp/s.gguf auto-gguf $tmp/a.gguf --max-bytes $N --set awq=false &&
      row "tquant auto-gguf without AWQ, size of $F" $tmp/a.gguf
  done
done
