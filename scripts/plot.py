#!/usr/bin/env python3
"""Renders `shardwise simulate --json` studies as PNG: speedup curves (with the Amdahl fit, the
cost model with a communication term, and the ideal line), per-iteration time breakdowns (compute / communication / waiting), and
loss-gap-versus-virtual-time curves.

    python3 scripts/plot.py --out plots study1.json study2.json …

Each JSON file is one study (one line on the speedup plot, labelled by its file name or by
--label NAME=FILE). Writes speedup.png, breakdown-<study>.png and loss-<study>.png.
"""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path) as f:
        return json.load(f)


def num(x):
    if isinstance(x, str):
        return float(x)  # "nan", "inf"
    return x


def label_of(path, study):
    name = os.path.splitext(os.path.basename(path))[0]
    return name


def speedup_plot(studies, out):
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    top = 1
    for name, s in studies:
        pts = s["points"]
        m = [p["nodes"] for p in pts]
        sp = [num(p["speedup"]) for p in pts]
        top = max(top, max(m))
        line, = ax.plot(m, sp, "o-", label=name)
        fit = s.get("amdahl")
        if fit:
            p = fit["serialFraction"]
            xs = [2 ** (i / 8) for i in range(0, int(8 * math.log2(max(m))) + 1)]
            ax.plot(xs, [1 / (p + (1 - p) / x) for x in xs], "--", color=line.get_color(), alpha=0.6,
                    label=f"  Amdahl fit p = {p:.4f}")
        cost = s.get("scalingModel")
        if cost:
            # T(m) = a + b/m + c·(m − 1) + d·log₂ m, drawn as the speedup T(1)/T(m) it implies.
            a, b, c, d = (cost["serial"], cost["parallel"], cost["communicationPerNode"], cost["communicationPerLevel"])
            t = lambda x: a + b / x + c * (x - 1) + d * math.log2(x)
            xs = [2 ** (i / 8) for i in range(0, int(8 * math.log2(max(m))) + 1)]
            best = cost.get("fastestNodes")
            ax.plot(xs, [t(1) / t(x) for x in xs], "-.", color=line.get_color(), alpha=0.8,
                    label=f"  cost model a + b/m + c(m−1){' + d·log₂m' if cost.get('includesLogTerm') else ''}"
                          + (f", fastest at m = {best}" if best else ""))
    ax.plot([1, top], [1, top], ":", color="grey", label="ideal")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("nodes m")
    ax.set_ylabel("speedup T(1) / T(m)")
    basis = studies[0][1].get("basis", "")
    ax.set_title(f"Speedup (virtual time, {basis})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out, "speedup.png")
    fig.savefig(path)
    plt.close(fig)
    return path


def breakdown_plot(name, s, out):
    pts = s["points"]
    labels = [str(p["nodes"]) for p in pts]
    to_ms = 1e3
    comp = [num(p["computePerIteration"]) * to_ms for p in pts]
    comm = [num(p["communicationPerIteration"]) * to_ms for p in pts]
    wait = [num(p["waitingPerIteration"]) * to_ms for p in pts]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    x = range(len(pts))
    ax.bar(x, comp, label="compute", color="#4C72B0")
    ax.bar(x, comm, bottom=comp, label="communication", color="#DD8452")
    ax.bar(x, wait, bottom=[a + b for a, b in zip(comp, comm)], label="waiting", color="#C44E52")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels)
    ax.set_xlabel("nodes m")
    ax.set_ylabel("virtual ms per iteration (mean over nodes)")
    ax.set_title(f"Time per iteration — {name}")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out, f"breakdown-{name}.png")
    fig.savefig(path)
    plt.close(fig)
    return path


def loss_plot(name, s, out):
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    drew = False
    for p in s["points"]:
        curve = p.get("lossCurve") or []
        xs, ys = [], []
        for c in curve:
            gap = c.get("lossGap")
            y = num(gap) if gap is not None else num(c["loss"])
            if y is not None and y > 0 and math.isfinite(y):
                xs.append(num(c["time"]) * 1e3)
                ys.append(y)
        if xs:
            ax.plot(xs, ys, label=f"m = {p['nodes']}", linewidth=1.2)
            drew = True
    if not drew:
        plt.close(fig)
        return None
    ax.set_yscale("log")
    ax.set_xlabel("virtual time (ms)")
    ax.set_ylabel("L(w) − L(w*)")
    ax.set_title(f"Loss gap vs time — {name}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = os.path.join(out, f"loss-{name}.png")
    fig.savefig(path)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="plots", help="output directory")
    ap.add_argument("studies", nargs="+", help="JSON files written by shardwise simulate --json")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    studies = []
    for path in args.studies:
        try:
            studies.append((label_of(path, None), load(path)))
        except (OSError, ValueError) as e:
            sys.exit(f"plot.py: cannot read {path}: {e}")
    written = [speedup_plot(studies, args.out)]
    for name, s in studies:
        written.append(breakdown_plot(name, s, args.out))
        lp = loss_plot(name, s, args.out)
        if lp:
            written.append(lp)
    for w in written:
        print(w)


if __name__ == "__main__":
    main()
