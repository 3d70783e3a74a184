"""The backend rule against the GPU table: every row of docs/verify.md's "Peak memory on a GPU"
table (or a benchmarks/gpu_memory.py JSON) beside the engine's estimates for the cudnn and native
backends (archcalc.analysis.liveness.totals), with the counts of issue 26's goals.

    PYTHONPATH=. python benchmarks/memory_rule.py                    # Markdown for docs/memory.md
    PYTHONPATH=. python benchmarks/memory_rule.py --json OUT/gpu_memory.json   # a new run's data
    PYTHONPATH=. python benchmarks/memory_rule.py --check            # exit 1 if a goal is missed

The measured columns are read, never recomputed: no GPU and no torch needed. Goals (issue 26), over
the specs at batch 32: inference within 5% of the measured peak on at least 90% of them and never
more than 5% below it; training within 3% on at least 90% and never more than 3% below.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TABLE = ROOT / "docs" / "verify.md"
GOALS = {"inference": 0.05, "training": 0.03}


def _int(text):
    return int(text.replace(",", "").strip())


def read_table(path: Path = TABLE) -> list[dict]:
    """The rows of the GPU table in docs/verify.md: spec, batch, training batch, and the measured
    peaks with and without cuDNN (the estimates in the table are the engine's at the time: not read)."""
    rows = []
    pat = re.compile(r"^\| `([^`]+)` \| (\d+)(?: \((\d+) in training\))? \|(.*)\|\s*$")
    for line in path.read_text().splitlines():
        m = pat.match(line)
        if not m:
            continue
        cells = [c.strip() for c in m.group(4).split("|")]
        if len(cells) != 10:
            continue
        batch = int(m.group(2))
        rows.append({"spec": m.group(1), "batch": batch, "train_batch": int(m.group(3) or batch),
                     "inference_measured": _int(cells[1]), "inference_measured_without_cudnn": _int(cells[3]),
                     "train_measured": _int(cells[6]), "train_measured_without_cudnn": _int(cells[8])})
    return rows


def read_json(path: Path) -> list[dict]:
    doc = json.loads(path.read_text())
    return [r for r in doc["rows"] if "inference_measured_without_cudnn" in r]


def estimates(rows: list[dict]) -> list[dict]:
    """Each row with the engine's estimates: per backend, inference at the batch and training at
    the training batch (the figures ``archcalc summary NAME --batch B --backend X`` prints)."""
    from archcalc import analyze, load
    from archcalc.analysis.liveness import totals

    out = []
    reports = {}
    for r in rows:
        net = reports.get(r["spec"]) or reports.setdefault(r["spec"], load(r["spec"]))
        rep = analyze(net, batch=r["batch"])
        row = dict(r)
        for backend, suffix in (("cudnn", ""), ("native", "_without_cudnn")):
            inf = totals(rep, r["batch"], backend)
            tr = totals(rep, r["train_batch"], backend)
            row[f"inference_estimate{suffix}"] = inf["inference_peak_bytes"]
            row[f"train_estimate{suffix}"] = tr["train_peak_bytes"]
        live = totals(rep, r["batch"], "cpu")
        row["inference_live"] = live["inference_peak_bytes"]
        row["train_live"] = totals(rep, r["train_batch"], "cpu")["train_peak_bytes"]
        out.append(row)
    return out


def score(rows, what, suffix, tol):
    """(within tol, more than tol below the measurement, n, worst ratio estimate/measured) over rows."""
    est, got = ("inference_estimate", "inference_measured") if what == "inference" else ("train_estimate", "train_measured")
    within = below = 0
    worst = None
    for r in rows:
        ratio = r[est + suffix] / r[got + suffix]
        within += abs(ratio - 1) <= tol
        below += ratio < 1 - tol
        worst = ratio if worst is None or ratio < worst else worst
    return within, below, len(rows), worst


def summary(rows) -> tuple[list[str], bool]:
    lines = ["| batch | backend | inference within 5% | more than 5% below | byte for byte | training within 3% | "
             "more than 3% below |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    ok = True
    for b in sorted({r["batch"] for r in rows}):
        at = [r for r in rows if r["batch"] == b]
        for backend, suffix in (("cudnn", ""), ("native", "_without_cudnn")):
            i5, ib, n, _ = score(at, "inference", suffix, GOALS["inference"])
            t3, tb, _, _ = score(at, "training", suffix, GOALS["training"])
            exact = sum(r["inference_estimate" + suffix] == r["inference_measured" + suffix] for r in at)
            lines.append(f"| {b} | {backend} | {i5} of {n} | {ib} | {exact} | {t3} of {n} | {tb} |")
            if b == 32 and backend == "cudnn":
                ok = i5 >= 0.9 * n and ib == 0 and t3 >= 0.9 * n and tb == 0
    return lines, ok


def markdown(rows) -> str:
    lines, _ = summary(rows)
    lines += ["", "| spec | batch | inference: cudnn estimate | measured | est./meas. | native estimate | measured | "
              "est./meas. | training: cudnn estimate | measured | est./meas. | native estimate | measured | est./meas. |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b = r["batch"] if r["train_batch"] == r["batch"] else f"{r['batch']} ({r['train_batch']} in training)"
        cells = []
        for est, got in (("inference_estimate", "inference_measured"), ("inference_estimate_without_cudnn", "inference_measured_without_cudnn"),
                         ("train_estimate", "train_measured"), ("train_estimate_without_cudnn", "train_measured_without_cudnn")):
            cells.append(f"{r[est]:,} | {r[got]:,} | {r[est] / r[got]:.3f}")
        lines.append(f"| `{r['spec']}` | {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default="", help="a benchmarks/gpu_memory.py JSON (default: docs/verify.md's table)")
    ap.add_argument("--batch", type=int, default=0, help="only this batch")
    ap.add_argument("--check", action="store_true", help="exit 1 when a batch-32 cudnn goal is missed")
    ap.add_argument("--counts", action="store_true", help="print the counts only")
    args = ap.parse_args(argv)
    import warnings

    warnings.simplefilter("ignore")
    rows = read_json(Path(args.json)) if args.json else read_table()
    if args.batch:
        rows = [r for r in rows if r["batch"] == args.batch]
    rows = estimates(rows)
    lines, ok = summary(rows)
    print("\n".join(lines) if args.counts else markdown(rows), end="\n" if args.counts else "")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
