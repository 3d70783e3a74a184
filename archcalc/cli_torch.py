"""The torch-backed commands (verify, export). torch is imported only inside them."""

from __future__ import annotations

import sys
from enum import Enum
from typing import List, Optional

import typer

from .errors import CheckFailed, UsageError

MARK = {"ok": "[green]✓[/]", "note": "[yellow]≈[/]", "mismatch": "[bold red]✗[/]"}
PLAIN = {"ok": "ok", "note": "~", "mismatch": "MISMATCH"}


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
    """Import archcalc.torch / archcalc.verify, turning a missing torch into a usage error."""
    import importlib

    try:
        return [importlib.import_module(f"archcalc.{n}") for n in names]
    except ImportError as err:
        if getattr(err, "name", None) == "torch" or "torch" in str(err):
            raise UsageError(
                "this command needs PyTorch, which is not installed",
                hint="install it with: pip install torch (a CPU-only build is enough), or pip install 'archcalc[verify]'",
            ) from None
        raise


def _load_net(spec, sets, input_):
    from . import load
    from .cli import parse_input, parse_sets

    return load(spec, parse_sets(sets), parse_input(input_))


def register(app):
    from .cli import InputOpt, SetOpt

    @app.command()
    def verify(
        spec: str = typer.Argument(..., help="A zoo name (archcalc list) or a path to a spec .yaml file."),
        device: Device = typer.Option(Device.meta, "--device", help="meta (shapes, params, MACs; no allocation), cpu or cuda."),
        rf: bool = typer.Option(False, "--rf", help="Measure receptive fields empirically (CPU, float64) at the end of each stage."),
        rf_at: Optional[List[str]] = typer.Option(None, "--rf-at", help="Measure the receptive field at this layer (repeatable; implies --rf)."),
        memory: bool = typer.Option(False, "--memory", help="Saved-for-backward bytes (and CUDA peaks) beside the engine's estimate."),
        set: Optional[List[str]] = SetOpt,
        input: Optional[str] = InputOpt,
        batch: int = typer.Option(1, "--batch", "-b", min=1, help="Batch size of the torch run."),
        format: VFormat = typer.Option(VFormat.table, "--format", "-f", help="table or json."),
    ):
        """Check the engine against a real PyTorch model: shapes, params, buffers, MACs, values per layer."""
        net = _load_net(spec, set, input)
        from .engine import analyze

        report = analyze(net, batch=batch)
        (V,) = _torch_modules("verify")
        names = [n for item in (rf_at or []) for n in item.split(",") if n.strip()]
        result = V.verify(net, report, device=device.value, batch=batch, rf=rf, rf_layers=names or None, mem=memory)
        if format.value == "json":
            import json

            sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
        else:
            from .cli import _console

            render(_console(), result)
        if not result["ok"]:
            raise CheckFailed(f"{result['network']}: {result['mismatches']} mismatch(es) between the engine and torch")

    @app.command()
    def export(
        spec: str = typer.Argument(..., help="A zoo name or a spec path."),
        to: Target = typer.Option(..., "--to", help="torch: a standalone PyTorch source file; onnx: an ONNX model."),
        output: Optional[str] = typer.Option(None, "--output", "-o", help="File to write (default: stdout for torch, NAME.onnx for onnx)."),
        set: Optional[List[str]] = SetOpt,
        input: Optional[str] = InputOpt,
    ):
        """Write the spec as a PyTorch module source file or an ONNX model."""
        net = _load_net(spec, set, input)
        (T,) = _torch_modules("torch")
        if to.value == "torch":
            text = T.export_source(net)
            if output is None:
                sys.stdout.write(text)
            else:
                _write(output, text)
                sys.stderr.write(f"wrote {output}\n")
        else:
            path = output or f"{net.name}.onnx"
            for written in T.export_onnx(net, path):
                sys.stderr.write(f"wrote {written}\n")


def _write(path, text):
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as err:
        raise UsageError(f"cannot write '{path}': {err.strerror or err}") from None


def _num(v):
    from .report import exact

    return exact(v) if isinstance(v, int) else (f"{v:.4g}" if isinstance(v, float) else str(v))


def _cell(c, fmt=_num):
    e, t = c["engine"], c["torch"]
    text = fmt(e) if c["status"] == "ok" else f"{fmt(e)} ≠ {fmt(t)}"
    return f"{text} {MARK[c['status']]}"


