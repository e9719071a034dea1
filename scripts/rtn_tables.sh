#!/bin/bash
# Issue 3 table: every RTN recipe with every calibrator on stories260K.
#   bash scripts/rtn_tables.sh > rtn_table.md
# stories260K: each built-in recipe x each calibrator, calibrated on the last 10 % (first 128 lines), evaluated on the first 90 %.
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
S=../shared/models/stories260K/stories260K.gguf
T=../shared/data/tinystories/tinystories_valid_head.txt
echo "| recipe | calibrator | PPL | ΔPPL % | KLD mean | KLD p99 | top-1 | bits/weight | clamped |"
echo "|---|---|---|---|---|---|---|---|---|"
for R in w8a8-rtn w7a7-rtn w6a6-rtn w4a8-rtn w4a16-g64-rtn; do
  for C in minmax percentile mse kl; do
    if [ $R = w4a16-g64-rtn ] && [ $C != minmax ]; then continue; fi
    TQ_QUIET=1 ./build/tquant quantize $S --recipe $R --calibrator $C --calib "$T?from=0.9&limit=128" --eval "$T?to=0.9" -o $tmp/q --json $tmp/t.json 2>/dev/null
    python3 -c "
import json; j=json.load(open('$tmp/t.json')); e=j['eval']
print('| $R | $C | %.4f | %+.2f | %.5f | %.5f | %.4f | %.2f | %d |' % (e['ppl'], 100*(e['ppl']/j['fp32_ppl']-1), e['kld_mean'], e['kld_p99'], e['top1_agree'], j['bits_per_weight'], j['saturated']))"
  done
done
