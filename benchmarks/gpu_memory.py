"""Peak memory over the zoo: the engine's liveness estimates against torch, per spec and batch.

    PYTHONPATH=. python benchmarks/gpu_memory.py --out DIR              # CUDA (the table in docs/verify.md)
    PYTHONPATH=. python benchmarks/gpu_memory.py --out DIR --device cpu --limit 3   # a quick run anywhere

For every zoo spec (archcalc.spec.zoo.names(), symbolic ones left out) at each batch (default 1 and 32)
it measures, through archcalc.torchside.verify:

* cuda: ``torch.cuda.max_memory_allocated`` above the model and the input of an inference forward
  (eval, no grad) and of a training forward+backward (no optimizer step): verify.cuda_peak, the
  code behind ``archcalc verify NAME --device cuda --memory``;
* cpu: the peak of live tensor bytes (verify.live_bytes), inference and training.

beside the engine's ``inference_peak_bytes`` and ``train_peak_bytes`` (archcalc.analysis.liveness) for the
backend that ran: cudnn, native for the runs without cuDNN (their ratios), cpu (live tensors) on the CPU;
benchmarks/memory_rule.py recomputes every estimate from the measured columns. Specs
whose estimate (weights, state, input and peak) exceeds the free device memory are skipped and
listed; a failure in one spec is recorded and the run goes on; each spec gets a time box
(--spec-seconds) and the whole run a deadline (--deadline), after which the rest are listed as not
run. cudnn.benchmark is off and the allocator's cache is emptied between runs. Writes DIR/gpu_memory.json
and DIR/gpu_memory.md (a Markdown table for docs/verify.md). Not a test: nothing here fails on numbers.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class TimeBox(Exception):
    pass


def _alarm(signum, frame):
    raise TimeBox()


def log(*parts):
    print(*parts, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for gpu_memory.json and gpu_memory.md")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--batches", default="1,32", help="comma-separated batch sizes (default 1,32)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N specs (smallest first)")
    ap.add_argument("--specs", default="", help="comma-separated spec names (default: the whole zoo)")
    ap.add_argument("--spec-seconds", type=int, default=30, help="time box per spec (default 30)")
    ap.add_argument("--deadline", type=float, default=260, help="stop starting specs after this many seconds")
    ap.add_argument("--input", default="", help="CxHxW for every spec that accepts it (cpu runs: small inputs)")
    args = ap.parse_args(argv)

    start = time.monotonic()
    import warnings

    warnings.simplefilter("ignore")
    import torch

    from archcalc import analyze, load
    from archcalc.spec import zoo
    from archcalc.errors import ArchcalcError
    from archcalc.analysis.liveness import totals
    from archcalc.torchside import verify as V

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        log("no CUDA device: use --device cpu")
        return 2
    if cuda:
        torch.backends.cudnn.benchmark = False
        _warm_up(torch)
    device_name = torch.cuda.get_device_name() if cuda else platform.processor() or "cpu"
    log(f"gpu_memory: {device_name}, torch {torch.__version__}, batches {batches}")

    names = [n.strip() for n in args.specs.split(",") if n.strip()] or zoo.names()
    plans, skipped = [], []
    override = tuple(int(v) for v in args.input.lower().split("x")) if args.input else None
    for name in names:
        try:
            net = load(name)
            if override is not None and len(net.input) == 3 and not net.symbolic:
                try:
                    small = load(name, input_override=(net.input[0],) + override[1:])
                    analyze(small)
                    net = small
                except ArchcalcError:
                    pass
            if net.symbolic:
                skipped.append({"spec": name, "why": "symbolic sizes (" + ", ".join(net.free_symbols()) + ")"})
                continue
            cost = analyze(net).totals["macs"]
            plans.append((cost, name, net))
        except ArchcalcError as err:
            skipped.append({"spec": name, "why": f"does not load: {err}"})
    plans.sort(key=lambda p: (p[0], p[1]))  # cheapest first: a deadline leaves out the largest
    if args.limit:
        plans = plans[: args.limit]

    rows = []
    signal.signal(signal.SIGALRM, _alarm)
    for k, (_, name, net) in enumerate(plans, 1):
        if time.monotonic() - start > args.deadline:
            skipped.append({"spec": name, "why": f"not run: the {args.deadline:.0f} s deadline was reached"})
            continue
        t0 = time.monotonic()
        signal.alarm(args.spec_seconds)
        model = None
        try:
            for batch in batches:
                report = analyze(net, batch=batch)
                backend = "cudnn" if cuda else "cpu"  # the estimate of what is measured (docs/memory.md)
                est = totals(report, batch, backend)
                run_batch = 2 if batch == 1 and V._bn_on_single_values(report) else batch
                tr = totals(report, run_batch, backend)
                need = max(est["inference_peak_bytes"] + report.totals["param_bytes"] * 2,
                           tr["train_total_bytes"] + report.totals["param_bytes"])
                free = _free(torch, cuda)
                if need > free:
                    skipped.append({"spec": name, "batch": batch,
                                    "why": f"estimate {need:,} bytes exceeds free memory {free:,}"})
                    log(f"[{k}/{len(plans)}] {name} batch {batch}: skipped (needs ~{need / 2**30:.1f} GiB)")
                    continue
                row = {"spec": name, "batch": batch, "train_batch": run_batch,
                       "inference_estimate": est["inference_peak_bytes"], "inference_at": est["inference_peak_layer"],
                       "train_estimate": tr["train_peak_bytes"],
                       "inference_live": est["inference_live_bytes"], "train_live": tr["train_live_bytes"],
                       "train_at": f"{tr['train_peak_layer']} ({tr['train_peak_phase']})"}
                if cuda:
                    if model is None:
                        from archcalc.torchside.build import build

                        model = build(net, device="cuda")
                    row["inference_measured"] = V.cuda_peak(model, net, batch, False)
                    _clean(torch, cuda)
                    row["train_measured"] = V.cuda_peak(model, net, run_batch, True)
                else:
                    row["inference_measured"] = V.live_bytes(net, batch=batch)["peak"]
                    row["train_measured"] = V.live_bytes(net, batch=run_batch, train=True)["peak"]
                row["inference_ratio"] = row["inference_measured"] / row["inference_estimate"]
                row["train_ratio"] = row["train_measured"] / row["train_estimate"]
                if cuda:
                    row["inference_estimate_without_cudnn"] = totals(report, batch, "native")["inference_peak_bytes"]
                    row["train_estimate_without_cudnn"] = totals(report, run_batch, "native")["train_peak_bytes"]
                    # what cuDNN adds (its convolution workspaces): both runs again without it
                    _clean(torch, cuda)
                    with torch.backends.cudnn.flags(enabled=False):
                        row["inference_measured_without_cudnn"] = V.cuda_peak(model, net, batch, False)
                        _clean(torch, cuda)
                        row["train_measured_without_cudnn"] = V.cuda_peak(model, net, run_batch, True)
                rows.append(row)
                log(f"[{k}/{len(plans)}] {name} batch {batch}: inference {row['inference_measured']:,} / "
                    f"{row['inference_estimate']:,} = {row['inference_ratio']:.3f}; training {row['train_measured']:,} / "
                    f"{row['train_estimate']:,} = {row['train_ratio']:.3f} ({time.monotonic() - t0:.1f} s)")
                _clean(torch, cuda)
        except TimeBox:
            skipped.append({"spec": name, "why": f"time box of {args.spec_seconds} s"})
            log(f"[{k}/{len(plans)}] {name}: time box reached")
        except Exception as err:  # noqa: BLE001 - one spec's failure must not stop the run
            line = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
            skipped.append({"spec": name, "why": "failed: " + line})
            log(f"[{k}/{len(plans)}] {name}: FAILED {line}")
            if os.environ.get("GPU_MEMORY_TRACEBACK"):
                traceback.print_exc()
        finally:
            signal.alarm(0)
            del model
            _clean(torch, cuda)

    meta = {"device": device_name, "kind": args.device, "torch": torch.__version__,
            "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "batches": batches, "seconds": round(time.monotonic() - start, 1)}
    (out_dir / "gpu_memory.json").write_text(json.dumps({"meta": meta, "rows": rows, "skipped": skipped}, indent=2) + "\n")
    (out_dir / "gpu_memory.md").write_text(markdown(meta, rows, skipped))
    log(f"wrote {out_dir / 'gpu_memory.json'} and {out_dir / 'gpu_memory.md'}: {len(rows)} rows, "
        f"{len(skipped)} skipped, {meta['seconds']} s")
    return 0


def _warm_up(torch):
    """One small convolution and matrix product, forward and backward, so that the CUDA context,
    cuBLAS and cuDNN handles exist before the first measurement (their memory is not a model's)."""
    x = torch.randn(2, 8, 16, 16, device="cuda", requires_grad=True)
    w = torch.randn(8, 8, 3, 3, device="cuda", requires_grad=True)
    y = torch.nn.functional.conv2d(x, w, padding=1)
    (y.flatten(1) @ torch.randn(y[0].numel(), 4, device="cuda")).sum().backward()
    del x, w, y
    _clean(torch, True)


def _free(torch, cuda) -> int:
    """Bytes the run may use: free device memory (less a margin for the allocator), or, on the CPU,
    the memory available to processes."""
    if cuda:
        free, _ = torch.cuda.mem_get_info()
        return int(free * 0.9)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError):
        return 8 * 2**30


