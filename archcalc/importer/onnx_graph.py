"""ONNX front end: the graph is read with the ``onnx`` package only (protobuf; no torch).

Each ONNX node is first said as the torch module it stands for (``Conv`` is a ``Conv2d`` with
these constructor values), and the layer registry maps that to a type exactly as for a traced
PyTorch model (``LayerType.torch_ops`` / ``from_torch``): this module knows ONNX and torch, not
archcalc's layer types. Names come from the weights (``layer1.0.conv1.weight`` names the conv
``layer1.0.conv1``, as in the state_dict of the model it was exported from) and, for layers
without weights, from the exporter's scope names (``/layer1/layer1.0/relu/Relu`` or the
``pkg.torch.onnx.name_scopes`` metadata). Shapes come from ONNX shape inference; only the data
inputs of each node are followed from the outputs back, so shape arithmetic (Shape, Gather,
Concat of sizes feeding a Reshape) is never mistaken for layers.

An ONNX file is untrusted input (docs/security.md): :func:`load_model` reads it within the
limits of :mod:`archcalc.limits` (a regular file of bounded size, its protobuf walked on the
wire and counted before it is parsed, external data only from regular files inside the model's
folder, only the values of tiny tensors ever read), and :func:`validate_node` checks every node
archcalc translates against the table ``RULES`` (inputs and attributes with their types and
ranges) before it is used, so a malformed file ends in one line naming the file, node and op.
"""

from __future__ import annotations

import ast
import bisect
import math
import os
import re

from .. import limits as LIM
from ..errors import short
from .ir import Graph, ImportFailed, Op, Unsupported, candidates, defaults_dropped, shown_path, simplify


def _onnx():
    from .ir import need

    return need("onnx", "importing an ONNX file")


def _shown(label) -> str:
    """A file name for an error message: at most 100 characters, control characters escaped."""
    return shown_path(label)


# --------------------------------------------------------------------------- the file, within bounds


def _open_regular(path, subject: str, what: str, nofollow=False):
    """(fd, size) of a regular file, opened without blocking (opening a FIFO to read would wait
    for a writer forever) and checked with fstat before anything is read (archcalc.safeio)."""
    import errno

    from ..safeio import NotRegular, open_regular

    try:
        fd, st = open_regular(path, nofollow=nofollow)
    except FileNotFoundError:
        raise ImportFailed(f"{subject}: no such file") from None
    except NotRegular as err:
        raise ImportFailed(f"{subject} is {err.kind}, not {what}") from None
    except (OSError, ValueError) as err:
        code = getattr(err, "errno", None)
        reason = ("a symbolic link" if code == errno.ELOOP and nofollow else
                  "file name too long" if code == errno.ENAMETOOLONG else getattr(err, "strerror", None) or str(err))
        raise ImportFailed(f"{subject}: cannot read: {short(reason, 80)[1:-1]}") from None
    return fd, st.st_size


