#!/usr/bin/python3
"""Tables from the runs of scripts/mixedprec_runs.sh.

    scripts/mixedprec_table.py DIR [--metric ppl|kld_mean]

bpw: bits per weight of the block linears with f16 scale and zero per group
(ours) and with HQQ's 8-bit meta-quantized scale and zero (paper's accounting).
Memory: the change of the linears' bytes (HQQ accounting, docs/methods.md §3.5) and
of the whole model as the plan stores it (embeddings and head in f32).
"""
import argparse
import glob
import json
import os
import statistics


def load(d):
    runs = {}
    for f in glob.glob(os.path.join(d, "*.json")):
        if f.endswith(".plan.json"):
            continue
        name = os.path.basename(f)[:-5]
        runs[name] = (json.load(open(f)), json.load(open(f[:-5] + ".plan.json")))
    return runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--metric", default="ppl")
    a = ap.parse_args()
    runs = load(a.dir)
    met = a.metric
    val = lambda r: r[0]["eval"][met]
    bpw = lambda r: r[0]["hqq_bits_per_weight"]
    any_run = next(iter(runs.values()))
    print(f"fp32: ppl {any_run[0]['fp32_ppl']:.4f} ({any_run[0]['eval']['tokens']} tokens)\n")

    print(f"| uniform HQQ | bpw (ours) | bpw (HQQ) | model bytes | {met} |")
    print("|---|---|---|---|---|")
    for b in (2, 3, 4, 8):
        for g in (128, 64, 32):
            r = runs.get(f"hqq-b{b}g{g}")
            if r:
                print(f"| b{b}g{g} | {bpw(r)['fp16_params']:.3f} | {bpw(r)['hqq_meta8']:.3f} | "
                      f"{r[0]['model_bytes']} | {val(r):.4f} |")

    print(f"\n| boost | rule | boosted (module: layers) | bpw (ours) | linears +% (HQQ) | model +% | {met} | "
          f"vs base | random (mean ± sd, n) | flagged − random |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for f in ("kurt", "sensi"):
        for b, base in ((4, "b4g64"), (3, "b3g128")):
            for stop in (2, 3):
                name = f"{f}-w{b}-stop{stop}"
                r, u = runs.get(name), runs.get(f"hqq-{base}")
                if not r or not u:
                    continue
                note = r[1]["notes"]["boost"]
                boosted = "; ".join(f"{k}: {v['boosted']}" for k, v in note["modules"].items() if v["boosted"]) or "none"
                lin = bpw(r)["hqq_meta8"] / bpw(u)["hqq_meta8"] - 1  # same parameters: the bytes' ratio
                model = r[0]["model_bytes"] / u[0]["model_bytes"] - 1
                rnd = [val(v) for k, v in runs.items() if k.startswith(name + "-random")]
                rs = f"{statistics.mean(rnd):.4f} ± {statistics.stdev(rnd):.4f} ({len(rnd)})" if len(rnd) > 1 else "–"
                diff = f"{val(r) - statistics.mean(rnd):+.4f}" if len(rnd) > 1 else "–"
                rule = "robust" if "robust" in note["rule"] else "trimmed"
                print(f"| {f}boost {base} stop {stop} ({note['boosted_rung']}) | {rule} | {boosted} | "
                      f"{bpw(r)['fp16_params']:.3f} | {100 * lin:+.1f} | {100 * model:+.1f} | {val(r):.4f} | "
                      f"{100 * (val(r) / val(u) - 1):+.2f} % | {rs} | {diff} |")

    print(f"\n| budget (bpw) | achieved bpw (ours) | bpw (HQQ) | rungs used | est. error | {met} |")
    print("|---|---|---|---|---|---|")
    for name in sorted((k for k in runs if k.startswith("budget-")), key=lambda k: float(k[7:])):
        r = runs[name]
        note = r[1]["notes"]["budget"]
        rungs = r[1]["notes"]["hqq"]["rungs"]
        used = ", ".join(f"{k}×{v}" for k, v in sorted(rungs.items()))
        print(f"| {name[7:]} | {note['bits_per_weight']:.3f} | {bpw(r)['hqq_meta8']:.3f} | {used} | "
              f"{note['error']:.4g} | {val(r):.4f} |")


if __name__ == "__main__":
    main()
