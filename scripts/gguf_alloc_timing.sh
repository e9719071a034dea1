#!/bin/bash
# Issue 15: how the auto-gguf allocator's time grows with the model. The generated LLaMA of
# scripts/make_deep_llama.py (dim 128, hidden 352) at 6, 12, 24 and 48 layers, and stories260K,
# each allocated at 8 bits per parameter (stories260K cannot go much lower: its ffn_down rows of 172 stay F16) on the same calibration lines (the last 10 % of the
# TinyStories head, first 128). Prints parameters, seconds and seconds per million parameters.
#   bash scripts/gguf_alloc_timing.sh        (needs python3-numpy for the generated models)
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
T=../shared/data/tinystories/tinystories_valid_head.txt
echo "| model | parameters | auto-gguf s | s per M parameters | peak RSS MiB |"
echo "| --- | --- | --- | --- | --- |"
run() {  # NAME MODEL
  ./build/tquant quantize "$2" --recipe auto-gguf --max-bpw 8 --calib "$T?from=0.9&limit=128" -o $tmp/q \
    --json $tmp/q.json 2>$tmp/log || { tail -1 $tmp/log; return; }
  n=$(./build/tquant inspect "$2" --json - | python3 -c "import json,sys; print(json.load(sys.stdin)['parameters'])")
  python3 -c "
import json; j=json.load(open('$tmp/q.json')); s=j['quantize_seconds']
print('| $1 | $n | %.1f | %.2f | %.0f |' % (s, s / ($n / 1e6), j['peak_rss_bytes_after_quantize'] / 2**20))"
}
run stories260K ../shared/models/stories260K/stories260K.gguf
for L in 6 12 24 48; do
  /usr/bin/python3 scripts/make_deep_llama.py $tmp/deep$L.gguf --layers $L
  run "generated, $L layers" $tmp/deep$L.gguf
done
