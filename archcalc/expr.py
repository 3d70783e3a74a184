"""Safe arithmetic on sizes: plain ints on the fast path, sympy only when a symbol is unresolved.

Spec text is untrusted. Expressions such as ``2*C`` or ``$width // 2`` are parsed with :mod:`ast`
into a whitelist (integers, names, ``+ - * // / % **``, parentheses, ``min``/``max``) and then
evaluated on ints or on sympy expressions. Nothing here ever calls ``eval``, ``sympify`` or
``parse_expr`` on spec text.

>>> evaluate(parse("2*C + 1"), {"C": 3})
7
>>> evaluate(parse("$width // 2"), {"$width": 64})
32
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache

_ARG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)")
_ARG_PREFIX = "__arg_"

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Div, ast.Mod, ast.Pow)


class ExprError(ValueError):
    """An expression is malformed or cannot be evaluated; the spec loader adds the location."""


def is_symbolic(value) -> bool:
    """True for a sympy expression that still contains free symbols.

    >>> is_symbolic(3)
    False
    """
    return not isinstance(value, int) and bool(getattr(value, "free_symbols", None))


def sympy():
    """Import sympy on first use (never on the concrete fast path)."""
    import sympy as _sympy

    return _sympy


@lru_cache(maxsize=None)
def symbol(name: str):
    """The sympy Symbol for a size: integer and positive, so ``floor`` simplifies."""
    return sympy().Symbol(name, integer=True, positive=True)


def as_int(value):
    """Turn a sympy Integer into a plain int; leave ints and symbolic expressions alone."""
    if isinstance(value, int):
        return value
    if getattr(value, "is_Integer", False):
        return int(value)
    return value


@lru_cache(maxsize=4096)
def parse(text: str) -> ast.expr:
    """Parse and whitelist an expression; ``$name`` refers to a block argument.

    >>> parse("min(3, $k)") is not None
    True
    """
    source = _ARG.sub(lambda m: _ARG_PREFIX + m.group(1), text.strip())
    if "$" in source:
        raise ExprError(f"'$' must be followed by an argument name in '{text}'")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        raise ExprError(f"cannot parse expression '{text}'") from None
    _check(tree.body, text)
    return tree.body


def _check(node: ast.AST, text: str) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            raise ExprError(f"only integers are allowed in expressions, got {node.value!r} in '{text}'")
    elif isinstance(node, ast.Name):
        pass
    elif isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
        _check(node.left, text)
        _check(node.right, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _check(node.operand, text)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("min", "max")
        and not node.keywords
        and len(node.args) >= 2
    ):
        for arg in node.args:
            _check(arg, text)
    else:
        raise ExprError(
            f"'{text}' is not a size expression (allowed: integers, names, + - * // / % **, "
            "parentheses, min, max)"
        )


def names(tree: ast.expr) -> list[str]:
    """The names an expression uses, block arguments spelled ``$name``, sorted.

    >>> names(parse("min(2*C, $k)"))
    ['$k', 'C']
    """
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    found = {
        _display(n.id) for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in calls
    }
    return sorted(found)


def _display(ident: str) -> str:
    return "$" + ident[len(_ARG_PREFIX):] if ident.startswith(_ARG_PREFIX) else ident


def evaluate(tree: ast.expr, env: dict):
    """Evaluate a parsed expression; ``env`` maps names (``$arg`` or ``SYM``) to ints or sympy.

    Unknown names raise :class:`ExprError` naming the variable.
    """
    if isinstance(tree, ast.Constant):
        return tree.value
    if isinstance(tree, ast.Name):
        key = _display(tree.id)
        if key not in env:
            raise ExprError(f"unknown name '{key}'", key)
        return env[key]
    if isinstance(tree, ast.UnaryOp):
        value = evaluate(tree.operand, env)
        return -value if isinstance(tree.op, ast.USub) else value
    if isinstance(tree, ast.Call):
        values = [evaluate(a, env) for a in tree.args]
        return vmin(*values) if tree.func.id == "min" else vmax(*values)
    left = evaluate(tree.left, env)
    right = evaluate(tree.right, env)
    op = tree.op
    if isinstance(op, ast.Add):
        return left + right
    if isinstance(op, ast.Sub):
        return left - right
    if isinstance(op, ast.Mult):
        return left * right
    if isinstance(op, ast.Pow):
        if isinstance(right, int) and right < 0:
            raise ExprError("negative powers are not sizes")
        return left**right
    if _is_zero(right):
        raise ExprError("division by zero")
    if isinstance(op, ast.FloorDiv):
        return as_int(left // right)
    if isinstance(op, ast.Mod):
        return as_int(left % right)
    # true division: exact for ints, rational for symbols
    if isinstance(left, int) and isinstance(right, int):
        if left % right:
            raise ExprError(f"{left}/{right} is not an integer; use // for floor division")
        return left // right
    return as_int(left / right)


def _is_zero(value) -> bool:
    return value == 0


def vmin(*values):
    if all(isinstance(v, int) for v in values):
        return min(values)
    return as_int(sympy().Min(*values))


def vmax(*values):
    if all(isinstance(v, int) for v in values):
        return max(values)
    return as_int(sympy().Max(*values))


def floordiv(a, b):
    """floor(a / b) for ints or sympy expressions; floor(floor(n/p)/q) becomes floor(n/(p*q)),
    an identity for integer n and positive integers p, q (keeps stacked pools readable)."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    sp = sympy()
    if isinstance(b, int) and b > 0 and not isinstance(a, int):
        c, rest = a.as_coeff_Add()
        if c.is_Integer and isinstance(rest, sp.floor):
            # floor(n/p) + c == floor((n + c p)/p)
            num, den = sp.fraction(sp.together(rest.args[0]))
            if den.is_Integer and den > 0 and num.is_integer:
                return as_int(sp.floor((num + c * den) / (den * b)))
    return as_int(a // b)


def ceildiv(a, b):
    """ceil(a / b) for ints or sympy expressions."""
    return as_int(-((-a) // b))


def simplify(value):
    """A readable closed form for display (factor products of symbols)."""
    if isinstance(value, int):
        return value
    sp = sympy()
    return sp.factor(sp.expand(value)) if value.is_polynomial() else sp.simplify(value)


def substitute(value, values: dict):
    """Substitute ints for named symbols (used by the symbolic == concrete invariant)."""
    if isinstance(value, int):
        return value
    return as_int(value.subs({symbol(k): v for k, v in values.items()}))


def equal(a, b) -> bool:
    """Exact equality of two sizes, symbolic or not."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return sympy().simplify(a - b) == 0
