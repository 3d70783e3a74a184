"""The services of ``archcalc verify`` and ``export``'s memory checks, and the one import of the
torch-backed modules.

This module imports no torch: the checks it makes run on the engine's own figures *before* torch
is imported (docs/security.md, "torch memory"), which :mod:`archcalc.torchside.verify` cannot do
(it imports torch at the top). torch is imported only where CUDA's free memory is the default
limit, and by :func:`modules`.
"""

from __future__ import annotations

from ..errors import UsageError, Where


def modules(*names):
    """Import archcalc.torchside.build / archcalc.torchside.verify, turning a missing torch into a usage error."""
    import importlib

    try:
        return [importlib.import_module(f"archcalc.torchside.{n}") for n in names]
    except (ImportError, MemoryError, OSError) as err:
        text = str(err)
        if isinstance(err, MemoryError) or "failed to map segment" in text or "cannot allocate memory" in text.lower():
            from ..errors import short
            from ..limits import process_memory_limit

            own = process_memory_limit()
            raise UsageError(
                "PyTorch could not be loaded: out of memory" + (f" under this process's {own.name}" if own else "")
                + (f" ({short(text, 80)[1:-1]})" if text else ""),
                hint="run it where the process may use more memory (torch maps about 3 GiB of address space)") from None
        if not isinstance(err, ImportError):
            raise
        if getattr(err, "name", None) == "torch" or "torch" in str(err):
            raise UsageError(
                "this command needs PyTorch, which is not installed",
                hint="install it with: pip install torch (a CPU-only build is enough), or pip install 'archcalc[verify]'",
            ) from None
        raise


def memory_limit(text, device="cpu"):
    """--max-memory: bytes, or the default (half the memory available now, or of what the
    process's own limits, RLIMIT_AS / RLIMIT_DATA / its cgroup's, leave it when less; on CUDA the
    free device memory). A size given is capped by the process's own limits all the same."""
    from ..limits import cap_memory_limit, default_memory_limit

    if text is not None:
        from ..errors import plain
        from ..spec.load import parse_amount

        try:
            given = parse_amount(text)
        except ValueError:
            raise UsageError(f"--max-memory {plain(text)}: expected a size such as 8GiB or 500M") from None
        return given if device == "cuda" else cap_memory_limit(given)
    if device == "cuda":
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[0] * 0.9)
    return default_memory_limit()


def _forward_bytes(report, batch, elem=4):
    """Upper bound of a forward pass: weights and buffers, the input and every new tensor."""
    t = report.totals
    return (t["params"] + t["buffers"]) * elem + (t["activations"] * batch) * elem


def estimate_verify(net, report, device, batch, memory):
    """Bytes the verify run's forward (and --memory) stages would allocate at most, from the
    engine's own figures, before torch is imported. Returns (bytes, what)."""
    t = report.totals
    stages = []
    if device != "meta":
        stages.append((_forward_bytes(report, batch), f"verify --device {device}"))
        if memory:
            run = max(batch, 2)
            train = (t["params"] + t["buffers"]) * 4 * 2 + (t["activations"] * 4 + t["train_saved_bytes"]) * run
            stages.append((train, f"verify --memory on {device}"))
    return max(stages, default=(0, "verify"))


def concrete(net, report, command: str) -> None:
    """A report torch can run: concrete sizes, every tensor within torch's limits."""
    from ..limits import check_torch_sizes

    if report.symbolic:
        raise UsageError(
            f"{net.name}: {command} needs concrete sizes; unresolved: {', '.join(net.free_symbols()) or 'input'}",
            hint="give them values with --set NAME=VALUE or --input CxHxW",
        )
    check_torch_sizes(report, Where(file=net.file))


def verify(net, device="meta", batch=1, rf=False, rf_layers=None, memory=False, max_memory=None) -> dict:
    """``archcalc verify``'s service: the engine's report, the memory checks (each stage's
    estimate against the limit, the stages that need no torch before torch is imported), then
    :func:`archcalc.torchside.verify.verify`'s result."""
    from ..analysis.engine import analyze
    from ..limits import check_allocation

    report = analyze(net, batch=batch)
    concrete(net, report, "verify")
    limit = memory_limit(max_memory, device)
    hint = "use --device meta, a smaller --input or --batch"
    need, what = estimate_verify(net, report, device, batch, memory)
    check_allocation(need, limit, what, hint, Where(file=net.file))
    (V,) = modules("verify")
    if rf or rf_layers:
        # the probe's own estimate: float64 channel sums on the input it enlarges to
        need = V.probe_bytes(net, rf_layers, report)
        check_allocation(need, limit, "verify --rf (float64 on the CPU)", hint, Where(file=net.file))
    return V.verify(net, report, device=device, batch=batch, rf=rf, rf_layers=rf_layers, mem=memory)


def check_onnx_export(net, report, max_memory) -> None:
    """``export --to onnx``'s memory check: weights twice and every activation, against the limit."""
    from ..limits import check_allocation

    t = report.totals
    need = 2 * (t["params"] + t["buffers"]) * 4 + t["activations"] * 4
    check_allocation(need, memory_limit(max_memory), "export --to onnx", "export --to torch (no allocation) or a smaller --input",
                     Where(file=net.file))
