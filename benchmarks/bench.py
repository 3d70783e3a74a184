"""archcalc's speed, measured as whole processes beside the import floor (issue 14).

    python benchmarks/bench.py [--runs N] [--quick] [--out FILE.json] [--only NAME,...] [--before DIR]

Every case is a fresh `python -m archcalc ...` process, run N times (default 5; 3 for the
100,000- and 200,000-layer cases), reported as min / median / max wall seconds and the largest
peak resident memory (from wait4). Ratios are against the import floor, `python -c "import typer,
rich.table, yaml"`, measured in the same run, so figures from different machines compare as
ratios. The synthetic networks are written to a temporary folder:

* chain-N: `repeat` of [conv 1x1, relu] (N layers), `summary -f json` and the table;
* branchy-N: `repeat` of an Inception-style block (a concat of three branches inside a residual
  add; 8 layers a round).

It also measures, in this process, the loader and the engine alone on each synthetic network
(seconds and microseconds per layer), so the time per layer can be read from 1,000 to 200,000
layers. `--out` writes everything as JSON (one object per case) so runs can be compared.
`--before DIR` runs every process case a second time against another checkout of archcalc (e.g.
`git worktree add /tmp/before HEAD~3`), in the same run, and prints both and the speed-up. The
package is byte-compiled first (`compileall`): where PYTHONDONTWRITEBYTECODE is set, as on some CI
machines, an editable install would otherwise recompile archcalc's modules on every run. Nothing
here fails on timing: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

CHAIN = """name: chain{n}
input: [4, 8, 8]
layers:
  - repeat: {rounds}
    layers:
      - conv: {{out: 4, kernel: 1}}
      - relu
"""

BRANCHY = """name: branchy{n}
input: [16, 8, 8]
layers:
  - repeat: {rounds}
    layers:
      - add:
          main:
            - concat:
                - [{{conv: {{out: 4, kernel: 1}}}}, relu]
                - [{{conv: {{out: 8, kernel: 3, padding: 1}}}}, relu]
                - [{{maxpool: {{kernel: 3, stride: 1, padding: 1}}}}, {{conv: {{out: 4, kernel: 1}}}}]
          shortcut: identity
"""


def _spec_files(tmp: Path, sizes) -> dict:
    files = {}
    for n in sizes:
        p = tmp / f"chain{n}.yaml"
        p.write_text(CHAIN.format(n=n, rounds=n // 2))
        files[f"chain-{n}"] = p
    for n in sizes:
        p = tmp / f"branchy{n}.yaml"
        p.write_text(BRANCHY.format(n=n, rounds=max(n // 8, 1)))
        files[f"branchy-{n}"] = p
    return files


GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def run_process(argv, env=None, cwd=ROOT):
    """(wall seconds, peak RSS bytes, exit code) of one process, output discarded. The peak comes
    from GNU time where there is one: wait4's figure also counts the parent's memory at the fork."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        full = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv] if GNU_TIME else list(argv)
        t = time.perf_counter()
        proc = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            raise SystemExit(f"{' '.join(map(str, argv))} failed ({code}):\n{err[-2000:]}")
        text = rss_file.read().strip().splitlines() if GNU_TIME else []
        rss = int(text[-1]) * 1024 if text and text[-1].isdigit() else usage.ru_maxrss * 1024
    return wall, rss, code


def measure(argv, runs, env=None, cwd=ROOT):
    walls, rss = [], 0
    run_process(argv, env, cwd)  # warm the file cache
    for _ in range(runs):
        w, r, _ = run_process(argv, env, cwd)
        walls.append(w)
        rss = max(rss, r)
    return {"min": min(walls), "median": statistics.median(walls), "max": max(walls), "rss_bytes": rss, "runs": runs}


