"""Joins of parallel branches: concat, add, mean, mul."""

from __future__ import annotations

from ..expr import as_int, decide_equal, is_symbolic
from .base import TENSOR, Key, LayerType, ShapeError, Stack, Text, args_of, prod, register, shape_text


class _Join(LayerType):
    torch_module = "join_torch"  # its own nn.Module classes
    joins = True

    def channel_reads(self, a, xs, y, lo, hi):
        # an elementwise join: output channel c reads channel c of every branch (a C x 1 x 1 gate's too)
        return [(i, lo, hi, None) for i in range(len(xs))]

    def mismatch(self, a, xs, i):
        names = a.get("branches") or [f"b{k + 1}" for k in range(len(xs))]
        return f"branch '{names[0]}' gives {shape_text(xs[0])} but branch '{names[i]}' gives {shape_text(xs[i])}"

    def agree(self, a, xs, i, x, first):
        """Do the dimensions agree at every size? Closed forms equal as functions but written two
        ways (issue 21 item 6) are proved equal by :func:`archcalc.expr.decide_equal`; a refusal
        says when no proof was within reach."""
        if len(x) != len(first):
            return False
        for d, e in zip(x, first):
            if d == e:
                continue
            if not is_symbolic(d) and not is_symbolic(e):
                return False
            same, point = decide_equal(d, e)
            if same is None:
                raise ShapeError(self.mismatch(a, xs, i) + ": archcalc cannot prove these closed forms equal "
                                 "at every size", hint="give the symbols values with --set")
            if not same:
                return False
        return True

    def same_spatial(self, a, xs):
        first = xs[0]
        for i, x in enumerate(xs[1:], start=1):
            if len(x) != len(first) or not self.agree(a, xs, i, tuple(x[1:]), tuple(first[1:])):
                raise ShapeError(self.mismatch(a, xs, i), hint="branches must agree on spatial size")

    def same_shape(self, a, xs):
        first = xs[0]
        for i, x in enumerate(xs[1:], start=1):
            if tuple(x) != tuple(first) and not self.agree(a, xs, i, tuple(x), tuple(first)):
                hint = "branches must agree on shape"
                if len(x) == len(first) == 3 and x[0] != first[0]:
                    hint = "project the shortcut with a 1x1 conv (stride to match) so channels agree"
                elif len(x) == len(first) == 3:
                    hint = (
                        "give the shortcut the same stride as the other branch "
                        "(a strided 1x1 conv projection, or pad_channels)"
                    )
                raise ShapeError(self.mismatch(a, xs, i), hint=hint)
        return first


@register
class Concat(_Join):
    name = "concat"
    doc = (
        "Joins parallel branches along channels (torch.cat(dim=1)); the other sizes must agree. With "
        "`dim: 2` (height) or `dim: 3` (width), beside it in the item (`{concat: [...], dim: 2}`), along "
        "that spatial axis instead: each output position then reads one branch at a shifted position "
        "(its receptive field is that branch's there, exact per position; unknown where sizes are symbols)."
    )
    keys = (Key("dim", "size", 1, "the axis joined, as torch's dim: 1 channels, 2 height, 3 width"),)
    formulas = {"shape": "(C_1 + C_2 + ...) x H x W (or H_1 + H_2 + ... with dim 2, W with dim 3)", "params": "0", "macs": "0"}

    grad_alias = True  # backward: each input's gradient is a slice (a view) of the output's

    def out(self, a, xs):
        d = a.get("dim", 1)
        if d == 1:
            self.same_spatial(a, xs)
            return (as_int(sum(x[0] for x in xs)),) + tuple(xs[0][1:])
        first = xs[0]
        if d > len(first):
            raise ShapeError(f"concat: dim {d} is not an axis of a {shape_text(first)} input", hint="dim: 1 (channels), 2 (height) or 3 (width)")
        for i, x in enumerate(xs[1:], start=1):
            if len(x) != len(first) or any(x[j] != first[j] for j in range(len(first)) if j != d - 1):
                raise ShapeError(self.mismatch(a, xs, i), hint=f"branches must agree on every axis but dim {d}")
        out = list(first)
        out[d - 1] = as_int(sum(x[d - 1] for x in xs))
        return tuple(out)

    def details(self, a, xs, y):
        return "" if a.get("dim", 1) == 1 else f"dim {a['dim']}"

    def channel_reads(self, a, xs, y, lo, hi):
        if a.get("dim", 1) != 1:  # stacked along H or W: channel c of every branch
            return [(i, lo, hi, None) for i in range(len(xs))]
        reads, off = [], 0
        for i, x in enumerate(xs):  # the branches whose channels fall in lo .. hi - 1
            first, stop = max(lo - off, 0), min(hi - off, x[0])
            if first < stop:
                reads.append((i, first, stop, None))
            off += x[0]
        return reads

    def window(self, a, xs, y):
        # along channels the field is the branches' union; along H or W each output position reads one
        # branch, shifted (Stack), and the other axis is the union
        d = a.get("dim", 1)
        if d == 1:
            return None
        if len(y) != 3 or d not in (2, 3):
            return "unknown"
        stack = Stack(tuple(x[d - 1] for x in xs))
        return (stack, None) if d == 2 else (None, stack)

    def size_formula(self, a, xs, y):
        d = a.get("dim", 1)
        what = {1: "channels", 2: "height", 3: "width"}.get(d, f"dim {d}")
        return Text(f"output {what}: the branches' {what} added, " + " + ".join("{}" for _ in xs) + " = {}",
                    tuple(x[d - 1] for x in xs) + (y[d - 1],))

    def torch(self, a, xs, y):
        d = a.get("dim", 1)
        return [("Concat", {} if d == 1 else {"dim": d})]

    torch_ops = ("cat", "concat", "concatenate", "Concat")

    def from_torch(self, op, kw, xs, y):
        dim = kw.get("dim", 1 if op == "Concat" else 0)
        ranks = {len(x) for x in xs}
        if len(ranks) == 1 and ranks <= {2, 4} and isinstance(dim, int):  # 1-D, 3-D: along channels only
            n = len(xs[0]) + 1  # N, C, ...
            return {} if -n <= dim < n and dim % n == 1 else None
        if not all(len(x) == 3 for x in xs) or not -3 <= dim <= 3 or dim == 0:
            return None
        dim = dim % 4 if dim < 0 else dim
        return {} if dim == 1 else {"dim": dim}


