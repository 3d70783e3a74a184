"""Hostile ONNX files (issue 19): every file archcalc reads as ONNX ends in a spec or in one line
naming the file (and the node and op where one is at fault), exit 2, in bounded time and memory.

Every file is built here with onnx's helper API in a temporary folder (no binary fixtures); the
few that are about the protobuf wire itself (millions of empty nodes, a packed field of 16
million varints) repeat the serialized bytes of a message onnx built. Each case runs the CLI's
``main`` in this process through :func:`test_hostile.run`, which measures the time and the added
peak resident set and fails a case that hangs (an alarm).
"""

from __future__ import annotations

import os
import random
import re

import pytest

from test_hostile import MEMORY_LIMIT, TIME_LIMIT, run

onnx = pytest.importorskip("onnx")
np = pytest.importorskip("numpy")
from onnx import AttributeProto, TensorProto  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

from archcalc import limits as LIM  # noqa: E402

COMMANDS = ("summary", "import")


# --------------------------------------------------------------------------- building models


def _init(name, shape, value=None, dtype=np.float32):
    a = np.full(shape, 0.1, dtype) if value is None else np.asarray(value, dtype)
    return nh.from_array(a, name)


def _nodes():
    n = h.make_node
    return [
        n("Conv", ["x", "conv1.weight", "conv1.bias"], ["c"], name="/conv1/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
          strides=[1, 1]),
        n("BatchNormalization", ["c", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"], ["b"],
          name="/bn1/BatchNormalization", epsilon=1e-5),
        n("Relu", ["b"], ["r"], name="/relu/Relu"),
        n("MaxPool", ["r"], ["m"], name="/pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
        n("Clip", ["m", "lo", "hi"], ["cl"], name="/act/Clip"),
        n("GlobalAveragePool", ["cl"], ["gp"], name="/avgpool/GlobalAveragePool"),
        n("Flatten", ["gp"], ["f"], name="/Flatten", axis=1),
        n("Dropout", ["f", "ratio"], ["d"], name="/drop/Dropout"),
        n("Gemm", ["d", "fc.weight", "fc.bias"], ["y"], name="/fc/Gemm", transB=1),
    ]


def _inits():
    return [_init("conv1.weight", (4, 3, 3, 3)), _init("conv1.bias", (4,)), _init("bn1.weight", (4,)),
            _init("bn1.bias", (4,)), _init("bn1.running_mean", (4,)), _init("bn1.running_var", (4,)),
            _init("fc.weight", (10, 4)), _init("fc.bias", (10,)), _init("lo", (), 0.0), _init("hi", (), 6.0),
            _init("ratio", (), 0.25)]


def _model(nodes=None, inits=None, shape=(1, 3, 8, 8), extra=()):
    """The valid base model: conv, BN, ReLU, max pool, clip (ReLU6), global average, flatten,
    dropout, linear (a 3x8x8 input)."""
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = h.make_graph(_nodes() if nodes is None else nodes, "g", [x], [y],
                         initializer=(_inits() if inits is None else inits) + list(extra))
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _save(model, path):
    path.write_bytes(model.SerializeToString())
    return path


def _node(model, op):
    return next(n for n in model.graph.node if n.op_type == op)


def _tensor(model, name):
    return next(t for t in model.graph.initializer if t.name == name)


def _drop_attr(node, name):
    keep = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(keep)


def _set_attr(node, name, value):
    _drop_attr(node, name)
    node.attribute.append(h.make_attribute(name, value))


def _set_inputs(node, names):
    del node.input[:]
    node.input.extend(names)


def _replace_init(model, name, value, dtype=np.float32):
    t = _tensor(model, name)
    t.CopyFrom(nh.from_array(np.asarray(value, dtype), name))


def _varint(x):
    out = bytearray()
    while True:
        b, x = x & 0x7F, x >> 7
        out.append(b | 0x80 if x else b)
        if not x:
            return bytes(out)


def _field(number, payload: bytes) -> bytes:
    """A length-delimited protobuf field (a message or packed numbers) on the wire."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


# --------------------------------------------------------------------------- assertions


def _refused(result, *needles, case=""):
    """exit 2, nothing on stdout, exactly one line on stderr holding each needle, no traceback,
    within the time and memory limits."""
    code, out, err, seconds, peak = result
    assert "Traceback" not in err, err[-2000:]
    assert code == 2, (case, code, out[-300:], err[-500:])
    assert out == "", out[-300:]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("archcalc: error: "), err[:2000]
    for needle in needles:
        assert needle in lines[0], (case, needle, lines[0])
    assert seconds < TIME_LIMIT, f"{case}: {seconds:.1f} s"
    assert peak < MEMORY_LIMIT, f"{case}: {peak / 2**20:.0f} MB"
    return lines[0]


def _accepted(result, *needles):
    code, out, err, seconds, peak = result
    assert "Traceback" not in err, err[-2000:]
    assert code == 0, err[-1000:]
    for needle in needles:
        assert needle in out, (needle, out[-1000:])
    assert seconds < TIME_LIMIT and peak < MEMORY_LIMIT, (seconds, peak / 2**20)


def test_the_base_model_imports(tmp_path):
    """The control every malformed case below departs from."""
    path = _save(_model(), tmp_path / "m.onnx")
    _accepted(run(["import", str(path)], tmp_path), "{conv: {out: 4, kernel: 3, padding: 1}, name: conv1}",
              "{relu6: {}, name: act}", "{dropout: {p: 0.25}, name: drop}", "{linear: {out: 10}, name: fc}")


# --------------------------------------------------------------------------- the file itself


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory", "missing", "too_large", "garbage", "truncated"])
def test_files_that_are_not_onnx_models(kind, command, tmp_path):
    path = tmp_path / "x.onnx"
    expected = {"fifo": "x.onnx is a FIFO, not an ONNX file", "dev_zero": "z.onnx is a device, not an ONNX file",
                "directory": "x.onnx is a directory, not an ONNX file", "missing": "x.onnx: no such file",
                "too_large": f"x.onnx is larger than the limit of {LIM.ONNX_MAX_BYTES:,} bytes for an ONNX file",
                "garbage": "x.onnx: not a readable ONNX file: malformed protobuf at byte",
                "truncated": "x.onnx: not a readable ONNX file: malformed protobuf at byte"}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # opening it to read without O_NONBLOCK would wait for a writer forever
    elif kind == "dev_zero":
        path = tmp_path / "z.onnx"
        path.symlink_to("/dev/zero")  # endless: read whole it took 3.3 GB
    elif kind == "directory":
        path.mkdir()
    elif kind == "too_large":
        with open(path, "wb") as fh:  # sparse: no disk used, and never read
            fh.truncate(LIM.ONNX_MAX_BYTES + 1)
    elif kind == "garbage":
        path.write_bytes(b"\xff" * 64)
    elif kind == "truncated":
        path.write_bytes(_model().SerializeToString()[:-7])
    _refused(run([command, str(path)], tmp_path, timeout=10), expected, case=kind)


def _wire_case(kind):
    """(model bytes, message) of a file whose parse would build far more than its size."""
    if kind == "empty_nodes":  # 5,000,000 empty nodes: 10 MB on disk, ~800 MB parsed
        return _field(7, _field(1, b"") * 5_000_000), f"has more than {LIM.ONNX_MAX_NODES:,} nodes, the limit"
    if kind == "initializers":
        one = _field(5, _init("w", (1,)).SerializeToString())
        return _field(7, one * (LIM.ONNX_MAX_INITIALIZERS + 1)), f"more than {LIM.ONNX_MAX_INITIALIZERS:,} initializers"
    if kind == "varints":  # a packed int64_data of one-byte varints: 8 bytes each parsed
        tensor = _field(7, b"\x01" * (LIM.ONNX_MAX_ELEMENTS + 1))
        return _field(7, _field(5, tensor)), f"more than {LIM.ONNX_MAX_ELEMENTS:,} numbers and strings in repeated fields"
    if kind == "attribute":
        node = h.make_node("Relu", ["x"], ["y"], big=list(range(LIM.ONNX_MAX_ATTR_ELEMENTS + 1)))
        return _model([node]).SerializeToString(), f"more than {LIM.ONNX_MAX_ATTR_ELEMENTS:,} values in one node attribute"
    if kind == "nested_graphs":
        out = h.make_tensor_value_info("o", TensorProto.FLOAT, [1])
        g = h.make_graph([], "g", [], [out])
        for _ in range(LIM.ONNX_MAX_GRAPH_DEPTH):
            g = h.make_graph([h.make_node("If", ["c"], ["o"], then_branch=g, else_branch=g)], "g", [], [out])
        return _model([h.make_node("If", ["c"], ["y"], then_branch=g, else_branch=g)]).SerializeToString(), \
            f"nests graphs (subgraphs of node attributes) more than {LIM.ONNX_MAX_GRAPH_DEPTH} deep"
    if kind == "nested_types":  # a sequence of a sequence of ... (deeper than protobuf itself builds)
        t = h.make_tensor_type_proto(TensorProto.FLOAT, [1]).SerializeToString()
        for _ in range(LIM.ONNX_MAX_PROTO_DEPTH):
            t = _field(4, _field(1, t))  # TypeProto.sequence_type, Sequence.elem_type
        value_info = _field(1, b"deep") + _field(2, t)
        # a second graph field merges into the first: the valid model, one more value_info
        return _model().SerializeToString() + _field(7, _field(13, value_info)), \
            f"nests protobuf messages more than {LIM.ONNX_MAX_PROTO_DEPTH} deep"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["empty_nodes", "initializers", "varints", "attribute", "nested_graphs", "nested_types"])
def test_what_parsing_would_build_is_counted_first(kind, tmp_path):
    data, message = _wire_case(kind)
    path = tmp_path / "x.onnx"
    path.write_bytes(data)
    _refused(run(["summary", str(path)], tmp_path), "x.onnx", message, case=kind)


@pytest.mark.parametrize("limit, data, message", [
    # 1,001 fields the model does not know (field 100, a varint): kept, but each one counted
    ("ONNX_MAX_FIELDS", (_varint(100 << 3) + b"\x00") * 1_001, "more than 1,000 protobuf fields"),
    ("ONNX_MAX_MESSAGES", _field(7, _field(13, b"") * 1_001), "more than 1,000 protobuf messages"),
])
def test_field_and_message_limits(limit, data, message, tmp_path, monkeypatch):
    """At their real values these take seconds to reach in the file (4 million fields): the same
    code at a limit of 1,000."""
    monkeypatch.setattr(LIM, limit, 1_000)
    path = tmp_path / "x.onnx"
    path.write_bytes(data)
    _refused(run(["summary", str(path)], tmp_path), "x.onnx", message, case=limit)


# --------------------------------------------------------------------------- external data


def _external(t, location, offset=None, length=None):
    """Make initializer ``t`` read its data from ``location`` (the bytes are not written here)."""
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            entry = t.external_data.add()
            entry.key, entry.value = key, str(value)


def _with_external(tmp_path, location, length=None, offset=None, name="conv1.weight"):
    m = _model()
    _external(_tensor(m, name), location, offset, length)
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    return _save(m, folder / "m.onnx")


def test_external_data_is_read_within_the_folder(tmp_path):
    """The control: the conv weight (108 floats: checked, never read) and the clip bounds (one
    float each: read, so the clip is still a ReLU6) in an external file."""
    m = _model()
    folder = tmp_path / "model"
    folder.mkdir()
    blob = np.full((4, 3, 3, 3), 0.1, np.float32).tobytes() + np.float32(0).tobytes() + np.float32(6).tobytes()
    (folder / "weights.bin").write_bytes(blob)
    _external(_tensor(m, "conv1.weight"), "weights.bin", 0, 432)
    _external(_tensor(m, "lo"), "weights.bin", 432, 4)
    _external(_tensor(m, "hi"), "weights.bin", 436, 4)
    path = _save(m, folder / "m.onnx")
    _accepted(run(["import", str(path)], tmp_path), "{conv: {out: 4, kernel: 3, padding: 1}, name: conv1}",
              "{relu6: {}, name: act}")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink_out", "dev_zero", "fifo", "directory", "missing",
                                  "sparse_3gib", "length", "beyond_end", "bad_offset"])
def test_external_data_refused(kind, command, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.bin").write_bytes(b"\0" * 432)
    location, length, offset = {"parent": "../outside.bin", "absolute": "/etc/passwd", "symlink_out": "link.bin",
                                "dev_zero": "zero.bin", "fifo": "pipe.bin", "directory": "sub",
                                "missing": "nothing.bin", "sparse_3gib": "big.bin", "length": "w.bin",
                                "beyond_end": "w.bin", "bad_offset": "w.bin"}[kind], None, None
    if kind == "symlink_out":
        (folder / "link.bin").symlink_to(tmp_path / "outside.bin")
    elif kind == "dev_zero":
        (folder / "zero.bin").symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(folder / "pipe.bin")
    elif kind == "directory":
        (folder / "sub").mkdir()
    elif kind == "sparse_3gib":
        with open(folder / "big.bin", "wb") as fh:  # read whole by onnx's loader, it segfaulted
            fh.truncate(3 * 2**30)
    elif kind in ("length", "beyond_end", "bad_offset"):
        (folder / "w.bin").write_bytes(b"\0" * 432)
        length, offset = {"length": (10, None), "beyond_end": (432, 8), "bad_offset": (None, "-8")}[kind]
    path = _with_external(tmp_path, location, length, offset)
    expected = {
        "parent": "external data location '../outside.bin' leads out of the model's folder ('..')",
        "absolute": "external data location '/etc/passwd' is an absolute path",
        "symlink_out": "external data location 'link.bin' leads out of the model's folder through a symbolic link",
        "dev_zero": "external data location 'zero.bin' leads out of the model's folder through a symbolic link",
        "fifo": "external data file 'pipe.bin' is a FIFO, not a regular file",
        "directory": "external data file 'sub' is a directory, not a regular file",
        "missing": "external data file 'nothing.bin': no such file",
        "sparse_3gib": f"external data file 'big.bin' is larger than the limit of {LIM.ONNX_MAX_EXTERNAL_FILE_BYTES:,} bytes",
        "length": "external data length 10 bytes, but its shape and data type make 432 bytes",
        "beyond_end": "external data bytes 8 to 440 lie beyond the end of 'w.bin' (432 bytes)",
        "bad_offset": "external data offset '-8' is not a non-negative integer",
    }[kind]
    _refused(run([command, str(path)], tmp_path, timeout=10), "m.onnx: initializer 'conv1.weight'", expected, case=kind)


def _shared(tmp_path, count, floats):
    """``count`` initializers of ``floats`` floats each, all reading the same external file."""
    folder = tmp_path / "model"
    folder.mkdir()
    with open(folder / "shared.bin", "wb") as fh:
        fh.truncate(floats * 4)
    extra = []
    for k in range(count):
        t = TensorProto(name=f"unused{k}", data_type=TensorProto.FLOAT, dims=[floats])
        _external(t, "shared.bin")
        extra.append(t)
    return _save(_model(extra=extra), folder / "m.onnx")


def test_initializers_sharing_an_external_file_are_checked_not_read(tmp_path):
    """3,000 initializers of 1.1 MB each in one file: 3.3 GB when onnx's loader read each one;
    here each is checked against the file's size and none is read."""
    path = _shared(tmp_path, 3_000, 275_000)
    _accepted(run(["import", str(path)], tmp_path), "{linear: {out: 10}, name: fc}")


def test_external_data_in_total_is_bounded(tmp_path):
    path = _shared(tmp_path, 3_000, 400_000)  # 4.8 GB declared
    _refused(run(["import", str(path)], tmp_path), "m.onnx: external data of more than "
             f"{LIM.ONNX_MAX_EXTERNAL_BYTES:,} bytes in total")


# --------------------------------------------------------------------------- malformed nodes


def _case(mutate):
    m = _model()
    mutate(m)
    return m


NODE_CASES = {
    # name: (mutation, node index and op, message)
    "maxpool_without_kernel_shape": (lambda m: _drop_attr(_node(m, "MaxPool"), "kernel_shape"),
                                     "node #3 '/pool/MaxPool' (MaxPool)", "attribute 'kernel_shape' is missing"),
    "conv_one_input": (lambda m: _set_inputs(_node(m, "Conv"), ["x"]),
                       "node #0 '/conv1/Conv' (Conv)", "input 2 (W) is missing"),
    "gemm_one_input": (lambda m: _set_inputs(_node(m, "Gemm"), ["d"]),
                       "node #8 '/fc/Gemm' (Gemm)", "input 2 (B) is missing"),
    "batchnorm_three_inputs": (lambda m: _set_inputs(_node(m, "BatchNormalization"), ["c", "bn1.weight", "bn1.bias"]),
                               "(BatchNormalization)", "input 4 (input_mean) is missing"),
    "conv_pads_of_three": (lambda m: _set_attr(_node(m, "Conv"), "pads", [1, 1, 1]),
                           "(Conv)", "attribute 'pads' has 3 values, expected two per spatial axis"),
    "maxpool_pads_of_two": (lambda m: _set_attr(_node(m, "MaxPool"), "pads", [1, 1]),
                            "(MaxPool)", "attribute 'pads' has 2 values, expected 4 (kernel_shape has 2 values)"),
    "conv_kernel_of_three_axes": (lambda m: _set_attr(_node(m, "Conv"), "kernel_shape", [3, 3, 3]),
                                  "(Conv)", "attribute 'kernel_shape' has 3 values, expected 2 (its weight has rank 4)"),
    "clip_vector_min": (lambda m: _replace_init(m, "lo", [0.0, 0.0]), "node #4 '/act/Clip' (Clip)",
                        "input 2 (min) has 2 values, expected one number"),
    "clip_nan_max": (lambda m: _replace_init(m, "hi", float("nan")), "(Clip)", "input 3 (max) is nan, expected a finite number"),
    "dropout_vector_ratio": (lambda m: _replace_init(m, "ratio", [0.1, 0.2]), "node #7 '/drop/Dropout' (Dropout)",
                             "input 2 (ratio) has 2 values, expected one number"),
    "dropout_ratio_above_one": (lambda m: _replace_init(m, "ratio", 1.5), "(Dropout)",
                                "input 2 (ratio) is 1.5, expected a finite number in [0.0, 1.0)"),
    "name_scopes_an_int": (lambda m: h.set_metadata_props(_node(m, "Relu"), {"pkg.torch.onnx.name_scopes": "5"}),
                           "node #2 '/relu/Relu' (Relu)", "metadata 'pkg.torch.onnx.name_scopes' is not a list of names"),
    "name_scopes_nested_deep": (lambda m: h.set_metadata_props(_node(m, "Relu"), {"pkg.torch.onnx.name_scopes": "[" * 5000}),
                                "(Relu)", "metadata 'pkg.torch.onnx.name_scopes' is not a list of names"),
    "conv_stride_zero": (lambda m: _set_attr(_node(m, "Conv"), "strides", [0, 1]), "(Conv)",
                         "attribute 'strides' has the value 0, expected from 1 to"),
    "conv_group_zero": (lambda m: _set_attr(_node(m, "Conv"), "group", 0), "(Conv)",
                        "attribute 'group' has the value 0, expected from 1 to"),
    "batchnorm_nan_eps": (lambda m: _set_attr(_node(m, "BatchNormalization"), "epsilon", float("nan")),
                          "(BatchNormalization)", "attribute 'epsilon' is nan, expected a finite number"),
    "conv_kernel_as_floats": (lambda m: _set_attr(_node(m, "Conv"), "kernel_shape", [3.0, 3.0]), "(Conv)",
                              "attribute 'kernel_shape' is floats, expected ints"),
    "flatten_axis_a_string": (lambda m: _set_attr(_node(m, "Flatten"), "axis", "one"), "node #6 '/Flatten' (Flatten)",
                              "attribute 'axis' is a string, expected an int"),
    "gemm_trans_b_two": (lambda m: _set_attr(_node(m, "Gemm"), "transB", 2), "(Gemm)",
                         "attribute 'transB' has the value 2, expected from 0 to 1"),
    "relu_two_inputs": (lambda m: _set_inputs(_node(m, "Relu"), ["b", "b"]), "(Relu)", "has 2 inputs; Relu takes at most 1"),
    "conv_weight_too_large": (lambda m: _tensor(m, "conv1.weight").dims.__setitem__(0, 2**41), "(Conv)",
                              "input 2 (W) has the shape 2199023255552x3x3x3, expected dimensions from 1 to"),
    "constant_two_values": (lambda m: m.graph.node.insert(0, h.make_node("Constant", [], ["k"], value_float=1.0,
                                                                         value_int=2)),
                            "node #0 (Constant)", "expected one output and one value attribute"),
    "mul_by_nan": (lambda m: (_set_inputs(_node(m, "Relu"), ["b", "nan"]), setattr(_node(m, "Relu"), "op_type", "Mul"),
                              m.graph.initializer.append(_init("nan", (), float("nan")))),
                   "node #2 '/relu/Relu' (Mul)", "input 2 (B) is a constant that is not finite"),
    "batchnorm_of_a_constant": (lambda m: _set_inputs(_node(m, "BatchNormalization"),
                                                      ["bn1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"]),
                                "node #1 '/bn1/BatchNormalization' (BatchNormalization)", "its data input is a constant"),
    "weight_read_twice": (lambda m: (m.graph.node.insert(2, h.make_node(
        "BatchNormalization", ["b", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"], ["b2"], name="/again")),
        _set_inputs(_node(m, "Relu"), ["b2"])), "node #2 '/again' (BatchNormalization)",
        "its weight 'bn1.weight' names the layer 'bn1', already the name of node #1 '/bn1/BatchNormalization'"),
    # the emitted spec is loaded before it is used: what only the layer's own rules refuse
    "maxpool_kernel_above_input": (lambda m: _set_attr(_node(m, "MaxPool"), "kernel_shape", [9, 9]),
                                   "node #3 '/pool/MaxPool' (MaxPool)", "the maxpool layer it gives does not load"),
    "declared_shape_differs": (lambda m: m.graph.value_info.append(h.make_tensor_value_info("m", TensorProto.FLOAT, [1, 4, 3, 3])),
                               "node #3 '/pool/MaxPool' (MaxPool)",
                               "the model gives an output of 4x3x3, but archcalc's maxpool layer computes 4x4x4"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(NODE_CASES))
def test_malformed_nodes(case, command, tmp_path):
    mutate, node, message = NODE_CASES[case]
    path = _save(_case(mutate), tmp_path / "f.onnx")
    _refused(run([command, str(path)], tmp_path), "f.onnx: ", node, message, case=case)


@pytest.mark.parametrize("case, message", [
    ("input_of_zero_channels", "input shape 1x0x8x8 is not N x C x H x W (or N x F) with fixed, positive C, H and W"),
    ("negative_dimension", "f.onnx: initializer 'conv1.weight': has a negative dimension -4"),
])
def test_malformed_shapes(case, message, tmp_path):
    m = _model(shape=(1, 0, 8, 8)) if case == "input_of_zero_channels" else _model()
    if case == "negative_dimension":
        _tensor(m, "conv1.weight").dims[0] = -4
    path = _save(m, tmp_path / "f.onnx")
    _refused(run(["import", str(path)], tmp_path), message, case=case)


def test_import_writes_nothing_when_the_spec_would_not_load(tmp_path):
    path = _save(_case(NODE_CASES["maxpool_kernel_above_input"][0]), tmp_path / "f.onnx")
    _refused(run(["import", str(path), "-o", str(tmp_path / "out.yaml")], tmp_path), "(MaxPool)")
    assert not (tmp_path / "out.yaml").exists()


# --------------------------------------------------------------------------- fuzz: valid models, mutated


def _rich():
    """A second valid model with the other ops archcalc translates (depthwise conv, add, scale,
    average pool, transposed conv, resize, concat, reduce-mean, softmax)."""
    n = h.make_node
    nodes = [
        n("Conv", ["x", "stem.weight"], ["s"], name="/stem/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        n("BatchNormalization", ["s", "bn.weight", "bn.bias", "bn.mean", "bn.var"], ["b"], name="/bn/BN", epsilon=1e-5),
        n("LeakyRelu", ["b"], ["lr"], name="/act/LeakyRelu", alpha=0.1),
        n("Conv", ["lr", "dw.weight", "dw.bias"], ["dw"], name="/dw/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        n("HardSwish", ["dw"], ["hs"], name="/hs/HardSwish"),
        n("Add", ["hs", "lr"], ["a"], name="/add/Add"),
        n("Mul", ["a", "half"], ["m"], name="/scale/Mul"),
        n("AveragePool", ["m"], ["ap"], name="/ap/AveragePool", kernel_shape=[2, 2], strides=[2, 2], count_include_pad=0),
        n("ConvTranspose", ["ap", "up.weight"], ["ct"], name="/up/ConvTranspose", kernel_shape=[2, 2], strides=[2, 2]),
        n("Resize", ["ct", "", "scales"], ["rs"], name="/rs/Resize", mode="nearest"),
        n("Resize", ["m", "", "scales"], ["rs2"], name="/rs2/Resize", mode="nearest"),
        n("Concat", ["rs", "rs2"], ["cc"], name="/cat/Concat", axis=1),
        n("Sigmoid", ["cc"], ["sg"], name="/sg/Sigmoid"),
        n("ReduceMean", ["sg", "axes"], ["rm"], name="/pool/ReduceMean", keepdims=0),
        n("Gemm", ["rm", "fc.weight", "fc.bias"], ["g"], name="/fc/Gemm", transB=1),
        n("Softmax", ["g"], ["y"], name="/sm/Softmax", axis=1),
    ]
    inits = [_init("stem.weight", (8, 3, 3, 3)), _init("bn.weight", (8,)), _init("bn.bias", (8,)), _init("bn.mean", (8,)),
             _init("bn.var", (8,)), _init("dw.weight", (8, 1, 3, 3)), _init("dw.bias", (8,)), _init("half", (), 0.5),
             _init("up.weight", (8, 4, 2, 2)), _init("scales", (4,), [1, 1, 2, 2]), _init("axes", (2,), [2, 3], np.int64),
             _init("fc.weight", (10, 12)), _init("fc.bias", (10,))]
    return _model(nodes, inits, shape=(1, 3, 16, 16))


INTS = [0, -1, 1, 2, 3, 2**40, 2**62, -(2**62)]
FLOATS = [float("nan"), float("inf"), -1.0, 0.0, 1e30, 2.5]
STRINGS = [b"", b"\xff", b"tanh", b"linear", b"SAME_UPPER", b"x" * 100]
TYPES = [AttributeProto.INT, AttributeProto.FLOAT, AttributeProto.INTS, AttributeProto.FLOATS, AttributeProto.STRING,
         AttributeProto.TENSOR, AttributeProto.UNDEFINED]
OPS = ["Conv", "Gemm", "MaxPool", "BatchNormalization", "Clip", "Dropout", "Concat", "Resize", "ReduceMean", "Mul",
       "ConvTranspose", "Softmax", "Constant", "Flatten"]


def _mutate(m, rng):
    """One random change: drop an input or an attribute, retype or revalue an attribute, change
    an initializer's rank or data, the input's size, a node's op, add an input or scope metadata,
    put a constant where an input was."""
    g = m.graph
    node = g.node[rng.randrange(len(g.node))]
    kind = rng.randrange(10)
    if kind == 0 and node.input:
        del node.input[rng.randrange(len(node.input))]
    elif kind == 1 and node.attribute:
        del node.attribute[rng.randrange(len(node.attribute))]
    elif kind == 2 and node.attribute:
        node.attribute[rng.randrange(len(node.attribute))].type = rng.choice(TYPES)
    elif kind == 3 and node.attribute:
        a = node.attribute[rng.randrange(len(node.attribute))]
        if a.type == AttributeProto.INTS:
            k = rng.randrange(3)
            if k == 0 and a.ints:
                del a.ints[rng.randrange(len(a.ints))]
            elif k == 1:
                a.ints.append(rng.choice(INTS))
            elif a.ints:
                a.ints[rng.randrange(len(a.ints))] = rng.choice(INTS)
        elif a.type == AttributeProto.INT:
            a.i = rng.choice(INTS)
        elif a.type == AttributeProto.FLOAT:
            a.f = rng.choice(FLOATS)
        elif a.type == AttributeProto.STRING:
            a.s = rng.choice(STRINGS)
    elif kind == 4 and g.initializer:
        t = g.initializer[rng.randrange(len(g.initializer))]
        k = rng.randrange(4)
        if k == 0 and t.dims:
            del t.dims[rng.randrange(len(t.dims))]
        elif k == 1:
            t.dims.append(rng.choice([0, 1, 2]))
        elif k == 2 and t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, 7, 2**31])
        else:
            t.raw_data = t.raw_data[: len(t.raw_data) // 2]
    elif kind == 5:
        # input sizes stay small: an input of 2**40 is the engine's receptive-field budget (tests/security/test_hostile.py)
        dims = g.input[0].type.tensor_type.shape.dim
        dims[rng.randrange(len(dims))].dim_value = rng.choice([0, 1, 2, 3, 5000, -2])
    elif kind == 6:
        node.op_type = rng.choice(OPS)
    elif kind == 7:
        node.input.append(rng.choice(["half", "scales", "axes", "lo", "x", "", "nope"]))
    elif kind == 8:
        h.set_metadata_props(node, {"pkg.torch.onnx.name_scopes": rng.choice(["5", "['a', 1]", "[", "['', 'a.b', 'c']"])})
    elif kind == 9 and node.input and g.initializer:  # a constant where data was, or another weight
        node.input[rng.randrange(len(node.input))] = g.initializer[rng.randrange(len(g.initializer))].name


def test_fuzz_mutated_models(tmp_path):
    """Seeded: 300 valid models changed once or twice each; every one imports or is refused in one
    line naming the file, never a traceback."""
    rng = random.Random(19)
    bases = [_model().SerializeToString(), _rich().SerializeToString()]
    path = tmp_path / "f.onnx"
    codes = []
    for k in range(300):
        m = onnx.ModelProto.FromString(rng.choice(bases))
        for _ in range(1 + rng.randrange(2)):
            _mutate(m, rng)
        _save(m, path)
        code, out, err, seconds, peak = run(["import", str(path)], tmp_path)
        assert "Traceback" not in err, (k, err[-2000:])
        assert code in (0, 2), (k, code, err[-500:])
        if code == 2:
            lines = err.splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"archcalc: error: {path}"), (k, err[:1000])
            assert out == ""
        assert seconds < TIME_LIMIT and peak < MEMORY_LIMIT, (k, seconds, peak / 2**20)
        codes.append(code)
        if code == 2:
            assert re.search(r"node #\d+|initializer|input shape|ONNX|constructs?", err), err
    assert codes.count(2) > 100 and codes.count(0) > 15, codes  # the mutations do break models, not all of them