def in_process(files) -> list:
    """Loader and engine alone, in this process (gc off as in the CLI): seconds and per layer."""
    sys.path.insert(0, str(ROOT))
    from archcalc import analyze, load

    out = []
    analyze(load(str(next(iter(files.values())))))  # warm up: the lazy imports are not per-layer work
    for label, path in files.items():
        best = None
        for _ in range(max(1, 20_000 // int(label.split("-")[1]))):  # small cases: the best of several
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                net = load(str(path))
                t1 = time.perf_counter()
                report = analyze(net)
                t2 = time.perf_counter()
                report.memory.get()  # the liveness pass (issue 12), computed when a peak is asked for
                t3 = time.perf_counter()
            finally:
                gc.enable()
            if best is None or t3 - t0 < best[2]:
                best = (t1 - t0, t2 - t1, t3 - t0, t3 - t2)
            n = len(report.rows)
            del net, report
        load_s, engine_s, _, live_s = best
        out.append({"case": label, "layers": n, "load_s": load_s, "engine_s": engine_s, "liveness_s": live_s,
                    "us_per_layer": (load_s + engine_s) / n * 1e6, "us_per_layer_with_liveness": (load_s + engine_s + live_s) / n * 1e6})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="1,000 and 10,000 layers only, 3 runs")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--only", help="comma-separated case names (prefixes) to run")
    ap.add_argument("--before", help="another archcalc checkout to measure beside this one")
    args = ap.parse_args(argv)
    before = Path(args.before).resolve() if args.before else None
    for tree in (ROOT, before):
        if tree is not None:
            subprocess.run([PY, "-m", "compileall", "-q", str(tree / "archcalc")], check=True, stdout=subprocess.DEVNULL)
    runs = 3 if args.quick else args.runs
    sizes = (1000, 10000) if args.quick else (1000, 10000, 100000, 200000)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    archcalc = [PY, "-m", "archcalc"]
    results = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                           "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}, "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        files = _spec_files(Path(tmp), sizes)
        cases = [
            ("import floor", [PY, "-c", "import typer, rich.table, yaml"], runs),
            ("python -c pass", [PY, "-c", "pass"], runs),
            ("summary resnet152 (table)", archcalc + ["summary", "resnet152"], runs),
            ("summary resnet152 -f json", archcalc + ["summary", "resnet152", "-f", "json"], runs),
            ("list", archcalc + ["list"], runs),
            ("check specs/", archcalc + ["check", "specs/"], runs),
            ("compare vgg16 resnet50 googlenet", archcalc + ["compare", "vgg16", "resnet50", "googlenet"], runs),
            ("summary resnet50 --symbolic H,W -f json", archcalc + ["summary", "resnet50", "--symbolic", "H,W", "-f", "json"], runs),
            ("summary googlenet --symbolic H,W -f json", archcalc + ["summary", "googlenet", "--symbolic", "H,W", "-f", "json"], runs),
        ]
        for label, path in files.items():
            n_runs = runs if int(label.split("-")[1]) <= 10000 else min(runs, 3)
            cases.append((f"summary {label} -f json", archcalc + ["summary", str(path), "-f", "json"], n_runs))
        for label in ("chain-200000",) if not args.quick else ("chain-10000",):
            cases.append((f"summary {label} (table)", archcalc + ["summary", str(files[label])], min(runs, 3)))
        try:
            import torch  # noqa: F401

            cases.append(("verify resnet152 (meta)", archcalc + ["verify", "resnet152"], min(runs, 3)))
        except ImportError:
            print("(torch not installed: verify not measured)", file=sys.stderr)
        only = [o.strip() for o in args.only.split(",")] if args.only else None
        floor = None
        head = f"{'case':48} {'min':>7} {'median':>7} {'max':>7} {'x floor':>8} {'peak RSS':>9}"
        print(head + (f" {'before':>8} {'RSS':>8} {'speed-up':>8}" if before else ""))
        benv = {**env, "PYTHONPATH": str(before)} if before else None
        for label, argv_, n in cases:
            if only and label not in ("import floor",) and not any(label.startswith(o) for o in only):
                continue
            r = measure(argv_, n, env)
            if label == "import floor":
                floor = r["median"]
            r["ratio_to_floor"] = r["median"] / floor if floor else None
            ratio = f"{r['ratio_to_floor']:.2f}x" if floor else ""
            line = f"{label:48} {r['min']:7.3f} {r['median']:7.3f} {r['max']:7.3f} {ratio:>8} {r['rss_bytes'] / 2**20:7.0f} MB"
            if before and argv_[:3] == archcalc and "verify" not in argv_:
                b = measure(argv_[:1] + [a.replace(str(ROOT), str(before)) for a in argv_[1:]], n, benv, cwd=before)
                r["before"] = b
                line += f" {b['median']:8.3f} {b['rss_bytes'] / 2**20:5.0f} MB {b['median'] / r['median']:7.1f}x"
            results["cases"].append({"case": label, **r})
            print(line, flush=True)
        if not only or any(o.startswith(("chain", "branchy", "engine")) for o in only):
            print(f"\n{'in process (gc off)':24} {'layers':>8} {'load s':>8} {'engine s':>9} {'us/layer':>9} "
                  f"{'liveness s':>11} {'us/layer':>9}")
            for row in in_process(files):
                results.setdefault("engine", []).append(row)
                print(f"{row['case']:24} {row['layers']:8,} {row['load_s']:8.3f} {row['engine_s']:9.3f} "
                      f"{row['us_per_layer']:9.2f} {row['liveness_s']:11.3f} {row['us_per_layer_with_liveness']:9.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
