"""Every place archcalc reaches into another library's private internals, in one module.

Each function here relies on names or behaviour that typer or torch do not promise to keep; each
has a test in tests/test_speedups.py that fails when those internals change (the names, the
signatures, what they do), and pyproject.toml pins the versions those tests were run against
(``typer>=0.29,<0.30``; the ``verify`` extra's ``torch>=2.13,<2.15``). At run time none of them
is silent about a change: each returns whether it took effect (:func:`plain_argument_help`,
:func:`light_coercion`) or what it set (:func:`seed_dynamo_disable`), and the tests assert that it
did. Where they do not take effect (a typer or torch outside the pins) archcalc still works:
slower (pydantic is imported, dynamo is imported) or with typer's own help layout, never wrong.

Nothing is imported from typer or torch at module level (this is a core module, imported by the
CLI before typer is needed and by the verifier before torch is): each function imports lazily.

* :func:`plain_argument_help`: typer's ``TyperArgument.display_type_rich`` and
  ``_usage_display_name`` (an argument with a metavar reads as that metavar in help).
* :func:`light_coercion`: typer's ``core.build_runtime_param``, ``_coercion.RuntimeParam`` (a
  frozen dataclass with ``annotation`` and ``parameter_info`` and a ``_coerce_value(value, param,
  ctx)`` method), ``_coercion.TypeDescriptor`` and ``_click.exceptions.BadParameter``: archcalc's
  own parameter types are converted without pydantic (issue 14: 60-85 ms a run).
* :func:`seed_dynamo_disable` / :func:`without_dynamo`: torch's ``torch._compile._disable_dynamo``
  wrapper (a closure over ``fn`` that calls ``fn.__dynamo_disable`` when set) and the modules
  ``torch._refs``, ``torch._prims``, ``torch._decomp`` (its ``decomposition_table`` and
  ``meta_table``) and ``torch.utils.flop_counter._FlopCounterMode``: torch._dynamo (over a second)
  is not imported while archcalc runs a model (issue 14).
"""

from __future__ import annotations

import functools
import sys

# ----------------------------------------------------------------------------------- typer


def plain_argument_help() -> bool:
    """Arguments with a metavar read as that metavar in help: ``NAME|PATH``, not ``{NAME|PATH}``
    in the usage line and ``NAME|PATH <str>`` in the list (typer 0.29's display). True once
    installed (also when it already was); False where typer lacks the methods it replaces."""
    from typer.core import TyperArgument

    base_type = getattr(TyperArgument, "display_type_rich", None)
    base_usage = getattr(TyperArgument, "_usage_display_name", None)
    if getattr(TyperArgument, "_archcalc_plain", False):
        return True
    if base_type is None or base_usage is None:
        return False

    def display_type_rich(self, ctx):
        return None if self.metavar else base_type(self, ctx)

    def usage_display_name(self):
        if not self.metavar:
            return base_usage(self)
        return self.metavar if self.required else f"[{self.metavar.strip('[]')}]"

    TyperArgument.display_type_rich = display_type_rich
    TyperArgument._usage_display_name = usage_display_name
    TyperArgument._archcalc_plain = True
    return True


def light_coercion(converter, loud) -> bool:
    """Convert parameter values with archcalc's own functions instead of typer's pydantic
    ``TypeAdapter`` (importing pydantic costs 60-85 ms a run, more than the engine on resnet152).

    ``converter(annotation)`` gives a function for one annotation (or None: typer decides); the
    function returns the value, None for a value it does not know (typer's own coercion then
    runs), or raises ValueError. ``loud(err, param)`` gives an exception to raise for such an
    error instead of click's BadParameter (or None). Parameters with a parser, a click type, a
    range or a file annotation always go to typer. True once installed (also when it already
    was); False where typer lacks what it wraps."""
    from dataclasses import dataclass
    from typing import Any

    try:
        from typer import core as tcore
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam, TypeDescriptor
    except ImportError:
        return False
    original = getattr(tcore, "build_runtime_param", None)
    if original is None:
        return False
    if getattr(original, "_archcalc", False):
        return True

    @dataclass(frozen=True)
    class _Light(RuntimeParam):
        convert: Any = None

        def _coerce_value(self, value, param, ctx):
            try:
                out = self.convert(value)
            except ValueError as err:
                instead = loud(err, param)
                if instead is not None:
                    raise instead from None
                raise BadParameter(str(err), ctx=ctx, param=param) from None
            if out is None and value is not None:  # not a value this converter knows: typer's way
                plain = TypeDescriptor(annotation=self.annotation, parameter_info=self.parameter_info,
                                       file_annotation=None)
                return original(plain)._coerce_value(value, param=param, ctx=ctx)
            return out

    def build(descriptor):
        info = descriptor.parameter_info
        plain = descriptor.file_annotation is None and all(
            getattr(info, k, None) is None for k in ("parser", "click_type", "min", "max"))
        convert = converter(descriptor.annotation) if plain else None
        if convert is None:
            return original(descriptor)
        return _Light(annotation=descriptor.annotation, parameter_info=info, convert=convert)

    build._archcalc = True
    build.__wrapped__ = original
    tcore.build_runtime_param = build
    return True