@register
class Add(_Join):
    name = "add"
    doc = "Residual sum of branches; a branch `identity` (or `[]`) is the shortcut. Shapes must agree."
    formulas = {"shape": "unchanged", "params": "0", "macs": "0 (additions are not MACs)"}

    grad_alias = True  # backward hands the output's gradient to every input, no copy

    def out(self, a, xs):
        return self.same_shape(a, xs)

    def scratch(self, a, xs, y, itemsize, training):
        return prod(y) * itemsize if len(xs) > 2 else 0  # ((x1 + x2) + x3): one partial sum alive

    def torch(self, a, xs, y):
        return [("Add", {})]

    torch_ops = ("add", "iadd", "add_", "Add")
    channels_last = True  # two channels-last tensors of one shape: the same sum

    def from_torch(self, op, kw, xs, y):
        # branches of one shape only: torch broadcasts a C x 1 x 1 tensor over the map, add does not
        # (timm's GlobalContext with fuse_add: the importer names it)
        same = all(tuple(x) == tuple(xs[0]) for x in xs)
        return {} if _two_tensors(op, kw) and kw.get("alpha", 1) == 1 and same else None

    def probe(self, a, xs, y, collapse):
        return [("Mean", {})]  # the same support, without doubling the probe's values per block


@register
class Mean(_Join):
    name = "mean"
    doc = "Elementwise mean of branches (FractalNet's join). Shapes must agree."
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}

    def out(self, a, xs):
        return self.same_shape(a, xs)

    grad_shared = True  # backward: the output's gradient divided by the count, handed to every input

    def scratch(self, a, xs, y, itemsize, training):
        return prod(y) * itemsize  # the sum, alive while it is divided

    def torch(self, a, xs, y):
        return [("Mean", {})]


def _two_tensors(op, kw):
    """A call of two tensors (``a + b``, ``torch.add(a, b)``, ``a.mul(b)``), or archcalc's own module."""
    args = args_of(kw) or [kw.get("input"), kw.get("other")]
    return op[:1].isupper() or (len(args) == 2 and all(a is TENSOR for a in args))


def _broadcast(x, z):
    return tuple(d if d != 1 else e for d, e in zip(x, z))


