"""Safe arithmetic on sizes: plain ints on the fast path, sympy only when a symbol is unresolved.

Spec text is untrusted. Expressions such as ``2*C`` or ``$width // 2`` are parsed with :mod:`ast`
into a whitelist and then evaluated on ints, exact rationals (:class:`fractions.Fraction`) or sympy
expressions. Nothing here ever calls ``eval``, ``sympify`` or ``parse_expr`` on spec text.

The whitelist: integers and decimals (read exactly: ``1.2`` is 6/5), names (ASCII identifiers),
``$argument``, ``+ - * / // % **`` (``/`` is exact division), comparisons ``< <= > >= == !=``,
``and``, ``or``, ``not``, the conditional ``a if c else b`` (only the chosen branch is evaluated),
and the functions ``min``, ``max``, ``floor``, ``ceil``, ``round`` (half to even, as Python's) and
``abs``. Limits (archcalc/limits.py) bound the text, the number of nodes, exponents and the
magnitude of every intermediate value, so no expression can take unbounded time or memory.

>>> evaluate(parse("2*C + 1"), {"C": 3})
7
>>> evaluate(parse("$width // 2"), {"$width": 64})
32
>>> evaluate(parse("ceil(3 * 1.2)"), {})
4
>>> v = 24 * Fraction(3, 4)   # torchvision's _make_divisible(v, 8), written out
>>> evaluate(parse("max(8, floor(v + 4) // 8 * 8) + (8 if max(8, floor(v + 4) // 8 * 8) < 0.9 * v else 0)"), {"v": v})
24
"""

from __future__ import annotations

import ast
import math
import sys
import re
from fractions import Fraction
from functools import lru_cache

from .limits import MAX_EXPAND_TERMS, MAX_EXPR_CHARS, MAX_EXPR_NODES, MAX_FACTOR_SYMBOLS, MAX_FACTOR_TERMS, MAX_POWER

_ARG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)")
_ARG_PREFIX = "__arg_"

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Div, ast.Mod, ast.Pow)
_CMPOPS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_FUNCS = {"min": (2, None), "max": (2, None), "floor": (1, 1), "ceil": (1, 1), "round": (1, 1), "abs": (1, 1), "sqrt": (1, 1)}
MAX_BITS = 256  # magnitude of any intermediate value (numerator and denominator), about 1e77
ALLOWED = (
    "integers, decimals, names, + - * / // % **, comparisons, and/or/not, 'a if c else b', "
    "parentheses, min, max, floor, ceil, round, abs, sqrt"
)


class ExprError(ValueError):
    """An expression is malformed or cannot be evaluated; the spec loader adds the location."""


def is_symbolic(value) -> bool:
    """True for a sympy expression that still contains free symbols.

    >>> is_symbolic(3)
    False
    """
    return not isinstance(value, int) and bool(getattr(value, "free_symbols", None))


class SympyBlocked(BaseException):
    """Raised by :func:`sympy` where a caller has forbidden its import (a worker of ``check`` that
    hands symbolic specs back to its parent, which imports sympy once for all of them). A
    BaseException, so that no ``except Exception`` on the way turns it into a result."""


_SYMPY_BLOCKED = False


def block_sympy(blocked: bool = True) -> None:
    """From now on, :func:`sympy` raises :class:`SympyBlocked` unless sympy is already imported."""
    global _SYMPY_BLOCKED
    _SYMPY_BLOCKED = blocked


def sympy():
    """Import sympy on first use (never on the concrete fast path)."""
    if _SYMPY_BLOCKED and "sympy" not in sys.modules:
        raise SympyBlocked
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
    from .errors import short

    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression of {len(text)} characters is longer than the limit of {MAX_EXPR_CHARS}")
    if not text.isascii() or not text.isprintable():
        # Python folds identifiers by NFKC ('ℌ' would silently read as 'H'): only ASCII is a name
        raise ExprError(f"{short(text)} holds a character that is not printable ASCII")
    source = _ARG.sub(lambda m: _ARG_PREFIX + m.group(1), text.strip())
    if "$" in source:
        raise ExprError(f"'$' must be followed by an argument name in {short(text)}")
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExprError(f"cannot parse expression {short(text)}") from None
    count = 0
    for _ in ast.walk(tree):  # iterative: bounds the recursive checks below
        count += 1
        if count > MAX_EXPR_NODES:
            raise ExprError(f"expression {short(text)} has more than {MAX_EXPR_NODES} parts")
    _check(tree.body, text)
    return tree.body


