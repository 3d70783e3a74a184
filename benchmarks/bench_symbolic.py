"""The symbolic engine's speed (issue 10). Run: python benchmarks/bench_symbolic.py [--runs N]

For every zoo spec whose input is [C, H, W] with H and W symbols: the time to load it with H, W
free and analyze it (the closed forms of every row and total), then to render its JSON document
(the closed forms printed), the best of N runs each, slowest first; beside it the concrete
analysis of the same spec for scale. The target: under 1 second per spec on the project machine.
Not a test: nothing here fails on timing.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archcalc import analyze, load
from archcalc.spec import zoo  # noqa: E402
from archcalc.output.report import to_dict  # noqa: E402


def best(fn, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    names = [n for n in zoo.names() if {"H", "W"} <= set(load(n).values)]
    rows = []
    for name in names:
        sym = best(lambda: analyze(load(name, free=("H", "W"))), args.runs)
        report = analyze(load(name, free=("H", "W")))
        render = best(lambda: to_dict(report), 1)  # printing is cached after the first run
        conc = best(lambda: analyze(load(name)), args.runs)
        rows.append((sym + render, sym, render, conc, name))
    rows.sort(reverse=True)
    print(f"{len(rows)} zoo specs with H, W symbolic; best of {args.runs} runs (seconds)")
    print(f"{'spec':32s} {'total':>7s} {'analyze':>8s} {'render':>7s} {'concrete':>9s}")
    for total, sym, render, conc, name in rows:
        print(f"{name:32s} {total:7.3f} {sym:8.3f} {render:7.3f} {conc:9.3f}")
    over = [r for r in rows if r[0] >= 1.0]
    print(f"slowest {rows[0][0]:.3f} s ({rows[0][4]}); {len(over)} of {len(rows)} at or over 1 s")


if __name__ == "__main__":
    main()