@register
class Mul(_Join):
    name = "mul"
    doc = (
        "Elementwise product of branches with broadcasting: each branch is C x H x W or C x 1 x 1 "
        "(the same C), and the output is the largest. Squeeze-excitation: `mul: {trunk: identity, "
        "gate: [global_avgpool, conv, relu, conv, sigmoid]}`; also LR-ASPP's head and attention gates."
    )
    formulas = {"shape": "the largest branch (C x H x W)", "params": "0", "macs": "0 (products are not MACs)"}

    def out(self, a, xs):
        first = xs[0]
        if any(len(x) != len(first) for x in xs):
            i = next(i for i, x in enumerate(xs) if len(x) != len(first))
            raise ShapeError(self.mismatch(a, xs, i), hint="multiply feature maps with feature maps (C x H x W or C x 1 x 1)")
        if len(first) == 1:
            return self.same_shape(a, xs)
        ones = (1,) * (len(first) - 1)  # a gate: C x 1 x 1 (C x 1, C x 1 x 1 x 1 on 1-D, 3-D maps)
        big = max(xs, key=lambda x: 0 if tuple(x[1:]) == ones else 1)
        for i, x in enumerate(xs):
            if x[0] != first[0]:
                raise ShapeError(self.mismatch(a, xs, i), hint="branches must agree on channels (a gate is C x 1 x 1)")
            if tuple(x[1:]) != ones and tuple(x[1:]) != tuple(big[1:]):
                raise ShapeError(self.mismatch(a, xs, i), hint="each branch is C x H x W or C x 1 x 1 (broadcast)")
        return tuple(big)

    def saves(self, a, training):
        return ("operands",)  # d(a*b)/da needs b and d(a*b)/db needs a

    def workspace(self, a, xs, y):
        # with more than two branches the partial products are kept too: ((x1*x2)*x3)...
        total, part = 0, xs[0]
        for x in xs[1:-1]:
            part = _broadcast(part, x)
            total = total + prod(part)
        return as_int(total)

    def scratch(self, a, xs, y, itemsize, training):
        # ((x1 * x2) * x3) ...: each partial product alive while the next is made
        sizes, part = [], xs[0]
        for x in xs[1:-1]:
            part = _broadcast(part, x)
            sizes.append(prod(part))
        sizes.append(prod(y))
        peak = max(p + q for p, q in zip([0] + sizes, sizes))
        return as_int((peak - prod(y)) * itemsize)

    def torch(self, a, xs, y):
        return [("Mul", {})]

    torch_ops = ("mul", "imul", "mul_", "Mul")

    def from_torch(self, op, kw, xs, y):
        return {} if _two_tensors(op, kw) else None

    def probe(self, a, xs, y, collapse):
        # on positive values a product and a mean depend on the same positions; the mean keeps the
        # probe's values from squaring at every gate
        return [("Mean", {})]


@register
class Sub(_Join):
    name = "sub"
    aliases = ("subtract",)
    doc = "The first branch minus the second (torch.sub): exactly two branches of one shape."
    formulas = {"shape": "unchanged", "params": "0", "macs": "0 (subtractions are not MACs)"}

    def out(self, a, xs):
        if len(xs) != 2:
            raise ShapeError(f"sub takes exactly two branches (the first minus the second), got {len(xs)}")
        return self.same_shape(a, xs)

    def torch(self, a, xs, y):
        return [("Sub", {})]

    torch_ops = ("sub", "isub", "sub_", "Sub")
    channels_last = True

    def from_torch(self, op, kw, xs, y):
        # branches of one shape only: torch broadcasts a C x 1 x 1 tensor over the map, add does not
        # (timm's GlobalContext with fuse_add: the importer names it)
        same = all(tuple(x) == tuple(xs[0]) for x in xs)
        return {} if _two_tensors(op, kw) and kw.get("alpha", 1) == 1 and same else None

    def probe(self, a, xs, y, collapse):
        return [("Mean", {})]  # the same support, with positive values


@register
class Maximum(_Join):
    name = "maximum"
    doc = "The elementwise maximum of branches (torch.maximum, pairwise left to right). Shapes must agree."
    formulas = {"shape": "unchanged", "params": "0", "macs": "0 (comparisons are not MACs)"}

    def out(self, a, xs):
        return self.same_shape(a, xs)

    def saves(self, a, training):
        return ("operands",)  # torch.maximum's backward compares its two inputs

    def workspace(self, a, xs, y):
        return as_int(prod(y) * (len(xs) - 2))  # with more branches, the partial maxima too

    def scratch(self, a, xs, y, itemsize, training):
        return prod(y) * itemsize if len(xs) > 2 else 0  # one partial maximum alive

    def torch(self, a, xs, y):
        return [("Maximum", {})]

    torch_ops = ("maximum", "Maximum")
    channels_last = True

    def from_torch(self, op, kw, xs, y):
        return {} if _two_tensors(op, kw) else None

    def probe(self, a, xs, y, collapse):
        return [("Mean", {})]