def _check(node: ast.AST, text: str) -> None:
    from .errors import short

    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExprError(f"only numbers are allowed in expressions, got {short(node.value)} in {short(text)}")
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise ExprError(f"{short(text)}: numbers must be finite")
        _bounded(_const(node.value))
    elif isinstance(node, ast.Name):
        pass
    elif isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
        _check(node.left, text)
        _check(node.right, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        _check(node.operand, text)
    elif isinstance(node, ast.Compare) and all(isinstance(op, _CMPOPS) for op in node.ops):
        for child in [node.left, *node.comparators]:
            _check(child, text)
    elif isinstance(node, ast.BoolOp):
        for child in node.values:
            _check(child, text)
    elif isinstance(node, ast.IfExp):
        for child in (node.test, node.body, node.orelse):
            _check(child, text)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCS
        and not node.keywords
        and _FUNCS[node.func.id][0] <= len(node.args) <= (_FUNCS[node.func.id][1] or len(node.args))
        and not any(isinstance(a, ast.Starred) for a in node.args)
    ):
        for arg in node.args:
            _check(arg, text)
    else:
        raise ExprError(f"{short(text)} is not a size expression (allowed: {ALLOWED})")


def _const(value):
    """An exact number from a literal: 1.2 is 6/5 (the decimal as written), not the binary float."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExprError(f"numbers must be finite, got {value}")
        return _bounded(_norm(Fraction(repr(value))))
    return value


def _norm(value):
    """Fractions with denominator 1 become ints."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value.numerator)
    return value


def _bounded(value):
    """Raise when a concrete value's numerator or denominator exceeds MAX_BITS bits, or a symbolic
    one's degree exceeds MAX_DEGREE."""
    if isinstance(value, bool):
        return value
    if is_symbolic(value):
        if degree(value) > MAX_DEGREE:
            raise ExprError(f"a symbolic value in the expression has degree above {MAX_DEGREE}")
        return value
    if isinstance(value, int):
        if value.bit_length() > MAX_BITS:
            raise ExprError(f"a value in the expression exceeds 2**{MAX_BITS}")
    elif isinstance(value, Fraction):
        if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
            raise ExprError(f"a value in the expression exceeds 2**{MAX_BITS}")
    return value


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
    """Evaluate a parsed expression; ``env`` maps names (``$arg`` or ``SYM``) to ints, Fractions or
    sympy expressions. Returns an int, a Fraction, a bool (comparisons) or a sympy expression.

    Unknown names raise :class:`ExprError` naming the variable.
    """
    return _norm(_eval(tree, env))


