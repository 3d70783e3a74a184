"""The torch-backed commands (verify, export). torch is imported only inside them."""

from __future__ import annotations

import sys
from enum import Enum
from typing import List, Optional

import typer

from ..errors import CheckFailed, UsageError, Where



class Device(str, Enum):
    meta = "meta"
    cpu = "cpu"
    cuda = "cuda"


class VFormat(str, Enum):
    table = "table"
    json = "json"


class Target(str, Enum):
    torch = "torch"
    onnx = "onnx"


def _torch_modules(*names):
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


def _load_net(spec, sets, input_):
    from .common import load_net

    return load_net(spec, sets, input_)


def _memory_limit(text, device="cpu"):
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


def register(app):
    from .common import InputOpt, SetOpt, SpecArg

    MemOpt = typer.Option(None, "--max-memory", metavar="SIZE", help="Refuse to run torch when the estimate exceeds this size (default: half the memory available, within the process's own limits).")

    @app.command()
    def verify(
        spec: str = SpecArg,
        device: Device = typer.Option(Device.meta, "--device", metavar="meta|cpu|cuda", help="meta (shapes, params, MACs; no allocation), cpu or cuda."),
        rf: bool = typer.Option(False, "--rf", help="Measure receptive fields empirically (CPU, float64) at the end of each stage."),
        rf_at: Optional[List[str]] = typer.Option(None, "--rf-at", metavar="LAYER", help="Measure the receptive field at this layer (repeatable; implies --rf)."),
        memory: bool = typer.Option(False, "--memory", help="Saved-for-backward bytes (and CUDA peaks) beside the engine's estimate."),
        set: Optional[List[str]] = SetOpt,
        input: Optional[str] = InputOpt,
        batch: int = typer.Option(1, "--batch", "-b", metavar="N", help="Batch size of the torch run."),
        format: VFormat = typer.Option(VFormat.table, "--format", "-f", metavar="table|json", help="Output format."),
        max_memory: Optional[str] = MemOpt,
    ):
        """Check the engine against a real PyTorch model: shapes, params, buffers, MACs, values per layer."""
        from ..limits import MAX_SIZE, check_allocation, check_torch_sizes

        if not 1 <= batch <= MAX_SIZE:
            raise UsageError(f"--batch {batch}: expected an integer from 1 to {MAX_SIZE:,}")
        net = _load_net(spec, set, input)
        from ..analysis.engine import analyze

        report = analyze(net, batch=batch)
        if report.symbolic:
            raise UsageError(
                f"{net.name}: verify needs concrete sizes; unresolved: {', '.join(net.free_symbols()) or 'input'}",
                hint="give them values with --set NAME=VALUE or --input CxHxW",
            )
        check_torch_sizes(report, Where(file=net.file))
        names = [n.strip() for item in (rf_at or []) for n in item.split(",") if n.strip()]
        limit = _memory_limit(max_memory, device.value)
        hint = "use --device meta, a smaller --input or --batch"
        # the stages that need no torch to estimate are checked before torch is even imported
        need, what = estimate_verify(net, report, device.value, batch, memory)
        check_allocation(need, limit, what, hint, Where(file=net.file))
        (V,) = _torch_modules("verify")
        if rf or names:
            # the probe's own estimate: float64 channel sums on the input it enlarges to
            need = V.probe_bytes(net, names or None, report)
            check_allocation(need, limit, "verify --rf (float64 on the CPU)", hint, Where(file=net.file))
        result = V.verify(net, report, device=device.value, batch=batch, rf=rf, rf_layers=names or None, mem=memory)
        if format.value == "json":
            import json

            sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
        else:
            from ..output.render import verify_table

            verify_table(result)
        if not result["ok"]:
            raise CheckFailed(f"{result['network']}: {result['mismatches']} mismatch(es) between the engine and torch")

    @app.command()
    def export(
        spec: str = SpecArg,
        to: Target = typer.Option(..., "--to", metavar="torch|onnx", help="torch: a standalone PyTorch source file; onnx: an ONNX model."),
        output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help="File to write (default: stdout for torch; for onnx NAME.onnx in the current directory, NAME made a plain file name)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
        set: Optional[List[str]] = SetOpt,
        input: Optional[str] = InputOpt,
        max_memory: Optional[str] = MemOpt,
    ):
        """Write the spec as a PyTorch module source file or an ONNX model."""
        from ..analysis.engine import analyze
        from ..limits import check_allocation, check_torch_sizes

        net = _load_net(spec, set, input)
        report = analyze(net)
        if report.symbolic:
            raise UsageError(
                f"{net.name}: export needs concrete sizes; unresolved: {', '.join(net.free_symbols()) or 'input'}",
                hint="give them values with --set NAME=VALUE or --input CxHxW",
            )
        check_torch_sizes(report, Where(file=net.file))
        if to.value == "torch":
            if output is not None:
                _check_target(output, force)
            (T,) = _torch_modules("build")
            text = T.export_source(net)
            if output is None:
                sys.stdout.write(text)
            else:
                _write(output, text, force)
                sys.stderr.write(f"wrote {output}\n")
        else:
            path = output or default_output_name(net.name, ".onnx")
            _check_target(path, force)
            _check_target_data(path, force)
            need = 2 * (report.totals["params"] + report.totals["buffers"]) * 4 + report.totals["activations"] * 4
            check_allocation(need, _memory_limit(max_memory), "export --to onnx", "export --to torch (no allocation) or a smaller --input",
                             Where(file=net.file))
            (T,) = _torch_modules("build")
            from ..safeio import staged

            # torch writes the file (and PATH.data) itself: into a private folder made beside the
            # target, then moved into place by the safe writer's rules
            with staged(path, replace=force, companions=(".data",)) as (inner, written):
                T.export_onnx(net, inner)
            for name in written:
                sys.stderr.write(f"wrote {name}\n")


def default_output_name(name: str, suffix: str) -> str:
    """A plain file name in the current directory from a spec's name (untrusted: '../../x' and
    '/abs/path' must not choose where the file lands).

    >>> default_output_name("../../etc/passwd", ".onnx")
    'etc_passwd.onnx'
    >>> default_output_name("resnet50", ".onnx")
    'resnet50.onnx'
    """
    import re

    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-")[:100] or "model"
    return base + suffix


def _check_target(path, force):
    """Refuse, before the work, what the write would refuse (archcalc/safeio.py): a link, a folder,
    a FIFO or device, an existing file without --force."""
    from ..safeio import check_target

    check_target(path, replace=force)


def _check_target_data(path, force):
    """PATH.data, the weights beside a large ONNX file: refused as the file itself would be, but
    only when something is there (a missing folder is the main file's message)."""
    import os

    if os.path.lexists(f"{path}.data"):
        _check_target(f"{path}.data", force)


def _write(path, text, force=False):
    from ..safeio import write_file

    write_file(path, text, replace=force)