def _read_bytes(path, label) -> bytes:
    """The bytes of an ONNX file: a regular file of at most ONNX_MAX_BYTES (fstat first, then at
    most ONNX_MAX_BYTES + 1 bytes read, so a file that grows is refused too)."""
    from ..safeio import read_fd

    subject = _shown(label)
    fd, size = _open_regular(str(path), subject, "an ONNX file")
    limit = LIM.ONNX_MAX_BYTES
    try:
        if size > limit:
            raise ImportFailed(f"{subject} is larger than the limit of {limit:,} bytes for an ONNX file",
                               hint="save a larger model with external data (onnx.save(..., save_as_external_data=True))")
        data = read_fd(fd, limit)
    except OSError as err:
        raise ImportFailed(f"{subject}: cannot read: {short(err.strerror or str(err), 80)[1:-1]}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ImportFailed(f"{subject} is larger than the limit of {limit:,} bytes for an ONNX file")
    return data


# protobuf on the wire: what parsing would build, counted before anything is parsed

_MSG, _VARINT, _FIXED, _BYTES = 0, 1, 2, 3
_TABLES: dict = {}


def _wire_tables() -> dict:
    """message name -> {field number: (kind, repeated, message name or fixed size)} for onnx.proto."""
    if _TABLES:
        return _TABLES
    onnx = _onnx()
    todo = [onnx.ModelProto.DESCRIPTOR]
    while todo:
        d = todo.pop()
        if d.full_name in _TABLES:
            continue
        table = {}
        for f in d.fields:
            rep = f.is_repeated if hasattr(f, "is_repeated") else f.label == 3  # LABEL_REPEATED
            if f.type == f.TYPE_MESSAGE:
                table[f.number] = (_MSG, rep, f.message_type.full_name)
                todo.append(f.message_type)
            elif f.type in (f.TYPE_STRING, f.TYPE_BYTES):
                table[f.number] = (_BYTES, rep, 0)
            elif f.type in (f.TYPE_FLOAT, f.TYPE_FIXED32, f.TYPE_SFIXED32):
                table[f.number] = (_FIXED, rep, 4)
            elif f.type in (f.TYPE_DOUBLE, f.TYPE_FIXED64, f.TYPE_SFIXED64):
                table[f.number] = (_FIXED, rep, 8)
            else:
                table[f.number] = (_VARINT, rep, 0)
        _TABLES[d.full_name] = table
    return _TABLES


_HIGH = bytes(range(128, 256))


def _scan(data: bytes, label) -> dict:
    """Walk the protobuf ``data`` on the wire (one bounded loop, no recursion, nothing parsed) and
    refuse it when parsing it would build more than the limits allow: fields, messages, numbers
    and strings of repeated fields, nodes, initializers, graph and message nesting, values of
    one attribute. Malformed wire data is refused here as well."""
    tables = _wire_tables()
    subject = _shown(label)

    def too_many(what, limit):
        return ImportFailed(f"{subject}: the ONNX file has more than {limit:,} {what}, the limit")

    def malformed(at):
        return ImportFailed(f"{subject}: not a readable ONNX file: malformed protobuf at byte {at:,}")

    max_fields, max_messages, max_elements = LIM.ONNX_MAX_FIELDS, LIM.ONNX_MAX_MESSAGES, LIM.ONNX_MAX_ELEMENTS
    max_nodes, max_inits, max_attr = LIM.ONNX_MAX_NODES, LIM.ONNX_MAX_INITIALIZERS, LIM.ONNX_MAX_ATTR_ELEMENTS
    graph_t, node_t, attr_t = "onnx.GraphProto", "onnx.NodeProto", "onnx.AttributeProto"
    pos, end = 0, len(data)
    name, table = "onnx.ModelProto", tables["onnx.ModelProto"]
    gdepth, attr = 0, 0
    stack: list = []
    fields = messages = elements = nodes = inits = 0
    while True:
        if pos >= end:
            if pos > end:
                raise malformed(end)
            if not stack:
                return {"fields": fields, "messages": messages, "elements": elements, "nodes": nodes, "initializers": inits}
            end, name, table, gdepth, attr = stack.pop()
            continue
        # the tag: field number and wire type (a varint)
        key, shift, at = 0, 0, pos
        while True:
            if pos >= end or shift > 63:
                raise malformed(at)
            b = data[pos]
            pos += 1
            key |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
        fields += 1
        if fields > max_fields:
            raise too_many("protobuf fields", max_fields)
        wire = key & 7
        info = table.get(key >> 3)
        if wire == 2:
            ln, shift = 0, 0
            while True:
                if pos >= end or shift > 63:
                    raise malformed(at)
                b = data[pos]
                pos += 1
                ln |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
            start = pos
            pos += ln
            if pos > end:
                raise malformed(at)
            if info is None:
                continue  # an unknown field: kept as its bytes
            kind, rep, sub = info
            if kind == _MSG:
                messages += 1
                if messages > max_messages:
                    raise too_many("protobuf messages", max_messages)
                if name == attr_t and rep:
                    attr += 1
                    if attr > max_attr:
                        raise too_many("values in one node attribute", max_attr)
                if name == graph_t and (key >> 3) in (5, 15):  # initializer, sparse_initializer
                    inits += 1
                    if inits > max_inits:
                        raise too_many("initializers", max_inits)
                stack.append((end, name, table, gdepth, attr))
                if len(stack) > LIM.ONNX_MAX_PROTO_DEPTH:
                    raise ImportFailed(f"{subject}: the ONNX file nests protobuf messages more than "
                                       f"{LIM.ONNX_MAX_PROTO_DEPTH} deep, the limit")
                if sub == graph_t:
                    gdepth += 1
                    if gdepth > LIM.ONNX_MAX_GRAPH_DEPTH:
                        raise ImportFailed(f"{subject}: the ONNX file nests graphs (subgraphs of node attributes) "
                                           f"more than {LIM.ONNX_MAX_GRAPH_DEPTH} deep, the limit")
                elif sub == node_t:
                    nodes += 1
                    if nodes > max_nodes:
                        raise too_many("nodes", max_nodes)
                end, pos, name, table, attr = pos, start, sub, tables[sub], 0
                continue
            if not rep:
                continue
            if kind == _VARINT:
                count = len(data[start:pos].translate(None, _HIGH))  # a varint ends in its one byte < 0x80
            elif kind == _FIXED:
                count = ln // sub
            else:
                count = 1
            if kind != _FIXED:  # packed fixed-size numbers parse to their own size
                elements += count
                if elements > max_elements:
                    raise too_many("numbers and strings in repeated fields", max_elements)
            if name == attr_t:
                attr += count
                if attr > max_attr:
                    raise too_many("values in one node attribute", max_attr)
        elif wire == 0:
            while True:
                if pos >= end or pos - at > 20:
                    raise malformed(at)
                b = data[pos]
                pos += 1
                if b < 0x80:
                    break
            if info is not None and info[1]:
                elements += 1
                if elements > max_elements:
                    raise too_many("numbers and strings in repeated fields", max_elements)
                if name == attr_t:
                    attr += 1
                    if attr > max_attr:
                        raise too_many("values in one node attribute", max_attr)
        elif wire == 5 or wire == 1:
            pos += 4 if wire == 5 else 8
            if info is not None and info[1] and name == attr_t:
                attr += 1
                if attr > max_attr:
                    raise too_many("values in one node attribute", max_attr)
        else:  # groups (3, 4) are not in onnx.proto; 6 and 7 are not wire types
            raise malformed(at)


# tensors: external data checked and read within bounds, large tensors' data dropped

_BITS = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 14: 64, 15: 128,
         16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8, 25: 2, 26: 2, 27: 6, 28: 6}
_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def _all_tensors(model):
    """(tensor, what) for every tensor of the model: initializers (dense and sparse) and tensors
    in node attributes, in the main graph, its subgraphs and the model's functions."""
    todo = [model.graph] + list(model.functions)
    while todo:
        g = todo.pop()
        if g.DESCRIPTOR.full_name == "onnx.GraphProto":
            for t in g.initializer:
                yield t, "initializer"
            for sp in g.sparse_initializer:
                yield sp.values, "sparse initializer"
                yield sp.indices, "sparse initializer"
        for node in g.node:
            for a in node.attribute:
                what = f"attribute {short(a.name, 40)} of a {short(node.op_type, 40)[1:-1]} node"
                if a.HasField("t"):
                    yield a.t, what
                for t in a.tensors:
                    yield t, what
                for sp in ([a.sparse_tensor] if a.HasField("sparse_tensor") else []) + list(a.sparse_tensors):
                    yield sp.values, what
                    yield sp.indices, what
                if a.HasField("g"):
                    todo.append(a.g)
                todo.extend(a.graphs)


def _numel(t, subject):
    n = 1
    for d in t.dims:
        if d < 0:
            raise ImportFailed(f"{subject}: has a negative dimension {d}")
        n *= d
    return n


def _external_file(folder, location, subject, files: dict):
    """The real path and size of an external data file: a relative path inside the model's folder
    (no '..', not absolute, no symbolic link leading out), a regular file within the size limit."""
    shown = short(location, 60)
    if not location or len(location) > 4096 or "\x00" in location:
        raise ImportFailed(f"{subject}: external data location {shown} is not a file name")
    parts = re.split(r"[\\/]", location)
    if location.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", location) or os.path.isabs(location):
        raise ImportFailed(f"{subject}: external data location {shown} is an absolute path; "
                           "it must be a path relative to the model's folder")
    if ".." in parts:
        raise ImportFailed(f"{subject}: external data location {shown} leads out of the model's folder ('..')")
    base = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(folder, location))
    try:
        inside = os.path.commonpath([base, real]) == base
    except ValueError:  # another drive (Windows)
        inside = False
    if not inside:
        raise ImportFailed(f"{subject}: external data location {shown} leads out of the model's folder "
                           "through a symbolic link")
    if real not in files:
        if len(files) >= LIM.ONNX_MAX_INITIALIZERS:
            raise ImportFailed(f"{subject}: more than {LIM.ONNX_MAX_INITIALIZERS:,} external data files, the limit")
        fd, size = _open_regular(real, f"{subject}: external data file {shown}", "a regular file", nofollow=True)
        os.close(fd)
        if size > LIM.ONNX_MAX_EXTERNAL_FILE_BYTES:
            raise ImportFailed(f"{subject}: external data file {shown} is larger than the limit of "
                               f"{LIM.ONNX_MAX_EXTERNAL_FILE_BYTES:,} bytes")
        files[real] = size
    return real, files[real]


