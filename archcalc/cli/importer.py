"""`archcalc import`: a PyTorch model or an ONNX file as a spec. torch, onnx and the importer are
imported only when the command runs."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from ..errors import CheckFailed, UsageError


def _check_lines(result) -> list:
    o, b, e = result["original"], result["built"], result["engine"]
    sd = result["state_dict"]
    lines = []
    bad = sd["missing"] + sd["unexpected"] + sd["shape"]
    if bad:
        lines.append(f"state_dict: {len(sd['missing'])} missing, {len(sd['unexpected'])} unexpected, "
                     f"{len(sd['shape'])} of another shape, e.g. {', '.join(bad[:3])}: MISMATCH")
    else:
        lines.append(f"state_dict: all {sd['keys']:,} entries of the original load into the built spec (names and shapes): ok")
    for key, label in (("params", "params"), ("buffers", "buffers"), ("macs", "MACs")):
        same = o[key] == b[key] == e[key]
        lines.append(f"{label}: original {o[key]:,}, built {b[key]:,}, engine {e[key]:,}: {'ok' if same else 'MISMATCH'}")
    per = result.get("per_output")
    if per:
        shown = ", ".join(f"{p['name']} {'x'.join(map(str, p['shape'] or ()))}" + ("" if p["shape"] == p["engine"] else
                          f" (engine {'x'.join(map(str, p['engine'] or ())) or 'none'})") for p in per)
        same = all(p["shape"] == p["engine"] for p in per)
        lines.append(f"{len(per)} outputs, shapes at the traced input (original = engine): {shown}: {'ok' if same else 'MISMATCH'}")
        if result.get("per_output_error"):
            lines.append(f"each output's params, buffers and MACs: counting them failed: {result['per_output_error']}: MISMATCH")
        for p in per:
            if "ok" in p:
                lines.append(_output_line(p))
    out = result.get("outputs")
    if out is not None:
        shape = "x".join(str(d) for d in out["input"])
        if "error" in out:
            lines.append(f"outputs at {shape}: running the models failed: {out['error']}: MISMATCH")
        else:
            what = f"all {len(out['several'])} outputs" if out.get("several") else "outputs"
            lines.append(f"{what} at {shape} (eval, the original's weights): max |difference| {out['max_abs_diff']:.3g} "
                         f"(largest |value| {out['max_abs']:.3g}): {'ok' if out['ok'] else 'MISMATCH'}")
        first = out.get("first")
        if first:
            lines.append(f"outputs: the first layer whose output differs is {first[0]} "
                         f"(max |difference| {first[1]:.3g}, largest |value| {first[2]:.3g})")
        elif not out["ok"] and "error" not in out:
            lines.append("outputs: every layer named after a module of the original agrees with it; "
                         "the difference arises in a join or functional call")
    elif result["ok"]:
        lines.append("outputs: not compared (the model has no real weights)")
    return lines


def _output_line(p) -> str:
    """One output's own counts (the layers it depends on): one figure where original, built and
    engine agree, each of the three where they do not."""
    def fig(key):
        v = p[key]
        if v["original"] is not None and v["original"] == v["built"] == v["engine"]:
            return f"{v['original']:,}"
        return ", ".join(f"{w} {'-' if v[w] is None else format(v[w], ',')}" for w in ("original", "built", "engine"))

    return (f"output {p['name']}: params {fig('params')}; buffers {fig('buffers')}; MACs {fig('macs')} "
            f"(what it depends on; original = built = engine): {'ok' if p['ok'] else 'MISMATCH'}")


def _import_target(target):
    """TARGET is a Python target or an .onnx file, decided by the one rule (archcalc.spec.refs): an
    existing file that is not .onnx, or a .yaml name, is never imported."""
    from ..errors import short
    from ..spec import refs

    kind = refs.resolve(target, targets=True).kind
    if kind not in (refs.ONNX, refs.TARGET):
        import os

        from ..spec import zoo

        what = ""
        if kind == refs.ZOO and zoo.has(target):
            what = "a zoo name, "
        elif refs.exists(target) or refs.is_spec_name(target):
            what = "a folder, " if os.path.isdir(target) else "a file, "
        raise UsageError(f"{short(target)} is {what}not an import target", hint="give pkg.module:factory, path/to/file.py:Name or model.onnx")


def _spec_name(name):
    if name is not None:
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", name):
            raise UsageError(f"--name {name[:80]!r}: letters, digits, '_', '-' and '.'")


def register(app):
    from .common import parse_input

    @app.command("import")
    def import_(
        target: str = typer.Argument(..., metavar="TARGET", show_default=False,
                                     help="pkg.module:factory, path/to/file.py:Name, or model.onnx"),
        output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the spec here (default: stdout)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
        input: Optional[str] = typer.Option(None, "--input", "-i", metavar="CxHxW",
                                            help="The input to trace at (default 3x224x224; CxL or CxDxHxW for a 1-D or 3-D model); the spec's L / H, W / D, H, W default to it."),
        name: Optional[str] = typer.Option(None, "--name", metavar="NAME", help="The spec's name (default: the factory's or file's name)."),
        arg: Optional[List[str]] = typer.Option(None, "--arg", "-a", metavar="KEY=VALUE",
                                                help="A keyword argument of the factory (a Python literal; repeatable)."),
        check: bool = typer.Option(False, "--check", help="Round trip: build the spec, load the original's state_dict, "
                                   "compare params, buffers, MACs and outputs (exit 1 on a mismatch)."),
    ):
        """Write a spec for a PyTorch model (traced with torch.fx) or an ONNX file. A Python TARGET
        is imported and run: name only code you trust."""
        from ..importer import import_target, parse_args

        _import_target(target)
        shape = parse_input(input, ranks=(2, 3, 4))
        args = parse_args(arg)
        if output:  # refused before the import's work: a link, folder, FIFO, device, or a file without --force
            from ..safeio import check_target

            check_target(output, replace=force)
        _spec_name(name)
        text, graph, model = import_target(target, args, shape, name)
        lines = []
        if check:
            if model is None:
                raise UsageError("--check needs the PyTorch model (a Python TARGET), not an ONNX file",
                                 hint="archcalc verify SPEC checks the spec against its own PyTorch build")
            from ..importer.roundtrip import check as roundtrip

            from ..errors import ArchcalcError

            try:
                from ..importer.roundtrip import output_names

                # sizes the forward read were the traced input's (graph.notes): the spec is that model there
                result = roundtrip(text, model, graph.input, file=output or "<imported>", names=output_names(graph),
                                   output_input=graph.input if getattr(graph, "notes", None) else None)
            except ArchcalcError:
                raise
            except Exception as err:  # noqa: BLE001 - torch or the model: one line, never a traceback
                from ..importer import ImportFailed, _one_line

                raise ImportFailed(f"--check of {target}: {_one_line(err)}",
                                   hint="the spec was imported; this is the round trip's own failure") from None
            lines = _check_lines(result)
        if output:
            from ..safeio import write_file

            write_file(output, text, replace=force)
            sys.stderr.write(f"archcalc: wrote {output} ({text.count(chr(10))} lines)\n")
        else:
            sys.stdout.write(text)
        for note in getattr(graph, "notes", ()):
            sys.stderr.write(f"archcalc: note: {note}\n")
        for line in lines:
            sys.stderr.write(f"check: {line}\n")
        if check and not result["ok"]:
            raise CheckFailed("the round trip found a mismatch (above)")