def _shape(v):
    return "x".join(str(d) for d in v)


def render(console, result):
    """The verify table: a mark per metric per layer (✓ agrees, ≈ a documented convention, ✗ differs)."""
    from rich.table import Table

    title = f"[bold]verify {result['network']}[/] — engine vs torch {result['torch']} on {result['device']}"
    table = Table(title=title, header_style="bold", show_footer=True)
    t = result["totals"]
    footer = {"layer": "total", "output": _cell(t["output"], _shape), "params": _cell(t["params"]),
              "buffers": _cell(t["buffers"]), "MACs": _cell(t["macs"]), "values": _cell(t["activations"])}
    cols = ("#", "layer", "type", "torch", "output", "params", "buffers", "MACs", "values")
    for col in cols:
        table.add_column(col, footer=footer.get(col, ""), justify="right" if col in ("#", "params", "buffers", "MACs", "values") else "left",
                         no_wrap=col not in ("layer", "torch"))
    notes = []
    for i, r in enumerate(result["layers"], 1):
        c = r["checks"]
        bad = any(x["status"] == "mismatch" for x in c.values())
        for k, x in c.items():
            if x["status"] == "note":
                notes.append(f"{r['name']} ({k}): {x['note']}")
        table.add_row(str(i), r["name"] + (" (aux)" if r["aux"] else ""), r["type"], r["torch"],
                      _cell(c["shape"], _shape), _cell(c["params"]), _cell(c["buffers"]), _cell(c["macs"]), _cell(c["values"]),
                      style="red" if bad else ("dim" if r["aux"] else None))
    console.print(table)
    console.print(f"input {_shape(result['input'])}, batch {result['batch']}; MACs = FlopCounterMode FLOPs / 2; "
                  "buffers exclude num_batches_tracked; values = elements of each new tensor (0 for views and in-place)")
    if t["macs_aux"]["engine"] or t["macs_aux"]["torch"]:
        console.print(f"  [bold]aux-head MACs[/]: {_cell(t['macs_aux'])}")
    for n in notes:
        console.print(f"  [yellow]≈[/] {n}")
    if result.get("rf") is not None:
        rt = Table(title="receptive fields (empirical: gradient extent of one output position)", header_style="bold")
        for col in ("layer", "input", "position", "engine r / j / p", "expected extent", "measured extent", "size", ""):
            rt.add_column(col)
        for r in result["rf"]:
            for ax in ("h", "w"):
                a = r["axes"][ax]
                e, m = a["engine"], a["measured"]
                ext = "-" if m["start"] is None else f"[{m['start']}, {m['start'] + m['size'] - 1}]"
                size = f"{m['size']} vs {e['size']}" + (" (clipped by the image)" if a["clipped"] else "")
                rt.add_row(f"{r['layer']} ({ax})", "x".join(map(str, r["input"])), str(r["position"][0 if ax == "h" else 1]),
                           f"{e['size']} / {e['stride']} / {e['padding']}",
                           f"[{a['expected_extent'][0]}, {a['expected_extent'][1]}]", ext, size, MARK[a["status"]])
        console.print(rt)
    if result.get("memory"):
        m = result["memory"]
        s = m["saved_bytes"]
        from .report import human

        ratio = "-" if s["ratio"] is None else f"{s['ratio']:.3f}"
        console.print(f"  [bold]saved for backward[/] (batch {m['batch']}, {m['device']}): torch {_num(s['torch'])} bytes "
                      f"({human(s['torch'], 'B')}) in {s['storages']} storages; engine estimate {_num(s['engine'])} bytes "
                      f"({human(s['engine'], 'B')}); ratio torch/engine {ratio}")
        for k, v in (m.get("cuda") or {}).items():
            r = "-" if v["ratio"] is None else f"{v['ratio']:.3f}"
            console.print(f"  [bold]{k.replace('_', ' ')}[/] (batch {v['batch']}): torch {_num(v['torch'])} bytes, engine {_num(v['engine'])} "
                          f"({v['engine_is']}); ratio {r}")
        for n in m["notes"]:
            console.print(f"  note: {n}")
    console.print("[green]engine and torch agree[/]" if result["ok"] else f"[bold red]{result['mismatches']} mismatch(es)[/]")
