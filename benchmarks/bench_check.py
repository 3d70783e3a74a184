"""`archcalc check specs/` over the whole zoo, in one process. Run: python benchmarks/bench_check.py

The target (issue 11): under 2 s on the project machine, interpreter start-up included. Prints:
  * the wall time of `archcalc check specs/ --strict` in a fresh interpreter (each of N runs, the
    median and the best), with the number of specs (family members counted one by one);
  * where the time goes, in-process: read + YAML parse + expand (spec.loads), analyze, lints and
    budgets, rendering the five report formats;
  * the slowest specs.
Not a test: nothing here fails on timing. `--runs N` (default 5). `--committed` checks only the
spec files git tracks (`git ls-files specs/`), to compare with earlier numbers while new specs are
being added.
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archcalc.ci import checks
from archcalc.output import ci_report  # noqa: E402


def wall(cmd, n):
    """Wall and CPU (user + system) seconds of each run; on a busy machine (other jobs on the same
    cores) the CPU time is what the command itself costs."""
    import resource

    times, cpu = [], []
    for _ in range(n):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        times.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode not in (0, 1):
            sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
    lines = proc.stdout.strip().splitlines()
    return times, cpu, lines[-1] if lines else ""


def breakdown(targets):
    """Time each stage of one in-process run over the zoo."""
    from archcalc.analysis import engine
    from archcalc.spec import load as spec

    stages = {"loads": 0.0, "analyze": 0.0}
    real_loads, real_analyze = spec.loads, engine.analyze
    per_spec = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                dt = time.perf_counter() - t
                stages[name] += dt
                key = a[1] if name == "loads" and len(a) > 1 else None
                if key:
                    per_spec[key] = per_spec.get(key, 0.0) + dt

        return wrapper

    spec.loads = timed("loads", real_loads)
    engine.analyze = timed("analyze", real_analyze)
    try:
        t = time.perf_counter()
        run = checks.run(targets, checks.Options(strict=True))
        total = time.perf_counter() - t
    finally:
        spec.loads, engine.analyze = real_loads, real_analyze
    render = {}
    for fmt in ci_report.FORMATS:
        t = time.perf_counter()
        ci_report.render(run, fmt)
        render[fmt] = time.perf_counter() - t
    return run, total, stages, render, per_spec


def main():
    n = 5
    if "--runs" in sys.argv:
        n = int(sys.argv[sys.argv.index("--runs") + 1])
    targets = ["specs/"]
    if "--committed" in sys.argv:
        listed = subprocess.run(["git", "ls-files", "specs/*.yaml"], capture_output=True, text=True, cwd=ROOT, check=True)
        targets = listed.stdout.split()
    times, cpu, summary = wall([sys.executable, "-m", "archcalc", "check", *targets, "--strict"], n)
    base, _, _ = wall([sys.executable, "-c", "pass"], 3)
    what = "the committed specs" if "--committed" in sys.argv else "specs/"
    print(f"archcalc check {what} --strict, fresh interpreter, {n} runs: wall "
          + ", ".join(f"{t:.2f}" for t in times) + " s; CPU " + ", ".join(f"{t:.2f}" for t in cpu) + " s")
    print(f"  wall median {statistics.median(times):.2f} s, best {min(times):.2f} s; CPU median "
          f"{statistics.median(cpu):.2f} s (target: under 2 s); bare python start-up {statistics.median(base):.2f} s; "
          f"load average {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")
    print(f"  {summary}")
    run, total, stages, render, per_spec = breakdown([str(ROOT / t) for t in targets])
    other = total - stages["loads"] - stages["analyze"]
    print(f"in-process over {len(run.results)} specs: {total:.2f} s = spec.loads {stages['loads']:.2f} s "
          f"+ analyze {stages['analyze']:.2f} s + lints, budgets, baselines and file walking {other:.2f} s")
    print("  rendering: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in render.items()))
    slow = sorted(per_spec.items(), key=lambda kv: -kv[1])[:5]
    print("  slowest spec.loads (all members of a family together): "
          + ", ".join(f"{Path(k).name} {v * 1000:.0f} ms" for k, v in slow))


if __name__ == "__main__":
    main()