# ----------------------------------------------------------------------------------- torch

# torch wraps code that dynamo must never trace (every TorchDispatchMode's ``__torch_dispatch__``,
# and the elementwise references its CPU and meta batch-norm decompositions call) in
# ``torch._compile._disable_dynamo``, whose wrapper imports ``torch._dynamo`` on its first call to
# build a ``torch._dynamo.disable(fn)``: 1.1-1.4 s, a third of ``archcalc verify resnet152``.
# archcalc compiles nothing, and outside a compile that disable wrapper only calls ``fn``. So while
# archcalc runs a model, each such wrapper that torch's reference modules, decomposition tables and
# archcalc's dispatch modes hold is told, through the cache attribute it reads first, that the
# function to call is ``fn`` itself; afterwards the attributes are removed again, so a process that
# compiles later gets torch's own behaviour. Skipped where dynamo is already loaded.
DYNAMO_ROOTS = ("torch._refs", "torch._prims", "torch._decomp")
_MAX_VISITS = 200_000  # a bound on the walk (torch 2.13 has about 3,200 such functions)
_calm = {"depth": 0, "seeded": []}


def disable_dynamo_code():
    """(the code object of torch's disable-dynamo wrapper, the index of ``fn`` among its free
    variables), or None where torch has no such wrapper."""
    try:
        from torch._compile import _disable_dynamo

        code = _disable_dynamo(lambda: None).__code__
        return code, code.co_freevars.index("fn")
    except (ImportError, AttributeError, ValueError, TypeError):
        return None


def seed_dynamo_disable(dispatch_modes=()) -> list:
    """Set ``fn.__dynamo_disable = fn`` on the functions behind torch's ``_disable_dynamo``
    wrappers (found through ``__wrapped__`` and closures) in torch's reference modules, its
    decomposition tables, the flop counter's dispatch mode and ``dispatch_modes`` (classes);
    returns those it set ([] where dynamo is loaded or torch has no such wrapper)."""
    if "torch._dynamo" in sys.modules:
        return []
    found = disable_dynamo_code()
    if found is None:
        return []
    code, slot = found
    import torch._decomp as decomp
    import torch.utils.flop_counter as flop_counter

    stack = [cls.__dict__.get("__torch_dispatch__")
             for cls in (getattr(flop_counter, "_FlopCounterMode", None), *dispatch_modes) if cls]
    for name, module in list(sys.modules.items()):
        if module is not None and name.startswith(DYNAMO_ROOTS):
            stack.extend(vars(module).values())
    for table in ("decomposition_table", "meta_table"):
        stack.extend(getattr(decomp, table, {}).values())
    seen, seeded = set(), []
    while stack and len(seen) < _MAX_VISITS:
        f = stack.pop()
        if not callable(f) or isinstance(f, type) or id(f) in seen:
            continue
        seen.add(id(f))
        closure = getattr(f, "__closure__", None) or ()
        if getattr(f, "__code__", None) is code and len(closure) > slot:
            fn = closure[slot].cell_contents
            if getattr(fn, "__dynamo_disable", None) is None and hasattr(fn, "__dict__"):
                fn.__dynamo_disable = fn
                seeded.append(fn)
        wrapped = getattr(f, "__wrapped__", None)
        if wrapped is not None:
            stack.append(wrapped)
        for cell in closure:
            try:
                stack.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
    return seeded


def without_dynamo(dispatch_modes=()):
    """Decorator for functions that run a model: torch's disable-dynamo wrappers call their
    function directly while any of them runs (see above). ``dispatch_modes``: a function giving
    the caller's own TorchDispatchMode classes (called when the run starts)."""

    def wrap(run):
        @functools.wraps(run)
        def calm(*args, **kwargs):
            if _calm["depth"] == 0:
                _calm["seeded"] = seed_dynamo_disable(dispatch_modes() if callable(dispatch_modes) else dispatch_modes)
            _calm["depth"] += 1
            try:
                return run(*args, **kwargs)
            finally:
                _calm["depth"] -= 1
                if _calm["depth"] == 0:
                    for fn in _calm["seeded"]:
                        if fn.__dict__.get("__dynamo_disable") is fn:
                            del fn.__dynamo_disable
                    _calm["seeded"] = []

        return calm

    return wrap
