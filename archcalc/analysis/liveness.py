"""Live-tensor memory: the peaks of an inference forward and of a training forward+backward, and
training MACs, as the builder (archcalc.torchside.build.ArchNet) really runs the model. Pure: no torch.

The model (docs/memory.md):

* **Inference** (``torch.no_grad``, eval mode; aux heads do not run). The nodes run in the spec's
  order. A value lives from the layer that makes it until its last reader has run (the builder
  drops it then); the network's outputs are kept, and so is a value no layer reads. Views and
  in-place layers share their input's storage (in place only where the builder allows it:
  :func:`builder_inplace`, the pure twin of archcalc.torchside.build.inplace_safe); a storage is freed when
  no live value uses it. While a layer runs, its inputs, its new output and what it allocates
  beyond the output (the registry's ``scratch``: max-pool indices, padded copies, partial sums)
  are alive at once: that is the layer's peak. The network input belongs to the caller and is
  not counted; neither are weights.
* **Training** (train mode, aux heads run, then ``backward`` of the outputs' sum; no optimizer
  step). The forward as above, but a storage that backward keeps (``saves``: input, output,
  operands) stays alive until the backward of the first layer that saved it has run, and the
  private tensors backward keeps (indices, masks, input copies, ``workspace``) live from their
  layer's forward to its backward. Backward runs the recorded layers in reverse: a layer's output
  gradient lives until its backward has run; it makes one new gradient per input that needs one
  (``grad_alias`` types pass theirs on: add, concat's slices, flatten, identity; ``grad_shared``:
  a mean's one gradient for all inputs) and its parameter gradients, which stay; then its output
  gradient and what it saved are freed, and only then is a second gradient for an input summed
  with the first (out of place: a new tensor, then both parts freed); while it runs, its
  ``backward_scratch`` (the temporaries of a backward made of several ops: LRN's) is alive too.
  Only parameters backward reaches get a gradient and optimizer state. The peak is the largest of
  these points. Parameter gradients and batch norm's statistics (``workspace_per_batch``) do not
  grow with the batch: each point is ``a x batch + g`` and the peak at any batch is the largest
  over a few points (kept in the profile).
* **Training MACs** per image: forward MACs (aux heads included) plus each recorded layer's
  ``backward_macs`` (grad-input where its input needs a gradient: never for the first layer;
  grad-weight where it is trainable).
* **The backend's working memory** (``backend``: 'cudnn', PyTorch's default on CUDA, or 'native',
  CUDA without cuDNN; 'cpu' adds none): each layer type's ``backend_workspace`` buffers (cuDNN's
  layout copies and engine workspace, the native column buffer), alive during the layer's forward
  and its backward; an engine workspace (``EngineWorkspace``) is sized at the batch (per image:
  its upper bound).
  A non-elementwise backward of an output first copies the loss's expanded gradient to a dense
  tensor of the output's size. At a concrete batch the CUDA backends round every block as the
  caching allocator does (:func:`_round`: 512 bytes; from 10 MiB, the whole 2 MiB-rounded segment
  where 1 MiB or less would remain). The live-tensor figures (the 'cpu' profile) stay as they were:
  ``inference_live_bytes`` and ``train_live_bytes`` in :func:`totals`.

All figures are per image except the parameter gradients; the engine multiplies by the batch.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, NamedTuple

from .. import layers as L
from ..expr import as_int, is_symbolic

_REGISTRY = L.REGISTRY
INDEX_BYTES = 8  # max-pool indices are int64 (as engine.INDEX_BYTES)
MASK_BYTES = 1  # dropout masks are bool (as engine.MASK_BYTES)


def outputs(net, readers=None) -> list:
    """The nodes the model returns: the main output, then each aux head's last node (as the
    builder: archcalc.torchside.build.outputs). ``readers``: per node, how many nodes read it, where the
    caller has counted them."""
    if readers is None:
        readers = _readers(net.nodes)
    extra = [i for i in getattr(net, "outputs", ()) if i != net.output]  # `outputs:` (a detection backbone's maps)
    return [net.output] + extra + [i for i, nd in enumerate(net.nodes) if nd.aux and not readers[i] and i != net.output]


def _reaches(nodes, outs) -> list:
    """Per node: does its output reach one of ``outs`` (the loss)? Only those run a backward: a
    layer whose output nothing returns gets no gradient (issue 21). A layer's further inputs that
    are not a join's operands (``like:`` references: an upsample or crop to another layer's size)
    are read for their size only: nothing differentiates through a size, so they are not followed."""
    reach = [False] * (len(nodes) + 1)
    stack = [o for o in outs if o >= 0]
    for o in stack:
        reach[o] = True
    registry = _REGISTRY
    while stack:
        node = nodes[stack.pop()]
        ins = node.inputs
        for j in (ins if len(ins) == 1 or registry[node.type].joins else ins[:1]):
            if j >= 0 and not reach[j]:
                reach[j] = True
                stack.append(j)
    return reach


def _readers(nodes) -> list:
    """Per node, how many nodes read its output (one more slot at the end: the network input)."""
    readers = [0] * (len(nodes) + 1)
    for node in nodes:
        for j in node.inputs:
            readers[j] += 1
    return readers


def builder_inplace(net, shapes) -> list:
    """Per node: does the builder run an in-place layer in place? The rule of
    archcalc.torchside.build.inplace_safe (only when no other node, no output and no earlier backward need
    reads the storage, and it is not the network input), computed in one pass: per storage, the
    count of reads from outside the chain of nodes that share it."""
    safe = _inplace_safe(net, shapes)
    return [False] * len(net.nodes) if safe is None else safe


def _inplace_safe(net, shapes, readers=None, outs=None, records=None) -> list | None:
    """:func:`builder_inplace`, or None where no layer asks to run in place. ``readers`` and ``outs`` as :func:`_readers` and
    :func:`outputs` give them, where the caller has them; ``records``: per node, an object shared
    by nodes of equal args and input shapes (the engine's), which keys the caches cheaply."""
    nodes = net.nodes
    n = len(nodes)
    registry = _REGISTRY
    if not any(registry[node.type].can_inplace and node.args.get("inplace") for node in nodes):
        return None  # no storage chains to follow
    nreaders = _readers(nodes) if readers is None else readers
    outs = set(outputs(net, nreaders) if outs is None else outs)
    root = [0] * n
    ext = [0] * n  # per root: reads of chain members by nodes outside the chain
    bad = [False] * n  # per root: a chain member is an output or saves its output for backward
    safe = [False] * n
    views: dict = {}  # (args id, input shapes) -> no new tensor at inference
    saves_out: dict = {}  # args id -> saves its output for backward

    for i, node in enumerate(nodes):
        ltype = _REGISTRY[node.type]
        ins = node.inputs
        j = ins[0]
        args = node.args
        inplace = True if ltype.can_inplace and args.get("inplace") else False
        if not inplace:
            # a view (or an identity at inference) shares its input's storage
            key = id(records[i]) if records is not None else (id(args), *[shapes[k] for k in ins])
            view = views.get(key)
            if view is None:
                view = views[key] = ltype.new_tensor(args, [shapes[k] for k in ins], shapes[i], False) is False
            s = (root[j] if j >= 0 else -1) if view else i
        else:
            s = root[j] if j >= 0 else -1
            ok = s != -1
            if ok:
                inside = 0
                for k in ins:
                    if k >= 0 and root[k] == s:
                        inside += 1
                ok = not bad[s] and ext[s] - inside == 0
            safe[i] = ok
            if not ok:
                s = i
        root[i] = s
        if s >= 0:  # node i joins storage s: reads of it from outside the chain, and whether it may change
            inside = 0
            for k in ins:
                if k >= 0 and root[k] == s:
                    inside += 1
            ext[s] += nreaders[i] - inside
            if i in outs:
                bad[s] = True
            else:
                keeps = saves_out.get(id(args))
                if keeps is None:
                    keeps = saves_out[id(args)] = "output" in ltype.saves(args, True)
                if keeps:
                    bad[s] = True
    return safe


class Point(NamedTuple):
    """A training peak candidate: bytes alive at one moment of a training step."""

    act: Any  # bytes per image (activations, what backward keeps, activation gradients)
    fixed: Any  # bytes that do not grow with the batch (parameter gradients, per-batch workspaces)
    node: Any  # the node index running then (None: the end of backward)
    phase: Any  # "forward" or "backward" (None: the end of backward)


class TrainPeak(NamedTuple):
    """The largest training point at one batch: its bytes, node index and phase (both None where
    it depends on a symbolic batch)."""

    bytes: Any
    node: Any
    phase: Any


class StateBytes(NamedTuple):
    """Bytes that are not activations, for one model."""

    weights: Any  # weights and buffers
    with_optimizer: Any  # weights and buffers, + optimizer state
    gradients: Any  # every parameter gradient


class Decl:
    """One layer's memory declaration as the builder runs it (:func:`_declare`): shared by the
    nodes of equal args and input shapes. A slotted class (read in the liveness loops: a slot is
    read as fast as a tuple item)."""

    __slots__ = ("fresh_eval", "scratch_eval", "fresh_train", "scratch_train", "saves_input", "saves_output",
                 "saves_operands", "private", "per_batch", "joins", "grad_alias", "grad_shared", "scratch_back",
                 "grad_elementwise")

    def __init__(self, fresh_eval, scratch_eval, fresh_train, scratch_train, saves_input, saves_output,
                 saves_operands, private, per_batch, joins, grad_alias, grad_shared, scratch_back=0,
                 grad_elementwise=False):
        self.fresh_eval = fresh_eval  # a new tensor at inference
        self.scratch_eval = scratch_eval  # bytes allocated beside the output at inference
        self.fresh_train = fresh_train  # the same in training
        self.scratch_train = scratch_train
        self.saves_input = saves_input  # backward keeps the input's storage
        self.saves_output = saves_output  # ... the output's
        self.saves_operands = saves_operands  # ... each operand another operand's gradient needs
        self.private = private  # bytes per image kept from the forward to the backward (indices, masks, copies)
        self.per_batch = per_batch  # bytes per batch kept likewise (batch norm's statistics)
        self.joins = joins  # reads every input as data (else further inputs are refs: sizes only)
        self.grad_alias = grad_alias  # hands its output gradient on as its input's
        self.grad_shared = grad_shared  # one gradient for all its inputs
        self.scratch_back = scratch_back  # bytes per image its backward holds beside the gradients it makes
        self.grad_elementwise = grad_elementwise  # its backward reads an expanded output gradient as it is


class Profile:
    """The liveness result for one backend. Per image: ``inference`` (the live-tensor peak, bytes),
    ``inference_at`` (node index); ``inf_points``: the inference peak candidates with the backend's
    working memory, (bytes per image, bytes per batch, node), none of which another exceeds in
    both (one point, fixed 0, for live tensors); ``points``: the training peak candidates
    (:class:`Point`), likewise; ``live``: per node the bytes alive after it at inference (None for
    aux nodes); ``names``: the nodes. ``backend``: 'cpu' (live tensors), 'cudnn' or 'native'.
    ``at_batch``: None, or the batch the figures were computed at with the allocator's rounding
    (then each figure is the whole batch's, and is read at that batch only)."""

    __slots__ = ("inference", "inference_at", "points", "live", "names", "input_bytes", "state_bytes",
                 "inf_points", "backend", "at_batch")

    def __init__(self, inference, inference_at, points, live, names, input_bytes, state_bytes, inf_points=None,
                 backend="cpu", at_batch=None):
        self.inference = inference
        self.inference_at = inference_at
        self.points = points
        self.live = live
        self.names = names
        self.input_bytes = input_bytes  # the input per image
        self.state_bytes = state_bytes  # a StateBytes
        self.inf_points = inf_points if inf_points is not None else [(inference, 0, inference_at)]
        self.backend = backend
        self.at_batch = at_batch

    def name(self, i):
        return "input" if i is None or i < 0 else self.names[i].name

    def _times(self, batch):
        if self.at_batch is None:
            return batch
        if batch != self.at_batch:
            raise ValueError(f"this profile is computed at batch {self.at_batch}, not {batch}")
        return 1

    def inference_peak(self, batch):
        return self.inference_point(batch)[0]

    def inference_point(self, batch):
        """(bytes, node index) of the inference peak at ``batch`` (the node None where it depends on a
        symbolic batch)."""
        times = self._times(batch)
        pts = self.inf_points
        if is_symbolic(batch):
            if len(pts) == 1:
                return as_int(pts[0][0] * times + pts[0][1]), pts[0][2]
            from ..expr import sympy

            return sympy().Max(*[as_int(a * times + f) for a, f, _ in pts]), None
        best = None
        for a, f, i in pts:
            v = a * times + f
            if best is None or v > best[0]:
                best = (v, i)
        return best

    def train_peak(self, batch) -> TrainPeak:
        """The largest training point at ``batch`` (an int; for a symbolic batch the bytes are a
        Max of the candidates, and the place None where it depends on the batch)."""
        times = self._times(batch)
        if is_symbolic(batch):
            from ..expr import sympy

            cands = [as_int(p.act * times + p.fixed) for p in self.points]
            if len(cands) == 1:
                return TrainPeak(cands[0], self.points[0].node, self.points[0].phase)
            return TrainPeak(sympy().Max(*cands), None, None)
        best = None
        for p in self.points:
            v = p.act * times + p.fixed
            if best is None or v > best.bytes:
                best = TrainPeak(v, p.node, p.phase)
        return best

    def fit(self, budget: int, inference: bool = False):
        """Largest batch whose total fits ``budget`` bytes (weights, buffers, input and the peak;
        training adds optimizer state): 0 when none does. Per image, without the allocator's
        rounding (:func:`max_batch` checks the answer with it)."""
        if inference:
            fixed = self.state_bytes.weights
            best = None
            for a, f, _ in self.inf_points:
                per = a + self.input_bytes
                room = budget - fixed - f
                if room < per:
                    return 0
                n = room // per
                best = n if best is None else min(best, n)
            return best or 0
        fixed = self.state_bytes.with_optimizer
        best = None
        for p in self.points + [Point(0, self.state_bytes.gradients, None, None)]:  # (all gradients at the end)
            per = p.act + self.input_bytes
            room = budget - fixed - p.fixed
            if room < per:
                return 0
            n = room // per
            best = n if best is None else min(best, n)
        return best or 0


BACKENDS = ("cudnn", "native", "cpu")  # what --backend takes; cudnn is PyTorch's default on CUDA
DEFAULT_BACKEND = "cudnn"
ROUND = 512  # the CUDA caching allocator rounds every block up to a multiple of 512 bytes
LARGE_ALLOC = 10 * 2**20  # kMinLargeAlloc: a request from 10 MiB up gets a segment of its own ...
ROUND_LARGE = 2 * 2**20  # kRoundLarge: ... rounded up to 2 MiB
SMALL_SIZE = 2**20  # kSmallSize: a large-pool block is split only when more than 1 MiB would remain


def _round(v):
    """The bytes ``torch.cuda.memory_allocated`` counts for a request of ``v`` bytes (c10's
    CUDACachingAllocator): ``v`` rounded up to 512; from 10 MiB on, a new segment of ``v`` rounded up
    to 2 MiB, which the allocator does not split when 1 MiB or less would remain: then the whole
    segment is the block, and counts."""
    if v >= LARGE_ALLOC:
        seg = -(-v // ROUND_LARGE) * ROUND_LARGE
        if seg - v <= SMALL_SIZE:
            return seg
    return -(-v // ROUND) * ROUND if v else 0


class Memory:
    """``Report.memory``: the liveness pass, run the first time :meth:`get` is called (by
    :func:`totals`, the summary, ``--fit``, a peak budget), so that an ``analyze`` whose caller
    never asks for peaks pays nothing for them. One pass per backend (and per batch, where the
    allocator's rounding is asked for), each run once."""

    __slots__ = ("_args", "_profile", "_keep", "_more", "backend")

    def __init__(self, *args):
        self._args = args
        self._keep = args
        self._profile = None
        self._more = {}
        self.backend = None  # the report's backend (:func:`use_backend`); None: DEFAULT_BACKEND

    def get(self, backend=None, batch=None):
        """The :class:`Profile` (None where a size is symbolic); the first call fills
        ``row.train_macs`` and ``row.live`` of the report's rows. ``backend`` None or 'cpu': live
        tensors only; 'cudnn' or 'native': with the backend's working memory. ``batch`` (an int):
        the figures at that batch with the CUDA allocator's rounding of every block to 512 bytes."""
        if self._args is not None:
            args, self._args = self._args, None
            self._profile = _run(args, {})
        if self._profile is None or ((backend is None or backend == "cpu") and batch is None):
            return self._profile
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: one of {', '.join(BACKENDS)}")
        key = (backend, batch)
        got = self._more.get(key)
        if got is None:
            got = self._more[key] = _run(self._keep, {"backend": backend, "batch": batch, "set_rows": False})
        return got


def _run(args, kw):
    import gc

    was = gc.isenabled()
    gc.disable()  # a pass that makes no cycles: the collector would only rescan its lists
    try:
        return _compute(*args, **kw)
    finally:
        if was:
            gc.enable()


def analyze(net, shapes, numel, grad, rows, nbytes, optimizer_states=0, records=None, readers=None) -> Memory:
    """The engine's hook: a :class:`Memory` that computes the profile when first asked.
    ``records`` (per node, an object shared by nodes of equal args and input shapes) and
    ``readers`` (per node, how many nodes read it) are the engine's, where it has them."""
    return Memory(net, shapes, numel, grad, rows, nbytes, optimizer_states, records, readers)


def _compute(net, shapes, numel, grad, rows, nbytes, optimizer_states=0, records=None, readers=None,
             backend="cpu", batch=None, set_rows=True):
    """The :class:`Profile` of a concrete network (None where a size is symbolic), and the
    training MACs per row (set as ``row.train_macs``; the live bytes as ``row.live``, where
    ``set_rows``). ``backend``: 'cpu' (live tensors), 'cudnn' or 'native' (with each layer's
    ``backend_workspace``); ``batch``: the figures at that batch, every block rounded up to
    :data:`ROUND` bytes (None: per image, not rounded)."""
    nodes = net.nodes
    n = len(nodes)
    nb = [numel[i] * nbytes for i in range(n)] + [0]  # bytes per value; [-1]: the caller's input
    if n == 0 or net.symbolic or any(v.__class__ is not int for v in nb):  # a size of an unresolved symbol
        _train_macs(nodes, shapes, grad, rows, _reaches(nodes, outputs(net)))
        return None
    if readers is None:
        readers = _readers(nodes)
    outs = outputs(net, readers)
    # per node, as the builder runs it (a repeat's layers share one args object: declared once):
    # (fresh, scratch) at inference; (fresh, scratch) in training, then what backward keeps when
    # the layer is recorded: its input's storage, its output's, its operands', private bytes per
    # image and per batch; then how its backward hands gradients on (joins, alias, shared). The
    # same walk sets each row's training MACs (as _train_macs).
    safe = _inplace_safe(net, shapes, readers, outs, records)
    reach = _reaches(nodes, outs)
    # caches by record id (engine's records), or by (args id, input shapes) without them:
    # declarations by [unsafe], backward MACs by [gin * 2 + gw]
    cache: list = [{}, {}]
    back_cache: list = [{}, {}, {}, {}]
    decls = []
    registry = _REGISTRY
    for i, node in enumerate(nodes):
        ltype = registry[node.type]
        ins = node.inputs
        unsafe = 1 if safe is not None and not safe[i] and ltype.can_inplace and node.args.get("inplace") else 0
        key = id(records[i]) if records is not None else (id(node.args), *[shapes[k] for k in ins])
        d = cache[unsafe].get(key)
        if d is None:
            d = cache[unsafe][key] = _declare(ltype, node.args, [shapes[k] for k in ins], shapes[i], unsafe, nbytes)
        decls.append(d)
        r = rows[i]
        if not grad[i] or not reach[i]:
            r.train_macs = r.macs
            continue
        j = ins[0]
        params = r.params
        slot = (2 if j >= 0 and grad[j] else 0) + (1 if node.trainable and (params.__class__ is not int or params != 0) else 0)
        back = back_cache[slot].get(key)
        if back is None:
            back = back_cache[slot][key] = ltype.backward_macs(node.args, [shapes[k] for k in ins], shapes[i],
                                                               slot >= 2, slot & 1 == 1)
        r.train_macs = as_int(r.macs + back) if back else r.macs
    for d in (*cache[0].values(), *cache[1].values()):
        if d.scratch_eval.__class__ is not int or d.scratch_train.__class__ is not int \
                or d.private.__class__ is not int or d.per_batch.__class__ is not int \
                or d.scratch_back.__class__ is not int:
            return None
    same = not any(node.aux for node in nodes)
    free_eval = _frees(nodes, outs, False)
    pgrad = [r.params * nbytes if node.trainable else 0 for r, node in zip(rows, nodes)]
    ws = None
    if backend != "cpu":
        ws = _workspaces(nodes, shapes, records, nbytes, backend, batch)
    if batch is not None:  # the whole batch's bytes, each block rounded as the CUDA allocator does
        nb = [_round(v * batch) for v in nb]
        pgrad = [_round(v) for v in pgrad]
        scaled: dict = {}
        for k, d in enumerate(decls):
            e = scaled.get(id(d))
            if e is None:
                e = scaled[id(d)] = Decl(d.fresh_eval, _round(d.scratch_eval * batch), d.fresh_train,
                                         _round(d.scratch_train * batch), d.saves_input, d.saves_output,
                                         d.saves_operands, _round(d.private * batch), _round(d.per_batch),
                                         d.joins, d.grad_alias, d.grad_shared, _round(d.scratch_back * batch),
                                         d.grad_elementwise)
            decls[k] = e
    live_after, peak, peak_at, inf_points = _inference(nodes, nb, free_eval, decls, ws)
    if set_rows:
        for r, v in zip(rows, live_after):
            r.live = v
    # a layer backward never reaches is recorded by autograd but its graph dies with its output:
    # it keeps nothing for a backward (its saved tensors are freed as the forward frees its output)
    recorded = [g and r for g, r in zip(grad, reach)]
    points = _training(nodes, nb, outs, free_eval if same else _frees(nodes, outs, True), recorded, pgrad, decls,
                       ws)
    params = trainable = buffers = 0
    for k, r in enumerate(rows):
        params += r.params
        buffers += r.buffers
        if r.trainable and reach[k] and grad[k]:  # a parameter backward never reaches keeps .grad None:
            trainable += r.params  # no gradient, and no optimizer state (SGD momentum, Adam make none)
    weights = (params + buffers) * nbytes
    state = StateBytes(weights, weights + trainable * nbytes * optimizer_states, trainable * nbytes)
    return Profile(peak, peak_at, points, live_after, nodes, numel[-1] * nbytes, state, inf_points, backend, batch)


def _workspaces(nodes, shapes, records, nbytes, backend, batch):
    """Per node, the backend's working memory (each layer type's ``backend_workspace``): four
    lists, forward bytes per image and per batch, backward likewise; at ``batch`` (not None) the
    whole batch's bytes, each buffer rounded as the allocator rounds it, in the first and third."""
    n = len(nodes)
    fa, ff, ba, bf = [0] * n, [0] * n, [0] * n, [0] * n
    cache: dict = {}
    registry = _REGISTRY
    for i, node in enumerate(nodes):
        ins = node.inputs
        key = id(records[i]) if records is not None else (id(node.args), *[shapes[k] for k in ins])
        w = cache.get(key)
        if w is None:
            fwd, bwd = registry[node.type].backend_workspace(node.args, [shapes[k] for k in ins], shapes[i], nbytes, backend)
            w = _buffers(fwd, batch) + _buffers(bwd, batch)
            cache[key] = w
        fa[i], ff[i], ba[i], bf[i] = w
    return fa, ff, ba, bf


def _buffers(bufs, batch):
    """(bytes per image, bytes per batch) of one op's backend buffers; at a concrete ``batch`` the
    whole batch's bytes, each buffer rounded as the allocator rounds it, and 0. An
    ``EngineWorkspace`` is the other buffers' bytes at the batch within its bounds (one block);
    per image, its upper bound per batch."""
    plain = [b for b in bufs if b.__class__ is tuple]
    engines = [b for b in bufs if b.__class__ is not tuple]
    if batch is None:
        return sum(p for p, _ in plain), sum(f for _, f in plain) + sum(e.high for e in engines)
    got = sum(_round(p * batch + f) for p, f in plain)
    return got + sum(_round(min(max(got, e.low), e.high)) for e in engines), 0


def _declare(ltype, args, xs, y, unsafe, nbytes) -> Decl:
    """One layer's memory declaration as the builder runs it (see _compute)."""
    if unsafe:
        args = {**args, "inplace": False}
    saves = tuple(ltype.saves(args, True))
    work = ltype.workspace(args, xs, y) * nbytes
    extra = 0 if ltype.workspace_per_batch else work
    if "input_copy" in saves:
        extra += L.prod(xs[0]) * nbytes
    if "indices" in saves:
        extra += L.prod(y) * INDEX_BYTES
    if "mask" in saves:
        extra += L.prod(y) * MASK_BYTES
    return Decl(ltype.fresh(args, xs, y, False), ltype.scratch(args, xs, y, nbytes, False),
                ltype.fresh(args, xs, y, True), ltype.scratch(args, xs, y, nbytes, True),
                "input" in saves, "output" in saves, "operands" in saves,
                extra, work if ltype.workspace_per_batch else 0,
                ltype.joins, ltype.grad_alias, ltype.grad_shared, ltype.backward_scratch(args, xs, y, nbytes),
                ltype.grad_elementwise)


def _frees(nodes, outs, with_aux):
    """Per node, the values dropped after it runs (their last reader), as ArchNet._frees: a list
    with, per node, None, one value's index, or a list of them (a list per node would cost a
    200,000-layer network tens of megabytes)."""
    n = len(nodes)
    last = [-1] * (n + 1)  # [-1]: the caller's input, never dropped
    for i, node in enumerate(nodes):
        if node.aux and not with_aux:
            continue
        for j in node.inputs:
            last[j] = i
    for o in outs:
        last[o] = -1
    last[-1] = -1
    free: list = [None] * n
    for j in range(n):
        if last[j] >= 0:
            _note(free, last[j], j)
    return free


def _inference(nodes, nb, free, decls, ws=None):
    """(live bytes after each node, the live-tensor peak, its node, the peak candidates with the
    backend's working memory ``ws`` as (bytes per image, bytes per batch, node))."""
    n = len(nodes)
    wa, wf = (ws[0], ws[1]) if ws is not None else (None, None)
    points: list = []
    # lists of n + 1: index -1 is the caller's input (0 bytes, never freed)
    store = list(range(n)) + [-1]  # the storage (a node index) each value lives in
    ref = [0] * (n + 1)  # live values per storage
    live = peak = 0
    peak_at = None
    after: list = [None] * n
    for i, node in enumerate(nodes):
        if node.aux:
            continue
        d = decls[i]
        if d.fresh_eval:
            b = nb[i]
            ref[i] = 1
            top = live + b + d.scratch_eval
            live += b
        else:
            s = store[i] = store[node.inputs[0]]
            ref[s] += 1
            top = live + d.scratch_eval
        if top > peak:
            peak, peak_at = top, i
        if wa is not None:
            a, g = top + wa[i], wf[i]
            if not any(p[0] >= a and p[1] >= g for p in points):
                points = [p for p in points if not (p[0] <= a and p[1] <= g)]
                points.append((a, g, i))
        f = free[i]
        if f is not None:
            for j in ((f,) if f.__class__ is int else f):
                s = store[j]
                ref[s] -= 1
                if not ref[s]:
                    live -= nb[s]
        after[i] = live
    if wa is None or not points:
        points = [(peak, 0, peak_at)]
    return after, peak, peak_at, points


def _training(nodes, nb, outs, free, grad, pgrad, decls, ws=None):
    n = len(nodes)
    wfa, wff, wba, wbf = ws if ws is not None else ([0] * n,) * 4
    dense = ws is not None  # a kernel's copy of the expanded output gradient: backend memory, not a tensor
    store = list(range(n)) + [-1]
    ref = [0] * (n + 1)
    saved = [False] * n + [True]  # kept for backward (the input: never freed here)
    release: list = [None] * n  # node -> storages freed after its backward (the first node that saved them): None, one, or a list
    extras = [0] * n  # node -> private bytes kept from its forward to its backward
    live = 0
    fixed = 0  # batch-independent bytes: per-batch workspaces, then parameter gradients
    fixed_of = [0] * n  # node -> its per-batch workspace
    # the candidates, none dominated by a later one: plain tuples in Point's field order (act,
    # fixed, node, phase) while the walk runs, made Points by _front. The walk makes one per layer
    # on a long chain, and a NamedTuple costs several times a tuple to make.
    points = []

    def push(a, g, i, phase):
        if points and points[-1][0] >= a and points[-1][1] >= g:
            return
        while points and points[-1][0] <= a and points[-1][1] <= g:
            points.pop()
        points.append((a, g, i, phase))

    note = _note
    last_a = last_g = -1  # the last point's bytes (none yet: any point is above)
    for i, (node, d, g, f) in enumerate(zip(nodes, decls, grad, free)):
        ins = node.inputs
        if d.fresh_train:
            b = nb[i]
            ref[i] = 1
        else:
            b = 0
            s = store[i] = store[ins[0]]
            ref[s] += 1
        extra = 0
        if g:
            if d.saves_input:
                s = store[ins[0]]
                if not saved[s]:
                    saved[s] = True
                    note(release, i, s)
            if d.saves_output:
                s = store[i]
                if not saved[s]:
                    saved[s] = True
                    note(release, i, s)
            if d.saves_operands:  # each operand another operand's gradient needs (a product)
                data = ins if d.joins else ins[:1]
                for m, j in enumerate(data):
                    if any(grad[k] for q, k in enumerate(data) if q != m):
                        s = store[j]
                        if not saved[s]:
                            saved[s] = True
                            note(release, i, s)
            extra = d.private
            if extra:
                extras[i] = extra
            if d.per_batch:
                fixed += d.per_batch
                fixed_of[i] = d.per_batch
        a = live + b + extra + d.scratch_train + wfa[i]
        at = fixed + wff[i]
        if a > last_a or at > last_g:  # else the last point covers it
            while points and points[-1][0] <= a and points[-1][1] <= at:  # push, inline
                points.pop()
            points.append((a, at, i, "forward"))
            last_a, last_g = a, at
        live += b + extra
        if f is not None:
            if f.__class__ is int:
                s = store[f]
                ref[s] -= 1
                if not ref[s] and not saved[s]:
                    live -= nb[s]
            else:
                for j in f:
                    s = store[j]
                    ref[s] -= 1
                    if not ref[s] and not saved[s]:
                        live -= nb[s]

    # backward: the recorded nodes in reverse; gradients as storages (ids into gbytes / gref)
    gbytes = [0]
    gref = [0]
    grad_of: list = [None] * (n + 1)  # node -> the storage id of its output's gradient so far
    for o in outs:  # d(sum)/d(output) is an expanded scalar: no storage
        if grad[o]:
            gbytes.append(0)
            gref.append(1)
            grad_of[o] = len(gbytes) - 1
    pgrads = 0
    for i in range(n - 1, -1, -1):
        gi = grad_of[i]
        grad_of[i] = None
        if gi is None or not grad[i]:
            continue
        node = nodes[i]
        d = decls[i]
        alias, shared = d.grad_alias, d.grad_shared
        ins = node.inputs
        pgrads += pgrad[i]
        # the layer's backward makes its input gradients (and its weights'): then autograd
        # frees its output gradient and what it saved, and only then sums each gradient into
        # one an input already has (a new tensor beside both)
        new = 0
        made = []
        for j in (ins if d.joins else ins[:1]):
            if j < 0 or not grad[j]:
                continue
            if alias:
                inc = gi
                gref[gi] += 1
            elif shared and made:
                inc = made[0][1]
                gref[inc] += 1
            else:
                inc = len(gbytes)
                gbytes.append(nb[j])
                gref.append(1)
                new += nb[j]
            made.append((j, inc))
        a, g = live + new + wba[i] + d.scratch_back, pgrads + fixed + wbf[i]
        if dense and not gbytes[gi] and not alias and not d.grad_elementwise:
            a += nb[i]  # the loss's expanded gradient, copied to a dense tensor for this backward
        if a > last_a or g > last_g:  # else the last point covers it
            while points and points[-1][0] <= a and points[-1][1] <= g:  # push, inline
                points.pop()
            points.append((a, g, i, "backward"))
            last_a, last_g = a, g
        live += new
        gref[gi] -= 1
        if not gref[gi]:
            live -= gbytes[gi]
        f = release[i]
        if f is not None:
            if f.__class__ is int:
                if not ref[f]:
                    live -= nb[f]
            else:
                for s in f:
                    if not ref[s]:
                        live -= nb[s]
        live -= extras[i]
        fixed -= fixed_of[i]
        for j, inc in made:
            old = grad_of[j]
            if old is None:
                grad_of[j] = inc
                continue
            # a second gradient: summed out of place, then both parts dropped
            push(live + nb[j], pgrads + fixed, i, "backward")
            last_a, last_g = points[-1][0], points[-1][1]
            grad_of[j] = len(gbytes)
            gbytes.append(nb[j])
            gref.append(1)
            live += nb[j]
            for g in (inc, old):
                gref[g] -= 1
                if not gref[g]:
                    live -= gbytes[g]
    return _front(points)




def _note(table, i, v):
    """Add ``v`` to entry ``i`` of a list whose entries are None, one int, or a list of ints."""
    f = table[i]
    if f is None:
        table[i] = v
    elif f.__class__ is int:
        table[i] = [f, v]
    else:
        f.append(v)


def _front(points) -> list:
    """The :class:`Point` s no other point exceeds in both act and batch-independent bytes, from
    the walk's (act, fixed, node, phase) tuples."""
    out = []
    best = -1
    new = tuple.__new__  # a Point from a tuple of its fields, without a Python-level call
    for p in sorted(points, key=itemgetter(1, 0), reverse=True):  # stable: equal points keep their order
        if p[0] > best:
            out.append(new(Point, p))
            best = p[0]
    return out


def _train_macs(nodes, shapes, grad, rows, reach):
    """Per row: forward MACs (every node runs in training, aux heads too) plus backward MACs (only
    where the output reaches the loss: ``reach``, from :func:`_reaches`)."""
    cache: dict = {}
    for i, node in enumerate(nodes):
        r = rows[i]
        if not grad[i] or not reach[i]:
            r.train_macs = r.macs
            continue
        j = node.inputs[0]
        gw = bool(node.trainable) and not (type(r.params) is int and r.params == 0)
        gin = j >= 0 and bool(grad[j])
        xs = [shapes[k] for k in node.inputs]
        key = (id(node.args), gin, gw, *xs)
        back = cache.get(key)
        if back is None:
            back = cache[key] = _REGISTRY[node.type].backward_macs(node.args, xs, r.shape, gin, gw)
        r.train_macs = as_int(r.macs + back) if back else r.macs


def vmax_(a, b):
    if is_symbolic(a) or is_symbolic(b):
        from ..expr import vmax

        return vmax(a, b)
    return max(a, b)


def use_backend(report, backend) -> None:
    """Make ``backend`` the report's default for :func:`totals` and :func:`max_batch` (the CLI's
    ``--backend``: the summary, its JSON and ``--fit`` then agree)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: one of {', '.join(BACKENDS)}")
    if isinstance(report.memory, Memory):
        report.memory.backend = backend


def _backend(report, backend):
    if backend is not None:
        return backend
    mem = report.memory
    return (mem.backend if isinstance(mem, Memory) else None) or DEFAULT_BACKEND


def totals(report, batch=None, backend=None) -> dict:
    """The liveness figures of a report at ``batch`` (default: the report's), x ensemble, for
    ``backend`` (default :data:`DEFAULT_BACKEND`; 'cpu': live tensors only):

    * ``inference_peak_bytes``, ``inference_peak_layer``: the inference peak with the backend's
      working memory (at a concrete batch on CUDA, every block rounded to 512 bytes);
    * ``inference_live_bytes``: the live tensors alone (the same for every backend);
    * ``train_peak_bytes``, ``train_peak_layer``, ``train_peak_phase``, and ``train_live_bytes``:
      the same for a training step;
    * ``train_total_bytes``: the training peak plus weights, buffers, optimizer state and the input;
    * ``train_macs`` per image; ``memory_backend``: the backend.

    None where sizes (or the depth) are symbolic."""
    batch = report.batch if batch is None else batch
    backend = _backend(report, backend)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: one of {', '.join(BACKENDS)}")
    t = report.totals
    k = t.get("ensemble", 1)
    out = dict.fromkeys(("inference_peak_bytes", "inference_peak_layer", "inference_live_bytes", "train_peak_bytes",
                         "train_peak_layer", "train_peak_phase", "train_live_bytes", "train_total_bytes", "train_macs"))
    out["memory_backend"] = backend
    if is_symbolic(t.get("layers")):  # symbolic depth: the rows are one sample's
        return out
    live = _profile(report)
    total = 0
    for r in report.rows:
        total = total + (r.train_macs if r.train_macs is not None else r.macs)
    out["train_macs"] = as_int(total * k)
    if live is None:
        return out
    m = _profile(report, backend, batch)
    inf, at = m.inference_point(batch)
    peak = m.train_peak(batch)
    tb = peak.bytes
    out.update(
        inference_peak_bytes=as_int(inf * k),
        inference_peak_layer=None if at is None else m.name(at),
        inference_live_bytes=as_int(live.inference_peak(batch) * k),
        train_peak_bytes=as_int(tb * k),
        train_peak_layer=None if peak.phase is None else m.name(peak.node),
        train_peak_phase=peak.phase,
        train_live_bytes=as_int(live.train_peak(batch).bytes * k),
        # at the end of backward every gradient exists: the total is at least weights, state and those
        train_total_bytes=as_int((vmax_(tb, m.state_bytes.gradients) + m.state_bytes.with_optimizer
                                  + m.input_bytes * batch) * k),
    )
    return out


def _profile(report, backend=None, batch=None):
    """The report's :class:`Profile` for ``backend`` (None or 'cpu': live tensors); at a concrete
    int ``batch`` on a CUDA backend, the one computed there with the allocator's rounding."""
    mem = report.memory
    if not isinstance(mem, Memory):
        return mem
    if backend is None or backend == "cpu":
        return mem.get()
    return mem.get(backend, batch if batch.__class__ is int and batch > 0 else None)


def max_batch(report, budget: int, inference: bool = False, backend=None):
    """The largest batch whose whole footprint fits ``budget`` bytes: for inference weights,
    buffers, the input and the inference peak; for training also optimizer state and the training
    peak (gradients included); both with ``backend``'s working memory (default
    :data:`DEFAULT_BACKEND`), checked at the answer with the allocator's rounding. 0 when none
    fits. Without a liveness profile (symbolic sizes) the engine's classic estimates
    (:func:`_classic_max_batch`; for inference every activation kept)."""
    backend = _backend(report, backend)
    k = report.totals.get("ensemble", 1)
    m = _profile(report, backend)
    if m is not None and not is_symbolic(report.totals.get("layers")):
        n = m.fit(budget // k, inference)
        key = "inference_peak_bytes" if inference else "train_total_bytes"
        while n > 0 and backend != "cpu":  # rounding adds under 512 bytes a block: rarely a step down
            t = totals(report, n, backend)
            need = t[key] + (_weights_and_input(report, n) * k if inference else 0)
            if need <= budget:
                break
            n -= 1
        return n
    if not inference:
        return _classic_max_batch(report, budget)
    t = report.totals
    free = budget - (t["param_bytes"] + t["buffers"] * (t["param_bytes"] // max(t["params"], 1) if t["params"] else 4))
    return as_int(free // t["activation_bytes"])


def _weights_and_input(report, batch):
    m = _profile(report)
    return m.state_bytes.weights + m.input_bytes * batch


def _classic_max_batch(report, budget_bytes: int):
    """Largest training batch whose saved activations plus weights, gradients and optimizer
    state fit in ``budget_bytes`` (0 when even the weights do not fit)."""
    t = report.totals
    free = budget_bytes - t["train_state_bytes"]
    if is_symbolic(free) or is_symbolic(t["train_saved_bytes"]):
        return as_int(free // t["train_saved_bytes"])
    return max(free // t["train_saved_bytes"], 0) if t["train_saved_bytes"] else None
