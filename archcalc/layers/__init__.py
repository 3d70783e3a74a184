"""The layer registry: the one place to add a layer type.

Each layer type is one class that declares everything archcalc knows about it (see
:class:`~archcalc.layers.base.LayerType`):
  * its YAML keys (:class:`Key`: name, kind, default, doc) -- the spec validator, ``archcalc layers``
    and docs/layers.md all derive from these declarations;
  * ``out``    -- output shape from input shape(s);
  * ``count``  -- learnable parameters and buffers;
  * ``macs``   -- multiply-accumulates (conv and linear only; see docs/conventions.md);
  * ``window`` -- the local window per spatial axis, for the receptive field (exact rationals
    through resampling);
  * ``new_tensor`` / ``saves`` / ``workspace`` / ``can_inplace`` -- memory;
  * ``torch`` / ``probe`` -- how the builder builds it and how the receptive-field probe linearises
    it, as plain data (``("Conv2d", {...})``); torch is never imported here.

The types live in one module per family: :mod:`.conv`, :mod:`.pool`, :mod:`.norm`,
:mod:`.activation`, :mod:`.join`, :mod:`.resample`, :mod:`.channel`, :mod:`.pad` (explicit padding,
blur pool), :mod:`.pool_extra` (adaptive and global max pooling), :mod:`.gate` (ECA's conv over
the pooled channels), :mod:`.scalar` (learnable scalar affine, StarReLU). The engine
(archcalc/analysis/engine.py), the builder (archcalc/torchside/build.py) and the verifier (archcalc/torchside/verify.py) name no
layer type; a test enforces it.

Shapes are tuples: ``(C, H, W)`` for feature maps (``(C, L)``, ``(C, D, H, W)`` for 1-D and 3-D
ones: the spec's input decides the rank), ``(F,)`` for flat vectors. Every size is a
plain int or, when a symbol is unresolved, a sympy expression; the same code serves both, and it
branches on layer parameters, never on dimension values.
"""

from __future__ import annotations

from .base import (  # noqa: F401
    ALIASES,
    AXIS_NAMES,
    KIND_DOC,
    KIND_TEXT,
    REGISTRY,
    REQUIRED,
    Axis,
    Count,
    Counts,
    EngineWorkspace,
    Factor,
    Key,
    LayerInfo,
    LayerType,
    PadCopy,
    Pointwise,
    Resample,
    ShapeError,
    Stack,
    Term,
    Text,
    WindowSizes,
    all_names,
    describe,
    kind_text,
    lookup,
    prod,
    register,
    shape_text,
    torch_classes,
)
from . import conv, pool, pool_extra, norm, activation, join, resample, channel, pad, gate, scalar  # noqa: F401,E402  (registers the types)
from .activation import _Activation  # noqa: F401,E402
from .conv import Conv, ConvTranspose, Linear  # noqa: F401,E402
from .join import Add, Concat, Mean, Mul, _Join  # noqa: F401,E402
from .norm import BatchNorm, LayerNorm, LayerScale, LRN  # noqa: F401,E402
from .pool import AdaptiveAvgPool, AvgPool, GlobalAvgPool, MaxPool, _Pool  # noqa: F401,E402
