#!/usr/bin/env bash
# Runs each parser fuzzer for a bounded time, seeded with small files the
# project writes itself (tests/io/test_fuzz_seeds.cpp).
set -uo pipefail
build=$1 seconds=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/gguf" "$work/safetensors" "$work/seeds"
TQ_FUZZ_SEEDS="$work/seeds" build/tquant_tests --gtest_filter='FuzzSeeds.*' >/dev/null || exit 1
cp "$work"/seeds/*.gguf "$work/gguf/"
cp "$work"/seeds/*.safetensors "$work/safetensors/"
status=0
for t in gguf safetensors; do
  "$build/fuzz_$t" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work/$t" >"$work/log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/log" | grep -o '[0-9]*$')
  echo "fuzz_$t: ${seconds}s, ${runs:-?} inputs, exit $rc"
  if [ $rc -ne 0 ]; then tail -40 "$work/log"; status=1; fi
done
exit $status