def _eval(tree, env):
    if isinstance(tree, ast.Constant):
        return _const(tree.value)
    if isinstance(tree, ast.Name):
        key = _display(tree.id)
        if key not in env:
            raise ExprError(f"unknown name '{key}'", key)
        value = env[key]
        return _const(value) if isinstance(value, float) else value
    if isinstance(tree, ast.UnaryOp):
        value = _eval(tree.operand, env)
        if isinstance(tree.op, ast.Not):
            return not _truth(value)
        _number(value, "-" if isinstance(tree.op, ast.USub) else "+")
        return -value if isinstance(tree.op, ast.USub) else value
    if isinstance(tree, ast.BoolOp):
        is_and = isinstance(tree.op, ast.And)
        for child in tree.values:  # short-circuit, like Python
            value = _truth(_eval(child, env))
            if value != is_and:
                return value
        return is_and
    if isinstance(tree, ast.IfExp):
        return _eval(tree.body if _truth(_eval(tree.test, env)) else tree.orelse, env)
    if isinstance(tree, ast.Compare):
        left = _eval(tree.left, env)
        for op, right_tree in zip(tree.ops, tree.comparators):
            right = _eval(right_tree, env)
            if not _compare(op, left, right):
                return False
            left = right
        return True
    if isinstance(tree, ast.Call):
        values = [_eval(a, env) for a in tree.args]
        for v in values:
            _number(v, tree.func.id)
        return _bounded(_call(tree.func.id, values))
    left = _eval(tree.left, env)
    right = _eval(tree.right, env)
    op = tree.op
    sym = _OPS_TEXT[type(op)]
    _number(left, sym)
    _number(right, sym)
    if isinstance(op, ast.Add):
        return _bounded(left + right)
    if isinstance(op, ast.Sub):
        return _bounded(left - right)
    if isinstance(op, ast.Mult):
        return _bounded(left * right)
    if isinstance(op, ast.Pow):
        return _power(left, right)
    if _is_zero(right):
        raise ExprError("division by zero")
    if isinstance(op, ast.FloorDiv):
        if is_symbolic(left) or is_symbolic(right):
            return as_int(floordiv(left, _sym(right)) if isinstance(right, int) else sympy().floor(_sym(left) / _sym(right)))
        return _bounded(math.floor(Fraction(left) / Fraction(right)))
    if isinstance(op, ast.Mod):
        if is_symbolic(left) or is_symbolic(right):
            return as_int(_sym(left) % _sym(right))
        return _bounded(_norm(Fraction(left) % Fraction(right)))
    # true division: exact rationals
    if is_symbolic(left) or is_symbolic(right):
        return as_int(_sym(left) / _sym(right))
    return _bounded(_norm(Fraction(left) / Fraction(right)))


_OPS_TEXT = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}


def _number(value, what):
    if isinstance(value, bool) or not (isinstance(value, (int, Fraction)) or is_symbolic(value) or _is_sym_number(value)):
        raise ExprError(f"'{what}' needs numbers, got {'a comparison' if isinstance(value, bool) else type(value).__name__}")


def _is_sym_number(value):
    return getattr(value, "is_number", False) is True


def _truth(value):
    if isinstance(value, bool):
        return value
    if is_symbolic(value):
        raise ExprError("a condition depends on an unresolved symbol", None)
    raise ExprError("a condition must be a comparison (e.g. 'v < 0.9 * w'), not a number")


def _compare(op, left, right):
    _number(left, "comparison")
    _number(right, "comparison")
    if is_symbolic(left) or is_symbolic(right):
        raise ExprError("cannot compare sizes that depend on unresolved symbols; give them values with --set")
    a, b = Fraction(left), Fraction(right)
    return {ast.Lt: a < b, ast.LtE: a <= b, ast.Gt: a > b, ast.GtE: a >= b, ast.Eq: a == b, ast.NotEq: a != b}[type(op)]


def _call(name, values):
    if name in ("min", "max"):
        return vmin(*values) if name == "min" else vmax(*values)
    (v,) = values
    if is_symbolic(v):
        sp = sympy()
        if name == "floor":
            return as_int(sp.floor(v))
        if name == "ceil":
            return as_int(sp.ceiling(v))
        if name == "abs":
            return as_int(sp.Abs(v))
        raise ExprError(f"{name}() needs a concrete value; give its symbols values with --set")
    v = Fraction(v)
    if name == "floor":
        return math.floor(v)
    if name == "ceil":
        return math.ceil(v)
    if name == "round":
        return round(v)  # half to even, exactly as Python's round() on the same rational
    if name == "sqrt":
        return _sqrt(v)
    return _norm(abs(v))


def _sqrt(v: Fraction):
    """The square root of a rational: exact where it is rational (sqrt(16) = 4, sqrt(9/4) = 3/2);
    else a rational less than 2**-64 / q below it (p/q the argument), so floor() and ceil() of it are
    exact unless the root lies that close above a whole number, and a float key gets it correctly rounded."""
    if v < 0:
        raise ExprError(f"sqrt of a negative number ({v})")
    p, q = v.numerator, v.denominator
    rp, rq = math.isqrt(p), math.isqrt(q)
    if rp * rp == p and rq * rq == q:
        return _norm(Fraction(rp, rq))
    return _bounded(Fraction(math.isqrt((p * q) << 128), q << 64))  # sqrt(p q) / q, scaled by 2**64


