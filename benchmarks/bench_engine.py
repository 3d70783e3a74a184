"""Engine and start-up speed. Run: python benchmarks/bench_engine.py

Prints, on this machine and in one run:
  * the wall time of `archcalc summary vgg16 --format json` in a fresh interpreter (median of
    5), beside a bare `python -c pass` and `import typer, rich` for scale;
  * load + analyze time per zoo spec (median of 5), slowest first;
  * the cost of the symbolic path: vgg16 with H, W free against concrete vgg16, as a ratio.
Not a test: nothing here fails on timing.
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archcalc import analyze, load, zoo  # noqa: E402


def wall(cmd, n=5):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def inproc(fn, n=5):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    py = sys.executable
    bare = wall([py, "-c", "pass"])
    libs = wall([py, "-c", "import typer, rich.table, yaml"])
    cli = wall([py, "-m", "archcalc", "summary", "vgg16", "--format", "json"])
    print(f"python -c pass                     {bare * 1000:7.1f} ms")
    print(f"import typer, rich, yaml           {libs * 1000:7.1f} ms")
    print(f"archcalc summary vgg16 -f json     {cli * 1000:7.1f} ms  ({cli / libs:.2f}x the imports alone)")
    print()
    rows = []
    for name in zoo.names():
        rows.append((inproc(lambda n=name: analyze(load(n))), name, len(load(name).nodes)))
    rows.sort(reverse=True)
    print("load + analyze per zoo spec (median of 5):")
    for t, name, n in rows[:10]:
        print(f"  {name:24s} {n:5d} layers {t * 1000:8.1f} ms")
    print(f"  ... {len(rows)} specs, {sum(r[0] for r in rows) * 1000:.0f} ms in all")
    print()
    conc = inproc(lambda: analyze(load("vgg16")))
    symb = inproc(lambda: analyze(load("vgg16", free=("H", "W"))), n=3)
    print(f"vgg16 concrete {conc * 1000:.1f} ms, symbolic H,W {symb * 1000:.1f} ms: {symb / conc:.1f}x")


if __name__ == "__main__":
    main()
