"""How long `archcalc summary` takes to print the table of the largest legal network.

Issue 7 asks for under 10 s on a 200,000-layer spec (issue 14 later wants 5 s): a generated spec,
`repeat: 100000` of [conv 1x1, relu] on a small input. Prints the time of each stage (load, engine,
table) and of the whole command, piped (every column) and at 80 columns (the compact layout).

    python benchmarks/bench_summary_table.py [REPEAT]
"""

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """name: big
input: [4, 8, 8]
layers:
  - repeat: {n}
    layers:
      - conv: {{out: 4, kernel: 1}}
      - relu
"""


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yaml"
        path.write_text(SPEC.format(n=n))
        from archcalc import analyze, load, render
        from archcalc.textout import Out

        t0 = time.perf_counter()
        net = load(str(path))
        t1 = time.perf_counter()
        report = analyze(net)
        t2 = time.perf_counter()
        buf = io.StringIO()
        render.summary_table(Out(buf, width=None, ascii=False), report, net=net)
        t3 = time.perf_counter()
        buf80 = io.StringIO()
        render.summary_table(Out(buf80, width=80, ascii=False), report, net=net)
        t4 = time.perf_counter()
        print(f"{len(report.rows):,} layers: load {t1 - t0:.2f} s, engine {t2 - t1:.2f} s, "
              f"table {t3 - t2:.2f} s (piped), {t4 - t3:.2f} s (80 columns); "
              f"{len(buf.getvalue()) / 1e6:.1f} MB of text")
        env = {**os.environ}
        env.pop("COLUMNS", None)
        for label, extra in (("piped", {}), ("COLUMNS=80", {"COLUMNS": "80"})):
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "archcalc", "summary", str(path)], env={**env, **extra},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            print(f"archcalc summary ({label}): {time.perf_counter() - t:.2f} s, exit {proc.returncode}")


if __name__ == "__main__":
    main()