def _external_int(info, key, subject):
    text = info.get(key)
    if text is None:
        return None
    if not re.fullmatch(r"[0-9]{1,19}", text.strip()):
        raise ImportFailed(f"{subject}: external data {key} {short(text, 40)} is not a non-negative integer")
    return int(text)


def _prepare_tensors(model, folder, label) -> None:
    """Check every tensor's external data (a regular file inside the model's folder, within the
    size limits, its byte length the tensor's shape x dtype, inside the file) and read it only
    for tensors of at most ONNX_VALUE_ELEMENTS elements; drop the data of larger tensors (archcalc
    uses their dims only), so nothing downstream (shape inference included) reads or copies it."""
    onnx = _onnx()
    external = onnx.TensorProto.EXTERNAL
    files: dict = {}
    total, count = 0, 0
    for t, what in _all_tensors(model):
        subject = f"{_shown(label)}: {what} {short(t.name, 60)}"
        n = _numel(t, subject)
        if t.data_location == external:
            count += 1
            if count > LIM.ONNX_MAX_INITIALIZERS:
                raise ImportFailed(f"{_shown(label)}: more than {LIM.ONNX_MAX_INITIALIZERS:,} tensors with external data, the limit")
            bits = _BITS.get(t.data_type)
            if bits is None:
                raise ImportFailed(f"{subject}: external data of data type {t.data_type} (archcalc reads numeric tensors only)")
            nbytes = (n * bits + 7) // 8
            total += nbytes
            if total > LIM.ONNX_MAX_EXTERNAL_BYTES:
                raise ImportFailed(f"{_shown(label)}: external data of more than {LIM.ONNX_MAX_EXTERNAL_BYTES:,} bytes "
                                   "in total (by the tensors' shapes), the limit")
            info = {}
            for e in t.external_data:
                info[e.key] = e.value
            path, size = _external_file(folder, info.get("location", ""), subject, files)
            offset = _external_int(info, "offset", subject) or 0
            length = _external_int(info, "length", subject)
            if length is not None and length != nbytes:
                raise ImportFailed(f"{subject}: external data length {length:,} bytes, but its shape and data type "
                                   f"make {nbytes:,} bytes")
            if offset + nbytes > size:
                raise ImportFailed(f"{subject}: external data bytes {offset:,} to {offset + nbytes:,} lie beyond the end "
                                   f"of {short(info.get('location'), 60)} ({size:,} bytes)")
            data = b""
            if n <= LIM.ONNX_VALUE_ELEMENTS:
                fd, _ = _open_regular(path, subject, "a regular file", nofollow=True)
                try:
                    os.lseek(fd, offset, os.SEEK_SET)
                    data = os.read(fd, nbytes)  # at most ONNX_VALUE_ELEMENTS x 16 bytes
                except OSError as err:
                    raise ImportFailed(f"{subject}: cannot read its external data: {err.strerror or err}") from None
                finally:
                    os.close(fd)
                if len(data) != nbytes:
                    raise ImportFailed(f"{subject}: its external data file ends early")
            t.ClearField("external_data")
            t.data_location = onnx.TensorProto.DEFAULT
            if data:
                t.raw_data = data
        elif n > LIM.ONNX_VALUE_ELEMENTS:
            for f in _DATA_FIELDS:
                t.ClearField(f)


def load_model(path, label=None):
    """The ModelProto of an ONNX file, read within the limits (see the module's docstring): no
    tensor larger than ONNX_VALUE_ELEMENTS keeps its data."""
    onnx = _onnx()
    label = str(path) if label is None else label
    data = _read_bytes(path, label)
    _scan(data, label)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as err:  # noqa: BLE001 - protobuf's DecodeError and kin: one line
        raise ImportFailed(f"{_shown(label)}: not a readable ONNX file: {type(err).__name__}: {short(str(err), 120)[1:-1]}") from None
    del data
    _prepare_tensors(model, os.path.dirname(os.path.abspath(str(path))), label)
    return model


# --------------------------------------------------------------------------- what archcalc uses of each node

_INT, _FLOAT, _STRING, _INTS, _FLOATS = 2, 1, 3, 7, 6  # onnx.AttributeProto.AttributeType
_TYPE_NAMES = {0: "untyped", 1: "a float", 2: "an int", 3: "a string", 4: "a tensor", 5: "a graph", 6: "floats",
               7: "ints", 8: "strings", 9: "tensors", 10: "graphs", 11: "a sparse tensor", 12: "sparse tensors",
               13: "a type", 14: "types"}


class A:
    """One attribute archcalc reads: its ONNX type, whether a node must have it, its range.
    ``spatial``: a list with one value per spatial axis (1) or two (pads: 2)."""

    __slots__ = ("type", "required", "lo", "hi", "choices", "spatial")

    def __init__(self, type_, required=False, lo=None, hi=None, choices=None, spatial=0):
        self.type, self.required, self.lo, self.hi, self.choices, self.spatial = type_, required, lo, hi, choices, spatial


class R:
    """What archcalc uses of one op: ``inputs`` (the names of those it needs, then the optional
    ones; at most ``most``), ``scalars`` (input positions whose constant value must be one finite
    number in [lo, hi]), ``weight`` (the input whose shape is a layer's size: its rank and
    positive dimensions are checked when known) and the attributes it reads."""

    __slots__ = ("needs", "optional", "most", "attrs", "scalars", "weight", "finite")

    def __init__(self, needs=("X",), optional=(), most=None, attrs=None, scalars=None, weight=None, finite=False):
        self.needs, self.optional = tuple(needs), tuple(optional)
        self.most = len(self.needs) + len(self.optional) if most is None else most
        self.attrs, self.scalars, self.weight = dict(attrs or {}), dict(scalars or {}), weight
        self.finite = finite  # every constant input's values finite (a Mul by a constant is a scale layer)


