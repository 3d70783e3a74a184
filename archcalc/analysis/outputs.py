"""Each output's own counts in a network with several outputs (a detection backbone's feature maps,
``outputs:`` in the spec): the params, buffers and MACs of the layers that output depends on, its
ancestors in the spec's graph, the output's own layer included. Layers shared by several outputs
(a trunk) count in each of them, so the outputs' figures overlap and their sum exceeds the
totals; the layers that some output depends on are the totals' layers less those no output reads
(aux heads, dead ends). Pure: data from the analysed report, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..expr import as_int


@dataclass(frozen=True)
class OutputCounts:
    """One output: its layer's name and shape, and the counts of the layers it depends on (x
    ensemble; MACs x crops, as the totals)."""

    name: str
    shape: tuple
    params: Any
    buffers: Any
    macs: Any
    layers: int  # how many layers it depends on, its own included


def per_output(report) -> list:
    """:class:`OutputCounts` per output of a report whose spec lists ``outputs:`` (main output first,
    then the listed ones in their order); ``[]`` for a spec with one output. One pass over the rows
    from the last to the first: each layer carries a bit per output that depends on it."""
    names = list(report.outputs)
    if len(names) < 2:
        return []
    rows = report.rows
    index = {r.name: i for i, r in enumerate(rows)}
    mask = [0] * len(rows)
    for k, name in enumerate(names):
        i = index.get(name)
        if i is not None:
            mask[i] |= 1 << k
    for i in range(len(rows) - 1, -1, -1):
        m = mask[i]
        if not m:
            continue
        for src in rows[i].inputs:
            j = index.get(src)
            if j is not None:  # "input": the network's input, no layer
                mask[j] |= m
    t = report.totals
    ens, crops = t.get("ensemble", 1), t.get("crops", 1)
    out = []
    for k, name in enumerate(names):
        bit = 1 << k
        params = buffers = macs = 0
        n = 0
        for i, r in enumerate(rows):
            if mask[i] & bit:
                params = params + r.params
                buffers = buffers + r.buffers
                macs = macs + r.macs
                n += 1
        i = index.get(name)
        shape = tuple(rows[i].shape) if i is not None else tuple(report.input)
        out.append(OutputCounts(name, shape, as_int(as_int(params) * ens), as_int(as_int(buffers) * ens),
                                as_int(as_int(macs) * ens * crops), n))
    return out
