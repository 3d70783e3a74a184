"""The torch-backed commands (verify, export). torch is imported only inside them."""

from __future__ import annotations

import sys
from enum import Enum
from typing import List, Optional

import typer

from ..errors import CheckFailed, UsageError
from ..output import views
from .common import format_choices, format_option, load_net



class Device(str, Enum):
    meta = "meta"
    cpu = "cpu"
    cuda = "cuda"


class Target(str, Enum):
    torch = "torch"
    onnx = "onnx"


VFormat = format_choices("VFormat", views.VERIFY)


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
        format: VFormat = format_option(views.VERIFY),
        max_memory: Optional[str] = MemOpt,
    ):
        """Check the engine against a real PyTorch model: shapes, params, buffers, MACs, values per layer."""
        from ..limits import MAX_SIZE
        from ..torchside import preflight

        if not 1 <= batch <= MAX_SIZE:
            raise UsageError(f"--batch {batch}: expected an integer from 1 to {MAX_SIZE:,}")
        net = load_net(spec, set, input)
        names = [n.strip() for item in (rf_at or []) for n in item.split(",") if n.strip()]
        result = preflight.verify(net, device.value, batch, rf, names or None, memory, max_memory)
        views.emit(views.VERIFY, format, result)
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
        from ..torchside import preflight

        net = load_net(spec, set, input)
        report = analyze(net)
        preflight.concrete(net, report, "export")
        if to.value == "torch":
            if output is not None:
                _check_target(output, force)
            (T,) = preflight.modules("build")
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
            preflight.check_onnx_export(net, report, max_memory)
            (T,) = preflight.modules("build")
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