def _power(base, exp):
    if is_symbolic(exp) or not isinstance(exp, int):
        raise ExprError("an exponent must be a whole number (and not a symbol)")
    if exp < 0:
        raise ExprError("negative powers are not sizes")
    if exp > MAX_POWER:
        raise ExprError(f"exponent {exp} is above the limit of {MAX_POWER}")
    if not is_symbolic(base):
        f = Fraction(base)
        bits = max(abs(f.numerator).bit_length(), f.denominator.bit_length())
        if bits * exp > MAX_BITS + 64:
            raise ExprError(f"a value in the expression exceeds 2**{MAX_BITS}")
        return _bounded(_norm(f**exp))
    if degree(base) * exp > MAX_DEGREE:
        raise ExprError(f"a symbolic value in the expression has degree above {MAX_DEGREE}")
    return base**exp


def _sym(value):
    """A Fraction becomes a sympy Rational where it meets a symbol."""
    if isinstance(value, Fraction):
        return sympy().Rational(value.numerator, value.denominator)
    return value


def _is_zero(value) -> bool:
    return value == 0


def vmin(*values):
    if all(isinstance(v, (int, Fraction)) for v in values):
        return _norm(min(values))
    return as_int(sympy().Min(*(_sym(v) for v in values)))


def vmax(*values):
    if all(isinstance(v, (int, Fraction)) for v in values):
        return _norm(max(values))
    return as_int(sympy().Max(*(_sym(v) for v in values)))