_BIG = LIM.MAX_SIZE
_AUTO_PAD = (b"NOTSET", b"SAME_UPPER", b"SAME_LOWER", b"VALID")
_BOOL = dict(lo=0, hi=1)
_CONV = {"auto_pad": A(_STRING, choices=_AUTO_PAD), "group": A(_INT, lo=1, hi=_BIG),
         "kernel_shape": A(_INTS, lo=1, hi=_BIG, spatial=1), "strides": A(_INTS, lo=1, hi=_BIG, spatial=1),
         "dilations": A(_INTS, lo=1, hi=_BIG, spatial=1), "pads": A(_INTS, lo=0, hi=_BIG, spatial=2)}
_POOL = {"auto_pad": A(_STRING, choices=_AUTO_PAD), "kernel_shape": A(_INTS, True, lo=1, hi=_BIG, spatial=1),
         "strides": A(_INTS, lo=1, hi=_BIG, spatial=1), "pads": A(_INTS, lo=0, hi=_BIG, spatial=2),
         "ceil_mode": A(_INT, **_BOOL)}
_FINITE = A(_FLOAT)
_RESIZE = {"mode": A(_STRING, choices=(b"nearest", b"linear", b"cubic")),
           "coordinate_transformation_mode": A(_STRING, choices=(b"half_pixel", b"half_pixel_symmetric", b"pytorch_half_pixel",
                                                                 b"align_corners", b"asymmetric", b"tf_crop_and_resize"))}

RULES = {
    "Conv": R(("X", "W"), ("B",), attrs=_CONV, weight=1),
    "ConvTranspose": R(("X", "W"), ("B",), attrs={**_CONV, "output_padding": A(_INTS, lo=0, hi=_BIG, spatial=1)}, weight=1),
    "Gemm": R(("A", "B"), ("C",), attrs={"alpha": _FINITE, "beta": _FINITE, "transA": A(_INT, **_BOOL),
                                         "transB": A(_INT, **_BOOL)}, weight=1),
    "BatchNormalization": R("X scale B input_mean input_var".split(),  # ONNX's input names
                            attrs={"epsilon": A(_FLOAT, lo=0.0), "momentum": A(_FLOAT, lo=0.0, hi=1.0)}, weight=1),
    "Relu": R(), "Sigmoid": R(), "Tanh": R(), "HardSwish": R(), "Identity": R(), "GlobalAveragePool": R(),
    "HardSigmoid": R(attrs={"alpha": _FINITE, "beta": _FINITE}),
    "LeakyRelu": R(attrs={"alpha": _FINITE}),
    "Elu": R(attrs={"alpha": _FINITE}),
    "Gelu": R(attrs={"approximate": A(_STRING, choices=(b"none", b"tanh"))}),
    "Clip": R(("input",), ("min", "max"), scalars={1: (None, None), 2: (None, None)}),
    "Softmax": R(attrs={"axis": A(_INT, lo=-64, hi=64)}),
    "Dropout": R(("data",), ("ratio", "training_mode"), scalars={1: (0.0, 1.0)}),
    "MaxPool": R(attrs={**_POOL, "dilations": A(_INTS, lo=1, hi=_BIG, spatial=1)}),
    "AveragePool": R(attrs={**_POOL, "count_include_pad": A(_INT, **_BOOL)}),
    "ReduceMean": R(("data",), ("axes",), attrs={"axes": A(_INTS, lo=-64, hi=64), "keepdims": A(_INT, **_BOOL)}),
    "ReduceMax": R(("data",), ("axes",), attrs={"axes": A(_INTS, lo=-64, hi=64), "keepdims": A(_INT, **_BOOL)}),
    "Flatten": R(attrs={"axis": A(_INT, lo=-64, hi=64)}),
    "Reshape": R(("data",), ("shape",)),
    "Add": R(("A", "B")), "Mul": R(("A", "B"), finite=True),
    "Mish": R(), "Softsign": R(), "Softplus": R(), "GlobalMaxPool": R(), "Sub": R(("A", "B")), "Max": R(("data_0",), most=2),
    "PRelu": R(("X", "slope"), weight=1),
    "Pad": R(("data",), ("pads", "constant_value", "axes"), attrs={"mode": A(_STRING, choices=(b"constant", b"reflect", b"edge", b"wrap"))}),
    "DepthToSpace": R(attrs={"blocksize": A(_INT, True, lo=1, hi=_BIG), "mode": A(_STRING, choices=(b"DCR", b"CRD"))}),
    "Sum": R(("data_0",), most=LIM.ONNX_MAX_ATTR_ELEMENTS),
    "Concat": R(("inputs",), most=LIM.ONNX_MAX_ATTR_ELEMENTS, attrs={"axis": A(_INT, lo=-64, hi=64)}),
    "Resize": R(("X",), ("roi", "scales", "sizes"), attrs=_RESIZE),
    "Slice": R(("data", "starts", "ends"), ("axes", "steps"), scalars={k: (None, None) for k in (1, 2, 3, 4)}),
    "Upsample": R(("X",), ("scales",), attrs=_RESIZE),
}


def np_isfinite(v) -> bool:
    import numpy as np

    return bool(np.isfinite(v).all())


def node_label(node, index) -> str:
    """``node #3 '/stem/conv/Conv' (Conv)``: a node of the main graph by its index, name and op."""
    name = f" {short(node.name, 60)}" if node.name else ""
    return f"node #{index}{name} ({short(node.op_type, 40)[1:-1]})"


def _attr_value(a):
    """The value of an attribute of a type in ``_TYPE_NAMES`` archcalc reads (checked already)."""
    if a.type == _INT:
        return a.i
    if a.type == _FLOAT:
        return a.f
    if a.type == _STRING:
        return a.s
    if a.type == _INTS:
        return list(a.ints)
    return list(a.floats)


