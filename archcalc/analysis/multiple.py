"""Which input sizes make a join's branches agree (issue 23 item 3): an encoder-decoder whose
skip connections meet an upsampled path agrees only where the input's height and width are
multiples of the downsampling strides before the join (16 for four 2x2 pools).

:func:`join_hint` is called only when a join's branches disagree. The modulus of an axis is
read from the spec's own strides: per layer, the least common multiple of its inputs' moduli
times its window's integer stride on that axis (a 2x upsample divides nothing, so a decoder keeps
the encoder's modulus). The claim is then checked, not assumed: the whole network's shapes are
computed again at the nearest multiples (a later join that still disagrees adds its own moduli),
and at every other size between them on each misaligned axis; the hint is given only where every
join agrees at the multiples, and says "only" where every size between is rejected. Where the input size is a
closed form (free symbols), the shapes are probed at sizes chosen here. Pure: no I/O.
"""

from __future__ import annotations

from math import lcm

from .. import layers as L
from ..expr import is_symbolic

_MAX_STEPS = 200_000  # layer shapes recomputed, at most, for one hint (an error path: kept small)


def _strides(ltype, node, xs, y) -> tuple | None:
    """The integer stride of the layer's window per spatial axis (1 where it has none)."""
    if ltype.joins or len(xs[0]) != len(y) or len(y) < 2:
        return None
    try:
        win = ltype.window(node.args, xs, y)
    except Exception:  # noqa: BLE001 - a window the hint cannot read: no modulus from it
        return None
    if not isinstance(win, tuple) or len(win) != len(y) - 1:
        return None
    out = []
    for axis in win:
        s = getattr(axis, "s", 1)
        out.append(s if isinstance(s, int) and not isinstance(s, bool) and s > 1 else 1)
    return tuple(out)


def _moduli(net, shapes, k) -> tuple | None:
    """Per spatial axis, the input size modulus of node ``k``'s inputs (None where unknown)."""
    rank = len(net.input) - 1
    if rank < 1:
        return None
    mods: dict = {-1: (1,) * rank}
    for i in range(k + 1):
        node = net.nodes[i]
        ins = [mods.get(j) for j in node.inputs]
        ins = [m for m in ins if m is not None and len(m) == rank]
        if not ins:
            continue
        m = tuple(lcm(*(x[a] for x in ins)) for a in range(rank))
        if i < k:
            ltype = L.REGISTRY[node.type]
            xs = [shapes[j] for j in node.inputs]
            y = shapes[i]
            if y is None or any(x is None for x in xs):
                return None
            if len(y) == rank + 1:
                s = _strides(ltype, node, xs, y)
                if s is not None:
                    m = tuple(a * b for a, b in zip(m, s))
            else:
                continue  # flattened: no spatial modulus past here
        mods[i] = m
    return mods.get(k)


def _run(net, size):
    """The shapes of every node for the input ``size``: (True, shapes, None) where every layer
    accepts its inputs, (False, shapes, k) where join ``k`` is the first that rejects them, and
    (None, None, None) where something else fails (a window larger than its input, a closed form)."""
    shapes: dict = {-1: tuple(size)}
    for i, node in enumerate(net.nodes):
        ltype = L.REGISTRY[node.type]
        xs = [shapes[j] for j in node.inputs]
        try:
            y = ltype.out(node.args, xs)
        except L.ShapeError:
            return (False, shapes, i) if ltype.joins else (None, None, None)
        except Exception:  # noqa: BLE001 - a layer that cannot be recomputed here
            return None, None, None
        if any(is_symbolic(d) or d < 1 for d in y):
            return None, None, None
        shapes[i] = tuple(y)
    return True, shapes, None