def floordiv(a, b):
    """floor(a / b) for ints or sympy expressions.

    Symbolic sizes keep a canonical form: an integer plus floor((N + R) / M), where N is an
    integer-valued polynomial in the symbols (no constant term), 0 <= R < M and M a positive
    integer. Nested floors compose exactly (floor((floor(X/p) + c)/q) = floor((X + c p)/(p q)) for
    integer X and positive integers p, q), so a size after any number of convs and pools stays one
    floor of an affine form and shapes compare structurally.

    >>> H = symbol("H")
    >>> floordiv(floordiv(H - 1, 2) + 1 - 1, 2) + 1      # two 3x3/2 windows, padding 1
    floor(H/4 + 3/4)
    >>> ceildiv(ceildiv(H, 2), 2) == ceildiv(H, 4)
    True
    """
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    if isinstance(b, int) and b > 0 and not isinstance(a, (int, Fraction)):
        form = canonical(a)
        if form is not None:
            n, r, m, c = form  # a == c + floor((n + r) / m)
            return _floor_form(n, r + c * m, m * b)
    return as_int(a // b)


def ceildiv(a, b):
    """ceil(a / b) for ints or sympy expressions (canonical as :func:`floordiv`)."""
    if isinstance(a, int) and isinstance(b, int):
        return -((-a) // b)
    if isinstance(b, int) and b > 0 and not isinstance(a, (int, Fraction)):
        form = canonical(a)
        if form is not None:
            n, r, m, c = form
            return _floor_form(n, r + c * m + (b - 1) * m, m * b)  # ceil(a/b) = floor((a + b - 1)/b)
    return as_int(-((-a) // b))


def _floor_form(n, r, m):
    """c + floor((n + r') / m) with r = c m + r', 0 <= r' < m (n integer-valued)."""
    sp = sympy()
    c, rr = divmod(int(r), int(m))
    if m == 1:
        return as_int(n + r)
    return as_int(sp.floor((n + rr) / sp.Integer(m)) + c)


def canonical(a):
    """(N, R, M, C) with a == C + floor((N + R) / M), N integer-valued with no constant term, R and
    C integers, M >= 1; or None where ``a`` has no such form (a product of floors, a Max). A plain
    integer-valued polynomial is (a - C, 0, 1, C)."""
    sp = sympy()
    if not expandable(a):
        return None
    a = sp.expand(a)
    c, rest = a.as_coeff_Add()
    if not c.is_Integer:
        return None
    if isinstance(rest, (sp.floor, sp.ceiling)):
        u = sp.expand(rest.args[0])
        m = 1
        for term in sp.Add.make_args(u):
            coeff = term.as_coeff_Mul()[0]
            if not coeff.is_Rational:
                return None
            m = sp.ilcm(m, coeff.q)
        whole = sp.expand(u * m)
        r, n = whole.as_coeff_Add()
        if not r.is_Integer or n.is_integer is not True or n == 0:
            return None
        r = int(r)
        if isinstance(rest, sp.ceiling):  # ceil(x/m) = floor((x + m - 1)/m)
            r += m - 1
        return n, r, int(m), int(c)
    if rest != 0 and rest.is_integer is True and rest.is_polynomial():
        return rest, 0, 1, int(c)
    return None


def expansion_terms(expr, cap: int = MAX_EXPAND_TERMS) -> int:
    """An upper bound on the terms ``sympy.expand(expr)`` builds, the terms it expands inside
    function arguments (floor(...), Max(...)) included; any value above ``cap`` is returned as
    cap + 1. One pass over the expression's distinct subterms, no expansion: a sum adds its parts'
    counts, a product multiplies them, a power (t terms)**n has at most C(t + n - 1, n) (the
    multinomial count: (H + W + K + 1)**40 gives 12,341).

    >>> H, W = symbol("H"), symbol("W")
    >>> expansion_terms((H + W + 1) ** 60, 10**6), expansion_terms(4 * H * W + 3)
    (1891, 2)
    """
    if isinstance(expr, (int, Fraction)) or getattr(expr, "is_number", False):
        return 1
    memo: dict = {}
    work = [0]

    def terms(e):
        hit = memo.get(e)
        if hit is not None:
            return hit
        if e.is_Atom:
            t = 1
        elif e.is_Add:
            t = 0
            for a in e.args:
                t += terms(a)
                if t > cap:
                    break
        elif e.is_Mul:
            t = 1
            for a in e.args:
                t *= terms(a)
                if t > cap:
                    break
        elif e.is_Pow and e.exp.is_Integer:
            t, n = terms(e.base), abs(int(e.exp))
            t = 1 if t == 1 else (cap + 1 if n > cap else math.comb(t + n - 1, n))
        else:  # a function, a condition, a power with a symbolic exponent: expand works inside it
            t = 1
            for a in e.args:
                work[0] += terms(a)
        t = min(t, cap + 1)
        memo[e] = t
        return t

    try:
        return min(max(terms(expr), work[0]), cap + 1)
    except RecursionError:
        return cap + 1


def expandable(value) -> bool:
    """Is ``value`` small enough to expand (at most MAX_EXPAND_TERMS terms)? Checked before
    every expansion of a spec-derived expression."""
    return isinstance(value, (int, Fraction)) or expansion_terms(value) <= MAX_EXPAND_TERMS


def expand(value):
    """``sympy.expand``, refused with a one-line SpecError beyond MAX_EXPAND_TERMS terms (checked
    before expanding)."""
    if isinstance(value, (int, Fraction)):
        return value
    if not expandable(value):
        from .errors import SpecError

        raise SpecError(
            f"a closed form would expand to more than {MAX_EXPAND_TERMS:,} terms, the limit for exact symbolic work",
            hint="give some symbols values with --set",
        )
    return sympy().expand(value)


@lru_cache(maxsize=8192)
def simplify(value):
    """A readable closed form for display, in time bounded by the expression's size: polynomials
    are expanded and factored (27*C**2); expressions with floor/ceil or conditions are expanded and
    collected by term, never handed to sympy's open-ended ``simplify``. Beyond MAX_EXPAND_TERMS
    terms (checked before expanding) the value is shown as computed, unexpanded; a polynomial of
    more than MAX_FACTOR_TERMS terms or MAX_FACTOR_SYMBOLS symbols is shown expanded, unfactored
    (multivariate factoring takes time exponential in them)."""
    if isinstance(value, (int, Fraction)):
        return value
    sp = sympy()
    if degree(value) > MAX_DEGREE or not expandable(value):
        return value
    expanded = sp.expand(value)
    if value.is_polynomial():
        if len(expanded.free_symbols) > MAX_FACTOR_SYMBOLS or len(sp.Add.make_args(expanded)) > MAX_FACTOR_TERMS:
            return expanded
        factored = sp.factor(expanded)
        # a product of several symbolic factors reads better factored (C*(C + 2)); a constant times
        # one sum (2*(48608*n - 10963)) reads better expanded
        if factored.is_Mul and sum(1 for f in factored.args if not f.is_number) > 1:
            return factored
        return expanded
    return expanded


def text(value) -> str:
    """A closed form as people write it: ``ceil(H/32)`` for floor((H + 31)/32), ``floor((H - 1)/2)``,
    ``min``/``max``; the same text in the table, JSON, CSV and Markdown.

    >>> H = symbol("H")
    >>> text(14417920 * ceildiv(H, 32) + floordiv(H - 1, 2) + 1)   # floor((H - 1)/2) + 1 is ceil(H/2)
    '14417920*ceil(H/32) + ceil(H/2)'
    >>> text(floordiv(H + 1, 4))
    'floor((H + 1)/4)'
    """
    if isinstance(value, (int, Fraction)):
        return str(value)
    return _printer().doprint(value)


@lru_cache(maxsize=8192)
def form(value) -> str:
    """A closed form in sympy's syntax, the text of JSON documents: the same forms as :func:`text`
    (``floor((H + 1)/4)``) but spelled so that ``sympy.sympify`` reads back the same function
    (``ceiling``, ``Min``/``Max``, ``Piecewise((a, Ne(x, 1)), (b, True))``, ``Or``/``And``). Read
    it with the spec's symbols named, since sympy's own names (``N``, ``S``, ``E``, ``I``, ``beta``)
    would otherwise shadow them: ``sympify(text, locals={n: Symbol(n) for n in symbols})``
    (docs/json.md).

    >>> H = symbol("H")
    >>> form(14417920 * ceildiv(H, 32) + floordiv(H - 1, 2) + 1)
    '14417920*ceiling(H/32) + ceiling(H/2)'
    >>> read = sympy().sympify(form(vmax(H, 3) + ceildiv(H, 4)), locals={"H": H})
    >>> [read.subs(H, h) for h in (1, 5, 9)] == [3 + 1, 5 + 2, 9 + 3]
    True
    """
    if isinstance(value, (int, Fraction)):
        return str(value)
    return _printer(True).doprint(value)


@lru_cache(maxsize=2)
def _printer(sympy_syntax: bool = False):
    sympy()
    from sympy.printing.str import StrPrinter

    class Printer(StrPrinter):
        def _print_floor(self, expr):
            return self._window(expr.args[0], floor=True)

        def _print_ceiling(self, expr):
            return self._window(expr.args[0], floor=False)

        def _window(self, u, floor):
            sp = sympy()
            form = canonical(sp.floor(u) if floor else sp.ceiling(u))
            if form is None or form[3] != 0:
                return ("floor(" if floor else "ceil(") + self._print(u) + ")"
            n, r, m, _ = form
            num = self._print(n)
            if r == m - 1 and m > 1:
                return f"ceil({self._frac(num, n, m)})"
            if r == 0:
                return f"floor({self._frac(num, n, m)})"
            return f"floor(({num} + {r})/{m})"

        def _frac(self, num, expr, m):
            simple = expr.is_Symbol or expr.is_Mul and len(expr.args) == 2 and expr.args[0].is_Number
            return f"{num}/{m}" if simple else f"({num})/{m}"

        def _print_Piecewise(self, expr):
            # (a if c else b), as in a spec's own expressions
            *pairs, last = expr.args
            out = self._print(last[0]) if last[1] == True else "undefined"  # noqa: E712 - sympy true
            for value, cond in reversed(pairs):
                out = f"{self._print(value)} if {self._print(cond)} else {out}"
            return f"({out})"

        def _print_Unequality(self, expr):
            return f"{self._print(expr.lhs)} != {self._print(expr.rhs)}"

        def _print_Equality(self, expr):
            return f"{self._print(expr.lhs)} == {self._print(expr.rhs)}"

        def _print_Or(self, expr):
            return " or ".join(self._print(a) for a in expr.args)

        def _print_And(self, expr):
            return " and ".join(self._print(a) for a in expr.args)

        def _print_Min(self, expr):
            return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

        def _print_Max(self, expr):
            return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    class SympyPrinter(Printer):
        """sympy's own spelling where the people's differs (ceil, min, max, a if c else b)."""

        def _window(self, u, floor):
            out = super()._window(u, floor)
            return "ceiling(" + out[len("ceil("):] if out.startswith("ceil(") else out

        def _print_Piecewise(self, expr):
            return "Piecewise(" + ", ".join(f"({self._print(v)}, {self._print(c)})" for v, c in expr.args) + ")"

        def _print_Unequality(self, expr):
            return f"Ne({self._print(expr.lhs)}, {self._print(expr.rhs)})"

        def _print_Equality(self, expr):
            return f"Eq({self._print(expr.lhs)}, {self._print(expr.rhs)})"

        def _print_Or(self, expr):
            return "Or(" + ", ".join(self._print(a) for a in expr.args) + ")"

        def _print_And(self, expr):
            return "And(" + ", ".join(self._print(a) for a in expr.args) + ")"

        def _print_Not(self, expr):
            return f"Not({self._print(expr.args[0])})"

        def _print_Min(self, expr):
            return "Min(" + ", ".join(self._print(a) for a in expr.args) + ")"

        def _print_Max(self, expr):
            return "Max(" + ", ".join(self._print(a) for a in expr.args) + ")"

        def _print_BooleanTrue(self, expr):
            return "True"

        def _print_BooleanFalse(self, expr):
            return "False"

    return SympyPrinter() if sympy_syntax else Printer()


MAX_DEGREE = 64  # of a symbolic size, counting floor(...) terms as variables


def degree(expr) -> int:
    """Total degree of a sympy expression, every non-arithmetic subterm (a symbol, floor(...),
    Max(...)) counting as a variable; computed in one pass over the tree.

    >>> degree(symbol("H") ** 3 * symbol("W") + 1)
    4
    """
    if isinstance(expr, (int, Fraction)) or getattr(expr, "is_number", False):
        return 0
    if expr.is_Add:
        return max(degree(a) for a in expr.args)
    if expr.is_Mul:
        return sum(degree(a) for a in expr.args)
    if expr.is_Pow:
        e = expr.exp
        return degree(expr.base) * (int(e) if e.is_Integer and e > 0 else 1)
    return 1


def substitute(value, values: dict):
    """Substitute ints for named symbols (used by the symbolic == concrete invariant)."""
    if isinstance(value, int):
        return value
    return as_int(value.subs({symbol(k): v for k, v in values.items()}))


MAX_PROOF_POINTS = 4096  # integer points at which decide_equal may evaluate two closed forms


def decide_equal(a, b):
    """Decide whether two sizes are equal at every integer value of their symbols: ``(True, None)``,
    ``(False, point)`` with a point where they differ, or ``(None, None)`` where no proof is within
    reach (a product of symbols, a Max, a Piecewise that expansion does not cancel; or more than
    MAX_PROOF_POINTS points to try).

    Canonical forms compare structurally, but some functions have no single-floor form
    (floor(3*floor(X/2)/2): an upsample by 1.5 after a stride 2) and the same function reaches a
    join written two ways. Such sizes are *quasi-affine*: sums of rational multiples of symbols
    and floor/ceiling of quasi-affine arguments. With L a common multiple of the denominators of
    every floor's argument's slopes, each such form satisfies f(x + L e_i) = f(x) + L c_i for all
    integer x (the floor's argument moves by an integer), so h = a - b is c.x plus a function of
    period L in every symbol. h = 0 on the box {1..L+1}^n gives c_i L = h(1 + L e_i) - h(1) = 0,
    then h periodic and zero on a whole period: zero everywhere. That is the proof: (L + 1)^n exact
    evaluations.

    >>> H = symbol("H")
    >>> u = floordiv(3 * floordiv(H + 1, 2), 2)          # no single floor of an affine form
    >>> decide_equal(floordiv(u - 1, 1) + 1, u)
    (True, None)
    >>> decide_equal(u, floordiv(3 * H, 4))
    (False, {'H': 1})
    """
    if isinstance(a, int) and isinstance(b, int):
        return (a == b, None if a == b else {})
    if a == b:
        return True, None
    try:
        if expandable(a - b) and sympy().expand(a - b) == 0:
            return True, None
    except (TypeError, ValueError):
        pass
    h = sympy().sympify(a - b)
    names = sorted(h.free_symbols, key=str)
    if not names:
        return (h == 0, None if h == 0 else {})
    period = _period(h, names)
    if period is None or (period + 1) ** len(names) > MAX_PROOF_POINTS:
        return None, None
    import itertools

    for point in itertools.product(range(1, period + 2), repeat=len(names)):
        env = dict(zip(names, point))
        if value_at(h, env) != 0:
            return False, {str(n): v for n, v in env.items()}
    return True, None


def _period(expr, names):
    """L for :func:`decide_equal`: the least common multiple of the denominators of the slopes of
    every floor/ceiling argument, or None where ``expr`` is not quasi-affine."""
    sp = sympy()
    lcm = [1]
    memo: dict = {}

    def slopes(e):
        """Per symbol, the rational slope of the quasi-affine ``e``; None where it is not one."""
        hit = memo.get(e, False)
        if hit is not False:
            return hit
        out = None
        if e.is_Rational:
            out = (sp.Integer(0),) * len(names)
        elif e.is_Symbol:
            out = tuple(sp.Integer(1 if e == n else 0) for n in names)
        elif e.is_Add:
            parts = [slopes(x) for x in e.args]
            if all(p is not None for p in parts):
                out = tuple(sum(col, sp.Integer(0)) for col in zip(*parts))
        elif e.is_Mul:
            coeff, rest = e.as_coeff_Mul()  # a rational times one factor; a product of two is not
            if coeff.is_Rational and not rest.is_Mul:
                inner = slopes(rest)
                if inner is not None:
                    out = tuple(coeff * v for v in inner)
        elif isinstance(e, (sp.floor, sp.ceiling)):
            inner = slopes(e.args[0])
            if inner is not None:
                for v in inner:
                    lcm[0] = int(sp.ilcm(lcm[0], sp.Rational(v).q))
                out = inner
        memo[e] = out
        return out

    if slopes(expr) is None:
        return None
    return lcm[0]


def value_at(expr, env):
    """``expr`` (sums, products, integer powers, floor, ceiling, Min, Max of rationals and
    symbols) at integer values of its symbols (``env``: symbol -> int), exactly as a Fraction;
    None for any other form. A cheap evaluation (no substitution, no simplification)."""
    sp = sympy()
    if expr.is_Symbol:
        v = env.get(expr)
        return None if v is None else Fraction(v)
    if expr.is_Rational:
        return Fraction(int(expr.p), int(expr.q))
    if expr.is_Pow:
        base, exp = expr.args
        b = value_at(base, env)
        if b is None or not exp.is_Integer or (b == 0 and exp < 0):
            return None
        return b ** int(exp)
    args = [value_at(x, env) for x in expr.args]
    if any(v is None for v in args):
        return None
    if expr.is_Add:
        return sum(args, Fraction(0))
    if expr.is_Mul:
        out = Fraction(1)
        for v in args:
            out *= v
        return out
    if isinstance(expr, sp.floor):
        return Fraction(math.floor(args[0]))
    if isinstance(expr, sp.ceiling):
        return Fraction(math.ceil(args[0]))
    if isinstance(expr, sp.Max):
        return max(args)
    if isinstance(expr, sp.Min):
        return min(args)
    return None


def equal(a, b) -> bool:
    """Exact equality of two sizes, symbolic or not (structural after expansion: bounded time;
    False where equality would need a proof beyond that)."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return expand(a - b) == 0