def validate_node(node, index, r) -> None:
    """Check a node of an op archcalc translates against ``RULES``: its inputs (count, the required
    ones present, constant scalars one finite number in range, the weight's dimensions positive),
    its output, and the type, length and range of each attribute archcalc reads. Raises one
    ImportFailed naming the file, the node and the op."""
    rule = RULES.get(node.op_type)
    if rule is None:
        return

    def fail(text):
        raise ImportFailed(f"{_shown(r.label)}: {node_label(node, index)}: {text}")

    ins = list(node.input)
    op = short(node.op_type, 40)[1:-1]
    while ins and not ins[-1]:
        ins.pop()  # trailing empty names: optional inputs left out
    if len(ins) > rule.most:
        fail(f"has {len(ins)} inputs; {op} takes at most {rule.most}")
    for k, what in enumerate(rule.needs):
        if k >= len(ins) or not ins[k]:
            fail(f"input {k + 1} ({what}) is missing; {op} needs {len(rule.needs)}: {', '.join(rule.needs)}")
    if not node.output or not node.output[0]:
        fail("has no output")
    values, seen = {}, set()
    for a in node.attribute:
        if a.name in seen:
            fail(f"has attribute {short(a.name, 40)} twice")
        seen.add(a.name)
        spec = rule.attrs.get(a.name)
        if spec is None:
            continue
        if a.type != spec.type:
            fail(f"attribute {short(a.name, 40)} is {_TYPE_NAMES.get(a.type, f'of type {a.type}')}, expected {_TYPE_NAMES[spec.type]}")
        v = _attr_value(a)
        for x in (v if isinstance(v, list) else [v]):
            if isinstance(x, float) and not math.isfinite(x):
                fail(f"attribute {short(a.name, 40)} is {x}, expected a finite number")
            if spec.lo is not None and x < spec.lo or spec.hi is not None and x > spec.hi:
                rng = (f"from {spec.lo} to {spec.hi}" if spec.lo is not None and spec.hi is not None else
                       f">= {spec.lo}" if spec.lo is not None else f"<= {spec.hi}")
                shown = short(x) if isinstance(x, int) else repr(x)
                fail(f"attribute {short(a.name, 40)} has the value {shown}, expected {rng}")
            if spec.choices is not None and x not in spec.choices:
                fail(f"attribute {short(a.name, 40)} is {short(x.decode('utf-8', 'replace'), 40)}, expected one of "
                     + ", ".join(c.decode() for c in spec.choices))
        values[a.name] = v
    for name, spec in rule.attrs.items():
        if spec.required and name not in values:
            fail(f"attribute {short(name, 40)} is missing; {op} needs it")
    # spatial attributes: one value per spatial axis (pads two), the same count in all of them
    axes = None
    if rule.weight is not None and node.op_type in ("Conv", "ConvTranspose"):
        w = r.shapes.get(ins[1])
        if w is not None and len(w) >= 3:
            axes, source = len(w) - 2, f"its weight has rank {len(w)}"
    for name, spec in rule.attrs.items():
        if spec.spatial and name in values:
            n = len(values[name])
            if n == 0 or n % spec.spatial:
                fail(f"attribute {short(name, 40)} has {n} values, expected {'two per' if spec.spatial == 2 else 'one per'} spatial axis")
            if axes is None:
                axes, source = n // spec.spatial, f"{name} has {n} value{'s' if n != 1 else ''}"
            elif n != axes * spec.spatial:
                fail(f"attribute {short(name, 40)} has {n} values, expected {axes * spec.spatial} ({source})")
    # constant scalars (Clip's bounds, Dropout's ratio): one finite number in range
    for k, (lo, hi) in rule.scalars.items():
        if k < len(ins) and ins[k]:
            v = r.value(ins[k])
            if v is None:
                continue
            if v.size != 1:
                fail(f"input {k + 1} ({(rule.needs + rule.optional)[k]}) has {v.size} values, expected one number")
            x = float(v.reshape(-1)[0].real)
            if not math.isfinite(x) or lo is not None and x < lo or hi is not None and x >= hi:
                rng = f" in [{lo}, {hi})" if lo is not None else ""
                fail(f"input {k + 1} ({(rule.needs + rule.optional)[k]}) is {x!r}, expected a finite number{rng}")
    if rule.finite:
        for k, x in enumerate(ins):
            v = r.value(x)
            if v is not None and v.dtype.kind == "f" and not np_isfinite(v):
                fail(f"input {k + 1} ({(rule.needs + rule.optional)[k]}) is a constant that is not finite")
    # the weight whose shape sizes the layer: positive dimensions where known
    if rule.weight is not None:
        w = r.shapes.get(ins[rule.weight])
        if w is not None:
            if node.op_type == "BatchNormalization" and len(w) != 1:
                fail(f"input 2 (scale) has rank {len(w)}, expected a vector of one value per channel")
            if any(d is not None and not 0 < d <= _BIG for d in w):
                fail(f"input {rule.weight + 1} ({rule.needs[rule.weight]}) has the shape "
                     f"{'x'.join('?' if d is None else str(d) for d in w)[:80]}, expected dimensions from 1 to {_BIG:,}")


def _num(x, digits=7):
    """A float32 attribute as the decimal it was written as (1e-05, not 9.99999974738e-06)."""
    return float(f"{x:.{digits}g}")


def _pads(pads):
    """ONNX pads [top, left, bottom, right] as torch padding: (h, w), or (top, bottom, left, right)."""
    if not pads:
        return (0, 0)
    t, l, b, r = pads
    return (t, l) if (t == b and l == r) else (t, b, l, r)