def join_hint(net, shapes, node) -> str | None:
    """The hint for a join whose branches disagree, where the input's spatial sizes not being
    multiples of the spec's strides is why; None otherwise."""
    try:
        k = next(i for i in range(len(net.nodes) - 1, -1, -1) if net.nodes[i] is node)
    except StopIteration:
        return None
    size = tuple(net.input)
    if not size or is_symbolic(size[0]):
        return None
    free = [a for a, d in enumerate(size[1:]) if is_symbolic(d)]  # a closed form: probed at sizes chosen here
    mods = _moduli(net, shapes, k)
    if mods is None or all(m == 1 for m in mods):
        return None
    runs = max(1, _MAX_STEPS // max(1, len(net.nodes)))

    def at(sizes):
        return (size[0],) + tuple(sizes)

    def probe(mods):  # a free axis: one past a multiple of its modulus, large enough for every layer
        return [m * max(2, -(-64 // m)) + 1 if a in free else d for a, (d, m) in enumerate(zip(size[1:], mods))]

    def multiples(mods):
        return ([max(m, d // m * m) for d, m in zip(spatial, mods)], [-(-d // m) * m for d, m in zip(spatial, mods)])

    # a later join may need a larger multiple: take the moduli of the first join that still rejects
    for _ in range(8):
        spatial = probe(mods)
        below, above = multiples(mods)
        runs -= 1
        ok, seen, j = _run(net, at(above))
        if ok is None or runs <= 0:
            return None
        if ok:
            break
        more = _moduli(net, seen, j)
        grown = tuple(lcm(a, b) for a, b in zip(mods, more)) if more is not None else mods
        if grown == mods:
            return None
        mods = grown
    else:
        return None
    runs -= 1
    if runs <= 0 or _run(net, at(below))[0] is not True:
        return None
    off = [a for a, (d, m) in enumerate(zip(spatial, mods)) if d % m]
    if not off:
        return None
    # "only at multiples": every other size of a misaligned axis between the two multiples is
    # rejected (a padded stride-2 conv rounds up, so 16k - 1 may agree too: then "only" is not said)
    only = True
    for a in off:
        for d in range(above[a] - mods[a] + 1, above[a]):
            runs -= 1
            if runs <= 0:
                return None
            sizes = list(above)
            sizes[a] = d
            if _run(net, at(sizes))[0] is not False:
                only = False
                break
        if not only:
            break
    if len(spatial) > 3:
        return None
    names = ("depth", "height", "width")[-len(spatial):] if len(spatial) > 1 else ("length",)
    letters = ("d", "h", "w")[-len(spatial):] if len(spatial) > 1 else ("l",)
    strided = [a for a, m in enumerate(mods) if m > 1]

    def listed(words):
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]

    if len({mods[a] for a in strided}) == 1:
        m = mods[strided[0]]
        rule = (f"the input's {names[strided[0]]} is a multiple of {m}" if len(strided) == 1 else
                f"the input's {listed([names[a] for a in strided])} are multiples of {m}")
    else:
        rule = "the input's " + listed([f"{names[a]} is a multiple of {mods[a]}" for a in strided])
    shown = "x".join(str(d) for d in spatial)
    form = ", ".join(f"{mods[a]}*{letters[a]}" if mods[a] > 1 else str(spatial[a]) for a in range(len(spatial)))
    values = ", ".join(f"{letters[a]}: {below[a] // mods[a]}" for a in strided)
    sizes = ["x".join(str(d) for d in at(below)), "x".join(str(d) for d in at(above))]
    sizes = sizes[1:] if sizes[0] == sizes[1] else sizes
    if free:
        form = ", ".join(f"{mods[a]}*{letters[a]}" if mods[a] > 1 else str(size[1 + a]) for a in range(len(spatial)))
        return (f"this network's branches agree {'only ' if only else ''}where {rule} (its strides before its joins): "
                f"write input: [{size[0]}, {form}] and declare those symbols")
    return (f"this network's branches agree {'only ' if only else ''}where {rule} (its strides before its joins), "
            f"and {shown} is not: write input: [{size[0]}, {form}] with symbols: {{{values}}}, "
            f"or give --input {' or --input '.join(sizes)}")
