#!/usr/bin/env python3
"""Draws a training loss curve (the CSV of `tquant train --log`) as a small SVG.

usage: plot_loss.py loss.csv loss.svg
"""
import csv
import sys

W, H, L, R, T, B = 480, 260, 52, 16, 16, 40  # size and margins


def main(src, dst):
    rows = list(csv.DictReader(open(src)))
    steps = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    x0, x1 = 0, max(steps)
    y0, y1 = 0.0, max(loss)
    def px(s):
        return L + (s - x0) / (x1 - x0) * (W - L - R)
    def py(v):
        return T + (1 - (v - y0) / (y1 - y0)) * (H - T - B)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    for i in range(6):  # horizontal grid with loss labels
        v = y0 + (y1 - y0) * i / 5
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    for i in range(5):  # step labels
        s = x0 + (x1 - x0) * i / 4
        out.append(f'<text x="{px(s):.1f}" y="{H - B + 16}" text-anchor="middle">{int(s)}</text>')
    pts = " ".join(f"{px(s):.1f},{py(v):.1f}" for s, v in zip(steps, loss))
    out.append(f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="1.2"/>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 6}" text-anchor="middle">step</text>')
    out.append(f'<text x="14" y="{(T + H - B) / 2}" transform="rotate(-90 14 {(T + H - B) / 2})" '
               'text-anchor="middle">training loss (nats/token)</text>')
    out.append("</svg>")
    open(dst, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