def _clean(torch, cuda):
    """Drop what the last run left: Python garbage, and the CUDA allocator's cached blocks."""
    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def _within(rows, key, est, tol):
    got = [r for r in rows if key in r]
    return sum(abs(r[key] / r[est] - 1) <= tol for r in got), len(got)


def markdown(meta, rows, skipped) -> str:
    what = "CUDA max_memory_allocated above model and input" if meta["kind"] == "cuda" else "peak live tensor bytes (CPU)"
    libs = f", CUDA {meta['cuda']}, cuDNN {meta['cudnn']}" if meta.get("cuda") else ""
    lines = [f"Measured on {meta['device']}, torch {meta['torch']}{libs}, {meta['date']} ({what}; "
             "benchmarks/gpu_memory.py). Ratio = measured / estimate.", ""]
    nocudnn = any("inference_measured_without_cudnn" in r for r in rows)
    for b in sorted({r["batch"] for r in rows}):
        at = [r for r in rows if r["batch"] == b]
        i5, n = _within(at, "inference_measured", "inference_estimate", 0.05)
        t3, _ = _within(at, "train_measured", "train_estimate", 0.03)
        line = f"- batch {b}: inference within 5% in {i5} of {n} specs, training within 3% in {t3} of {n}"
        if nocudnn:
            j5, m = _within(at, "inference_measured_without_cudnn", "inference_estimate_without_cudnn", 0.05)
            u3, _ = _within(at, "train_measured_without_cudnn", "train_estimate_without_cudnn", 0.03)
            line += f"; without cuDNN: inference {j5} of {m}, training {u3} of {m}"
        lines.append(line)
    lines.append("")
    if nocudnn:
        lines += ["| spec | batch | inference estimate | measured | ratio | no cuDNN | ratio | training estimate | measured | ratio | no cuDNN | ratio |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    else:
        lines += ["| spec | batch | inference estimate | measured | ratio | training estimate | measured | ratio |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        tb = r["batch"] if r["train_batch"] == r["batch"] else f"{r['batch']} ({r['train_batch']} in training)"
        inf = f"{r['inference_estimate']:,} | {r['inference_measured']:,} | {r['inference_ratio']:.3f}"
        tr = f"{r['train_estimate']:,} | {r['train_measured']:,} | {r['train_ratio']:.3f}"
        if nocudnn and "inference_measured_without_cudnn" in r:
            inf += (f" | {r['inference_measured_without_cudnn']:,} | "
                    f"{r['inference_measured_without_cudnn'] / r['inference_estimate_without_cudnn']:.3f}")
            tr += (f" | {r['train_measured_without_cudnn']:,} | "
                   f"{r['train_measured_without_cudnn'] / r['train_estimate_without_cudnn']:.3f}")
        lines.append(f"| `{r['spec']}` | {tb} | {inf} | {tr} |")
    if skipped:
        lines += ["", "Not measured:", ""]
        for s in skipped:
            lines.append(f"- `{s['spec']}`" + (f" batch {s['batch']}" if "batch" in s else "") + f": {s['why']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