class _Reader:
    """The main graph of a model: its initializers, constants, producers and shapes. Every node of
    an op archcalc translates is checked (:func:`validate_node`) before shape inference, whose
    messages about a malformed node would be onnx's own, and the shapes are then inferred."""

    def __init__(self, model, label):
        onnx = _onnx()
        self.onnx = onnx
        self.label = label
        self._values: dict = {}
        self._index(model.graph)
        for k, node in enumerate(self.graph.node):
            validate_node(node, k, self)
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception as err:  # noqa: BLE001 - a malformed file: one line
            raise ImportFailed(f"{_shown(label)}: ONNX shape inference failed: {type(err).__name__}: {short(str(err), 120)[1:-1]}") from None
        self._index(model.graph)

    def _index(self, graph):
        label = self.label
        self.graph = graph
        self.inits = {t.name: t for t in graph.initializer}
        self.shapes = {}
        for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        for name, t in self.inits.items():
            self.shapes[name] = tuple(t.dims)
        self.consts = {}  # the output of a Constant node -> (its attribute, node, index); values read when asked for
        self.producer = {}
        for k, node in enumerate(graph.node):
            for out in node.output:
                self.producer[out] = node
            if node.op_type == "Constant":
                if len(node.output) != 1 or not node.output[0] or len(node.attribute) != 1:
                    raise ImportFailed(f"{_shown(label)}: {node_label(node, k)}: expected one output and one value attribute")
                self.consts[node.output[0]] = (node.attribute[0], node, k)

    def attrs(self, node):
        """The attributes of a node that archcalc reads (those in RULES, checked by validate_node)."""
        rule = RULES.get(node.op_type)
        return {a.name: _attr_value(a) for a in node.attribute if rule is not None and a.name in rule.attrs}

    def value(self, name):
        """The value of a constant (initializer or Constant node) of at most ONNX_VALUE_ELEMENTS
        numbers, as a numpy array; None for data, larger tensors and non-numeric ones."""
        if not name or name in self._values:
            return self._values.get(name)
        v = None
        if name in self.inits:
            v = self._tensor_value(self.inits[name], f"initializer {short(name, 60)}")
        elif name in self.consts:
            a, node, k = self.consts[name]
            where = f"{node_label(node, k)}"
            if a.name == "value" and a.type == 4:
                v = self._tensor_value(a.t, where)
            elif a.name in ("value_int", "value_float", "value_ints", "value_floats") and a.type in (_INT, _FLOAT, _INTS, _FLOATS):
                import numpy as np

                x = _attr_value(a)
                if not isinstance(x, list) or len(x) <= LIM.ONNX_VALUE_ELEMENTS:
                    v = np.array(x)
        self._values[name] = v
        return v

    def _tensor_value(self, t, where):
        n = 1
        for d in t.dims:
            n *= d
        if n > LIM.ONNX_VALUE_ELEMENTS or t.data_type in (0, 8):  # large (its data dropped) or strings
            return None
        try:
            v = self.onnx.numpy_helper.to_array(t)
        except Exception as err:  # noqa: BLE001 - a tensor whose data does not fit its shape: one line
            raise ImportFailed(f"{_shown(self.label)}: {where}: its tensor cannot be read: {type(err).__name__}: "
                               f"{short(str(err), 100)[1:-1]}") from None
        return v if v.dtype.kind in "biuf" else None

    def is_data(self, name):
        return bool(name) and name not in self.inits and name not in self.consts


def _scope_path(node, label, index):
    """The module path of a node without weights, from the exporter's scope names."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            bad = ImportFailed(f"{_shown(label)}: {node_label(node, index)}: metadata 'pkg.torch.onnx.name_scopes' "
                               f"is not a list of names (within {LIM.ONNX_MAX_METADATA_CHARS:,} characters)")
            if len(prop.value) > LIM.ONNX_MAX_METADATA_CHARS:
                raise bad
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise bad from None
            if not isinstance(scopes, (list, tuple)) or not all(isinstance(s, str) for s in scopes):
                raise bad
            return [s for s in scopes[1:-1] if s]
    comps = [c for c in node.name.split("/") if c][:-1] if node.name.startswith("/") else []
    out, full, rel = [], "", ""
    for c in comps:
        if rel and c.startswith(rel + "."):
            full = full[: len(full) - len(rel)] + c
        elif full and not c.startswith(full + "."):
            full = f"{full}.{c}"
        else:
            full = c
        rel = c
        out.append(full)
    return out


def translate(node, r):
    """The torch module (class name, constructor values) an ONNX node stands for, its data inputs
    and the extra tensors it reads for their size; or a list of such modules in a row; or None.
    The node has passed :func:`validate_node`."""
    a = r.attrs(node)
    t = node.op_type
    data = [x for x in node.input[:1] if r.is_data(x)]
    if t in ("Conv", "ConvTranspose"):
        w = r.shapes.get(node.input[1])
        if a.get("auto_pad", b"NOTSET") != b"NOTSET" or w is None or len(w) != 4 or None in w:
            return None
        g = a.get("group", 1)
        k = tuple(a.get("kernel_shape", w[2:]))
        kw = {"kernel_size": k, "stride": tuple(a.get("strides", (1, 1))), "dilation": tuple(a.get("dilations", (1, 1))),
              "groups": g, "bias": len(node.input) > 2 and bool(node.input[2]), "padding_mode": "zeros"}
        if t == "Conv":
            return [("Conv2d", {**kw, "in_channels": w[1] * g, "out_channels": w[0], "padding": _pads(a.get("pads"))})], data
        pads = _pads(a.get("pads"))
        if len(pads) == 4:
            return None
        return [("ConvTranspose2d", {**kw, "in_channels": w[0], "out_channels": w[1] * g, "padding": pads,
                                     "output_padding": tuple(a.get("output_padding", (0, 0)))})], data
    if t == "Gemm":
        w = r.shapes.get(node.input[1])
        if (a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or w is None or len(w) != 2
                or None in w or node.input[1] not in r.inits):
            return None
        out = w[0] if a.get("transB", 0) else w[1]
        return [("Linear", {"in_features": w[1] if a.get("transB", 0) else w[0], "out_features": out,
                            "bias": len(node.input) > 2 and bool(node.input[2])})], data
    if t == "BatchNormalization":
        c = r.shapes.get(node.input[1], (None,))
        if len(c) != 1 or c[0] is None:
            return None
        return [("BatchNorm2d", {"num_features": c[0], "eps": _num(a.get("epsilon", 1e-5)),
                                 "momentum": round(1 - _num(a.get("momentum", 0.9)), 6), "affine": True,
                                 "track_running_stats": True})], data
    simple = {"Relu": ("ReLU", {"inplace": True}), "Sigmoid": ("Sigmoid", {}), "Tanh": ("Tanh", {}),
              "HardSwish": ("Hardswish", {"inplace": True}), "Identity": ("Identity", {}),
              "GlobalAveragePool": ("AdaptiveAvgPool2d", {"output_size": 1}),
              "Mish": ("Mish", {"inplace": False}), "Softsign": ("Softsign", {}),
              "Softplus": ("Softplus", {"beta": 1.0}),  # torch's default linear tail above 20: equal in float32
              "GlobalMaxPool": ("AdaptiveMaxPool2d", {"output_size": 1})}
    if t in simple:
        return [simple[t]], data
    if t == "PRelu":
        w = r.shapes.get(node.input[1])
        if w is None or None in w or node.input[1] not in r.inits:
            return None
        n = 1
        for d in w:
            n *= d
        return [("PReLU", {"num_parameters": n})], data
    if t == "Pad":
        pads = r.value(node.input[1]) if len(node.input) > 1 else None
        rank = len(r.shapes.get(node.input[0], ()))
        if pads is None or pads.dtype.kind not in "iu" or rank != 4 or len(node.input) > 3 and node.input[3]:
            return None
        p = [int(v) for v in pads.reshape(-1)]
        if len(p) != 8 or any(p[i] for i in (0, 1, 4, 5)) or min(p) < 0:
            return None  # only the spatial axes, no cropping
        value = r.value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        mode = {b"constant": "constant", b"reflect": "reflect", b"edge": "replicate", b"wrap": "circular"}[a.get("mode", b"constant")]
        return [("Pad", {"padding": (p[3], p[7], p[2], p[6]), "mode": mode,
                         "value": 0.0 if value is None else _num(float(value.reshape(-1)[0]))})], data
    if t == "DepthToSpace":
        return [("PixelShuffle", {"upscale_factor": a["blocksize"]})], data if a.get("mode", b"DCR") == b"CRD" else None
    if t == "HardSigmoid":
        if abs(a.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(a.get("beta", 0.5) - 0.5) > 1e-6:
            return None
        return [("Hardsigmoid", {"inplace": True})], data
    if t == "LeakyRelu":
        return [("LeakyReLU", {"negative_slope": _num(a.get("alpha", 0.01)), "inplace": True})], data
    if t == "Elu":
        return [("ELU", {"alpha": _num(a.get("alpha", 1.0)), "inplace": True})], data
    if t == "Gelu":
        return [("GELU", {"approximate": a.get("approximate", b"none").decode("ascii")})], data
    if t == "Slice":
        # x[:, a:b] of a feature map (ghostnet, rexnet, dpn): a channel slice
        x = r.shapes.get(node.input[0])
        starts, ends, axes, steps = (r.value(v) if v else None for v in (list(node.input) + ["", "", "", ""])[1:5])
        if x is None or len(x) != 4 or x[1] is None or starts is None or ends is None:
            return None
        axis = int(axes.reshape(-1)[0]) if axes is not None else 0
        step = int(steps.reshape(-1)[0]) if steps is not None else 1
        if axis % 4 != 1 or step != 1:
            return None
        start, stop, _ = slice(int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0])).indices(x[1])
        return ([("ChannelSlice", {"start": start, "stop": stop})], data) if stop > start else None
    if t == "Clip":
        lo, hi = (r.value(x) if x else None for x in (list(node.input) + ["", ""])[1:3])
        if lo is not None and hi is not None and float(lo.reshape(-1)[0]) == 0.0 and float(hi.reshape(-1)[0]) == 6.0:
            return [("ReLU6", {"inplace": True})], data
        return None
    if t == "Softmax":
        return [("Softmax", {"dim": a.get("axis", -1)})], data
    if t == "Dropout":
        ratio = r.value(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        return [("Dropout", {"p": _num(float(ratio.reshape(-1)[0])) if ratio is not None else 0.5})], data
    if t in ("MaxPool", "AveragePool"):
        if a.get("auto_pad", b"NOTSET") != b"NOTSET" or len(node.output) > 1 and node.output[1]:
            return None
        k = tuple(a["kernel_shape"])
        if len(k) != 2:
            return None  # 1-d and 3-d pooling: no archcalc layer type
        kw = {"kernel_size": k, "stride": tuple(a.get("strides", (1, 1))), "padding": _pads(a.get("pads")),
              "ceil_mode": bool(a.get("ceil_mode", 0))}
        if t == "MaxPool":
            return [("MaxPool2d", {**kw, "dilation": tuple(a.get("dilations", (1, 1))), "return_indices": False})], data
        return [("AvgPool2d", {**kw, "count_include_pad": bool(a.get("count_include_pad", 0)), "divisor_override": None})], data
    if t in ("ReduceMean", "ReduceMax"):
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            v = r.value(node.input[1])
            axes = None if v is None or v.dtype.kind not in "iu" else [int(x) for x in v.reshape(-1)]
        rank = len(r.shapes.get(node.input[0], ()))
        if rank != 4 or axes is None or sorted(x % 4 for x in axes) != [2, 3]:
            return None
        ops = [("AdaptiveAvgPool2d", {"output_size": 1}) if t == "ReduceMean" else ("GlobalMaxPool", {})]
        return (ops if a.get("keepdims", 1) else ops + [("Flatten", {})]), data
    if t in ("Flatten", "Reshape"):
        if t == "Flatten" and a.get("axis", 1) != 1:
            return None
        return [("Flatten", {})], data
    if t in ("Add", "Sum", "Mul", "Sub", "Max"):
        ins = [x for x in node.input if x]
        tensors = [x for x in ins if r.is_data(x)]
        if len(ins) == 2 and len(tensors) == 2:
            return [({"Mul": "Mul", "Sub": "Sub", "Max": "Maximum"}.get(t, "Add"), {})], tensors
        if t in ("Sub", "Max"):
            return None
        if t == "Mul" and len(ins) == 2 and len(tensors) == 1:
            c = r.value(next(x for x in ins if x not in tensors))
            if c is not None and c.size == 1:
                return [("Scale", {"factor": _num(float(c.reshape(-1)[0]))})], tensors
        return None
    if t == "Concat":
        rank = len(r.shapes.get(node.output[0], ()))
        if rank != 4 or a.get("axis") is None or not -3 <= a["axis"] <= 3 or a["axis"] == 0:
            return None
        return [("Concat", {"dim": a["axis"] % 4})], [x for x in node.input if r.is_data(x)]
    if t in ("Resize", "Upsample"):
        mode = a.get("mode", b"nearest")  # ONNX string attributes are bytes
        ctm = a.get("coordinate_transformation_mode", b"half_pixel")
        y = r.shapes.get(node.output[0])
        if mode not in (b"nearest", b"linear") or y is None or len(y) != 4 or None in y:
            return None
        return [("Upsample", {"size": tuple(y[2:]), "mode": "bilinear" if mode == b"linear" else "nearest",
                              "align_corners": ctm == b"align_corners"})], data
    return None


def read(path: str, input_shape=None) -> Graph:
    label = str(path)
    model = load_model(path, label)
    r = _Reader(model, label)
    g = r.graph
    inputs = [i for i in g.input if i.name not in r.inits]
    if len(inputs) != 1:
        raise ImportFailed(f"{_shown(label)}: the graph has {len(inputs)} inputs; archcalc imports networks of one input")
    shape = r.shapes[inputs[0].name]
    if len(shape) not in (2, 4) or None in shape[1:] or not all(0 < d <= LIM.MAX_SIZE for d in shape[1:]):
        raise ImportFailed(f"{_shown(label)}: input shape {'x'.join('?' if d is None else str(d) for d in shape)[:80] or '()'} "
                           "is not N x C x H x W (or N x F) with fixed, positive C, H and W",
                           hint="export with a fixed input size")
    if input_shape is not None and tuple(input_shape) != tuple(shape[1:]):
        raise ImportFailed(f"{_shown(label)}: the graph's input is {'x'.join(map(str, shape[1:]))}; --input cannot change it")
    # the nodes that compute data, found from the outputs back through data inputs
    order = {id(node): k for k, node in enumerate(g.node)}
    needed, stack = set(), [o.name for o in g.output]
    trans = {}
    while stack:
        name = stack.pop()
        node = r.producer.get(name)
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        if node.op_type in ("Identity",) and node.input and not r.is_data(node.input[0]):
            continue
        validate_node(node, order[id(node)], r)
        res = translate(node, r)
        trans[id(node)] = res
        follow = res[1] if res else [x for x in node.input if r.is_data(x)]
        stack.extend(follow)
    table = candidates()
    bad = Unsupported()
    ops: list = []
    env = {inputs[0].name: -1}
    # module paths of the weights, sorted: a scope has children when one starts with 'scope.'
    # (a binary search; the set of every prefix would grow with the names' lengths x their depths)
    param_paths = sorted({n.rsplit(".", 1)[0] for n in r.inits if "." in n})
    used: dict = {}
    counters: dict = {}
    named: dict = {}  # layer name -> the node that has it

    def has_children(scope):
        key = scope + "."
        i = bisect.bisect_left(param_paths, key)
        return i < len(param_paths) and param_paths[i].startswith(key)

    def unique(scope, base):
        """base, base_2, base_3, ...: the first not taken in scope (names are never given back, so
        the search goes on from where it stopped last: linear, not quadratic, in the nodes)."""
        taken = used.setdefault(scope, set())
        k = counters.get((scope, base), 1)
        name = base if k == 1 else f"{base}_{k}"
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        counters[(scope, base)] = k
        taken.add(name)
        return f"{scope}.{name}" if scope else name

    for node in g.node:
        if id(node) not in needed:
            continue
        if node.op_type == "Identity" and node.input and node.input[0] in env:
            env[node.output[0]] = env[node.input[0]]
            continue
        res = trans.get(id(node))
        index = order[id(node)]
        scopes = _scope_path(node, label, index)
        where = scopes[-1] if scopes else ""
        if res is None:
            bad.add(f"ONNX {node.op_type}", where)
            continue
        steps, data = res
        if not data:
            raise ImportFailed(f"{_shown(label)}: {node_label(node, index)}: its data input is a constant; archcalc "
                               "imports layers that compute on the network's input")
        if any(x not in env for x in data):
            continue  # downstream of a node already reported
        inputs_ = [env[x] for x in data]
        xs = [ops[i].shape if i >= 0 else tuple(shape[1:]) for i in inputs_]
        y = r.shapes.get(node.output[0])
        y = tuple(y[1:]) if y else None
        weight = node.input[1] if len(node.input) > 1 and node.input[1] in r.inits else None
        last = None
        for k, (cls, kw) in enumerate(steps):
            kw = dict(kw)
            if cls == "BatchNorm2d" and xs[0] is not None and len(xs[0]) == 1:
                cls = "BatchNorm1d"
            result, ltype = None, None
            for t in table.get(cls, ()):
                try:
                    result = t.from_torch(cls, kw, xs, y if k == len(steps) - 1 else None)
                except (KeyError, TypeError, ValueError, IndexError, ArithmeticError):
                    result = None
                if result is not None:
                    ltype = t
                    break
            if result is None or not isinstance(result, dict):
                bad.add(f"ONNX {node.op_type} (as torch {cls})", where)
                last = None
                break
            if weight and "." in weight and len(steps) == 1:
                name = weight.rsplit(".", 1)[0]
                if name in named:  # a weight read twice (shared weights), or a name already given
                    raise ImportFailed(f"{_shown(label)}: {node_label(node, index)}: its weight {short(weight, 60)} names "
                                       f"the layer {short(name, 60)}, already the name of {named[name]}; archcalc "
                                       "imports each weight used once")
                used.setdefault(name.rsplit(".", 1)[0] if "." in name else "", set()).add(name.rsplit(".", 1)[-1])
            elif where and not has_children(where) and len(steps) == 1:
                parent, _, leaf = where.rpartition(".")
                name = unique(parent, leaf)
            else:
                name = unique(where, ltype.name)
            try:
                out_shape = y if k == len(steps) - 1 else _intermediate(ltype, result, xs)
            except (KeyError, TypeError, ValueError, IndexError, ArithmeticError):
                bad.add(f"ONNX {node.op_type} (as torch {cls})", where)
                last = None
                break
            named[name] = node_label(node, index)
            ops.append(Op(name, ltype.name, defaults_dropped(ltype, result), list(inputs_), {}, torch=cls, shape=out_shape,
                          origin=named[name]))
            inputs_ = [len(ops) - 1]
            xs = [out_shape]
            last = len(ops) - 1
        if last is not None:
            env[node.output[0]] = last
    bad.raise_if_any(label)
    outs = [env[o.name] for o in g.output if o.name in env]
    if not outs:
        raise ImportFailed(f"{_shown(label)}: no output of the graph could be followed")
    graph = Graph(ops, tuple(shape[1:]), outs, file=label)
    return simplify(graph)


def _intermediate(ltype, args, xs):
    """The output shape of a layer inside a multi-layer translation (global average: C x 1 x 1)."""
    full = {k.name: k.default for k in ltype.keys}
    full.update(args)
    for k in ltype.keys:
        if k.kind == "pair" and not isinstance(full[k.name], (tuple, list)) and full[k.name] is not None:
            full[k.name] = (full[k.name], full[k.name])
    return tuple(ltype.out(full, xs))


__all__ = ["read", "translate", "load_model", "validate_node", "RULES", "re"]
