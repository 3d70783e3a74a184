"""Activations and other pointwise layers: relu & co, softmax, constant scale, dropout, stochastic
depth, identity. Adding an activation is one ``_activation(...)`` line (plus its test case)."""

from __future__ import annotations

from typing import ClassVar

from .base import REQUIRED, Count, Counts, Factor, Key, Pointwise, Term, args_of, prod, register


class _Activation(Pointwise):
    torch_name: ClassVar[str] = ""
    saved: ClassVar[str] = "output"
    extra: ClassVar[dict] = {}
    temps: ClassVar[int] = 0  # output-sized temporaries backward keeps (composite ops: softsign's 1 + |x|)
    composite: ClassVar[bool] = False  # one output-sized temporary at inference (composite ops, logsigmoid's buffer, rrelu's noise)
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}
    channels_last = True  # elementwise: the same on a channels-last tensor
    grad_elementwise = True  # its backward broadcasts an expanded gradient, copies nothing

    def saves(self, a, training):
        if self.saved == "none":
            return ()
        if self.saved == "input_or_output":  # ELU's kin: in place, backward reads the output it wrote
            return ("output",) if a.get("inplace") else ("input",)
        if self.saved == "input" and a.get("inplace"):
            return ("input_copy",)  # backward needs the input the op overwrites: autograd keeps a copy
        return (self.saved,)

    def workspace(self, a, xs, y):
        return prod(y) * self.temps if self.temps else 0

    def scratch(self, a, xs, y, itemsize, training):
        # a composite op (softsign, tanhshrink) holds one output-sized temporary beside its output
        return prod(y) * itemsize if self.composite and not training else 0

    def torch(self, a, xs, y):
        kw = {k: a[k] for k in self.extra}
        if self.can_inplace:
            kw["inplace"] = a["inplace"]
        return [(self.torch_name, kw)]

    def from_torch(self, op, kw, xs, y):
        if kw.get("approximate", "none") != "none" and "approximate" not in self.extra:
            return None  # GELU's tanh approximation is another function
        out = {k: kw[k] if k in kw or key.required else key.default for k, key in self.extra.items()}
        if self.can_inplace:
            out["inplace"] = bool(kw.get("inplace", op.endswith("_")))
        return out


def _activation(name, torch_name, doc, saved="output", can_inplace=True, extra=(), inplace=True, temps=0, ops=(), composite=False):
    """Declare an activation: its YAML name, the torch.nn class, what its backward keeps
    ('output', 'input', 'input_or_output': the input out of place, the output in place; 'none'),
    whether it can run in place (an `inplace` key, default ``inplace``), the output-sized
    temporaries its backward keeps besides (``temps``), more torch names it stands for (``ops``)."""
    keys = tuple(extra) + ((Key("inplace", "bool", inplace, "overwrite the input (no new tensor)"),) if can_inplace else ())
    cls = type(
        name.title().replace("_", ""),
        (_Activation,),
        {
            "name": name,
            "doc": doc,
            "torch_name": torch_name,
            "keys": keys,
            "saved": saved,
            "can_inplace": can_inplace,
            "extra": {k.name: k for k in extra},
            "temps": temps,
            "composite": composite,
            "torch_ops": (torch_name, name, name + "_") + tuple(ops),  # the module, F.name / torch.name / x.name(), x.name_()
        },
    )
    return register(cls)


_activation("relu", "ReLU", "max(0, x), in place by default as in torchvision.")
_activation("relu6", "ReLU6", "min(max(0, x), 6) (MobileNet), in place by default.", saved="input")
_activation(
    "leaky_relu", "LeakyReLU", "Leaky ReLU.", extra=(Key("negative_slope", "float", 0.01, "slope for x < 0"),)
)
_activation("elu", "ELU", "Exponential linear unit.", extra=(Key("alpha", "float", 1.0, "alpha"),))
_activation("silu", "SiLU", "x * sigmoid(x) (swish).", saved="input")
_activation("hardswish", "Hardswish", "Hard swish (MobileNetV3).", saved="input")
_activation("hardsigmoid", "Hardsigmoid", "Hard sigmoid, relu6(x + 3) / 6 (MobileNetV3's squeeze-excitation gate).", saved="input")
_activation("sigmoid", "Sigmoid", "Logistic sigmoid; a new tensor.", can_inplace=False)
_activation("tanh", "Tanh", "Hyperbolic tangent; a new tensor.", can_inplace=False)
_activation("gelu", "GELU", "Gaussian error linear unit; a new tensor. `approximate: tanh` is torch's tanh approximation "
            "(timm's GELUTanh).", saved="input", can_inplace=False,
            extra=(Key("approximate", "choice", "none", "none: the exact erf form; tanh: the tanh approximation",
                       choices=("none", "tanh")),))
# --- issue 23: the rest of torch's elementwise activations (torch.nn's defaults: not in place)
_activation("mish", "Mish", "x * tanh(softplus(x)) (torch.nn.Mish).", saved="input", inplace=False)
_activation("softplus", "Softplus", "log(1 + exp(beta x)) / beta, linear above `threshold` (torch.nn.Softplus); a new tensor.",
            saved="input", can_inplace=False,
            extra=(Key("beta", "float", 1.0, "beta"), Key("threshold", "float", 20.0, "linear where beta x exceeds it")))
_activation("selu", "SELU", "Scaled exponential linear unit (torch.nn.SELU).", saved="input_or_output", inplace=False)
_activation("celu", "CELU", "Continuously differentiable ELU (torch.nn.CELU).", saved="input_or_output", inplace=False,
            extra=(Key("alpha", "float", 1.0, "alpha", lo=0, lo_open=True),))
_activation("softsign", "Softsign", "x / (1 + |x|) (torch.nn.Softsign, composed of elementwise ops: backward keeps "
            "the input and 1 + |x|); a new tensor.", saved="input", can_inplace=False, temps=1, composite=True)
_activation("tanhshrink", "Tanhshrink", "x - tanh(x) (torch.nn.Tanhshrink: backward keeps tanh(x), an output-sized "
            "temporary); a new tensor.", saved="none", can_inplace=False, temps=1, composite=True)
_activation("hardtanh", "Hardtanh", "Clamp to [min_val, max_val] (torch.nn.Hardtanh).", saved="input", inplace=False,
            extra=(Key("min_val", "float", -1.0, "lower bound"), Key("max_val", "float", 1.0, "upper bound")))
_activation("logsigmoid", "LogSigmoid", "log(sigmoid(x)) (torch.nn.LogSigmoid; on the CPU backward also keeps an "
            "output-sized buffer, counted here; on CUDA that buffer is empty); a new tensor.",
            saved="input", can_inplace=False, temps=1, ops=("log_sigmoid",), composite=True)
_activation("threshold", "Threshold", "x where x > threshold, else value (torch.nn.Threshold).", saved="input", inplace=False,
            extra=(Key("threshold", "float", REQUIRED, "the threshold"), Key("value", "float", REQUIRED, "the value below it")))
_activation("hardshrink", "Hardshrink", "x where |x| > lambd, else 0 (torch.nn.Hardshrink); a new tensor.", saved="input",
            can_inplace=False, extra=(Key("lambd", "float", 0.5, "lambda", lo=0),))
_activation("softshrink", "Softshrink", "x - lambd, x + lambd or 0 (torch.nn.Softshrink); a new tensor.", saved="input",
            can_inplace=False, extra=(Key("lambd", "float", 0.5, "lambda", lo=0),))
_activation("rrelu", "RReLU", "Randomised leaky ReLU (torch.nn.RReLU): at inference a leaky ReLU of slope (lower + upper) / 2; "
            "in training a random slope per element, kept for backward (one output-sized tensor, allocated at "
            "inference too).", saved="input_or_output", inplace=False, temps=1, composite=True,
            extra=(Key("lower", "float", 0.125, "lowest slope"), Key("upper", "float", 1 / 3, "highest slope")))


@register
class Softmax(Pointwise):
    name = "softmax"
    doc = "Softmax over channels (or features of a flat vector)."
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}

    def saves(self, a, training):
        return ("output",)

    def torch(self, a, xs, y):
        return [("Softmax", {"dim": 1})]

    torch_ops = ("Softmax", "softmax")

    def from_torch(self, op, kw, xs, y):
        return {} if kw.get("dim") in (1, -len(xs[0])) and kw.get("dtype") is None else None


@register
class Scale(Pointwise):
    torch_module = "activation_torch"  # its own nn.Module classes
    name = "scale"
    doc = "Multiplies by a constant, no parameters (Inception-ResNet's residual scaling)."
    keys = (Key("factor", "float", REQUIRED, "the constant"),)
    formulas = {"shape": "unchanged", "params": "0", "macs": "0 (not a conv or linear)"}

    def details(self, a, xs, y):
        return f"x{float(a['factor']):g}"

    def torch(self, a, xs, y):
        return [("Scale", {"factor": a["factor"]})]

    torch_ops = ("mul", "imul", "mul_", "Scale")
    channels_last = True

    def from_torch(self, op, kw, xs, y):
        if op == "Scale":
            return {"factor": kw["factor"]}
        args = args_of(kw) or [kw.get("input"), kw.get("other")]
        consts = [v for v in args if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return {"factor": float(consts[0])} if len(args) == 2 and len(consts) == 1 else None


@register
class Dropout(Pointwise):
    name = "dropout"
    doc = "Dropout: an identity at inference; in training a new tensor and a one-byte mask per element."
    keys = (Key("p", "float", 0.5, "drop probability", lo=0, hi=1),)
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}

    def details(self, a, xs, y):
        return f"p={float(a['p']):g}"

    def new_tensor(self, a, xs, y, training):
        return training

    def saves(self, a, training):
        return ("mask",) if training else ()

    def torch(self, a, xs, y):
        return [("Dropout", {"p": a["p"]})]

    torch_ops = ("Dropout", "dropout")
    channels_last = True

    def from_torch(self, op, kw, xs, y):
        return {"p": kw["p"]}


@register
class StochasticDepth(Pointwise):
    torch_module = "activation_torch"  # its own nn.Module classes
    name = "stochastic_depth"
    doc = (
        "Stochastic depth (torchvision.ops.StochasticDepth): an identity at inference, counting "
        "nothing; in training it zeroes a whole residual branch per image (mode row) or per batch "
        "(mode batch) and rescales by 1 / (1 - p): a new tensor, and backward keeps the random factor "
        "(one value per image in row mode; one per batch in batch mode, not counted per image)."
    )
    keys = (
        Key("p", "float", REQUIRED, "probability of dropping the branch", lo=0, hi=1),
        Key("mode", "choice", "row", "row: per image; batch: one draw for the whole batch", choices=("row", "batch")),
    )
    formulas = {"shape": "unchanged", "params": "0", "macs": "0", "values": "0 at inference"}

    def new_tensor(self, a, xs, y, training):
        return bool(training and a["p"])

    def workspace(self, a, xs, y):
        return 1 if a["p"] and a["mode"] == "row" else 0

    def torch(self, a, xs, y):
        return [("StochasticDepth", {"p": a["p"], "mode": a["mode"]})]

    torch_ops = ("StochasticDepth", "stochastic_depth")
    channels_last = True

    def from_torch(self, op, kw, xs, y):
        return {"p": kw["p"], "mode": kw["mode"]} if kw["mode"] in ("row", "batch") else None


@register
class Identity(Pointwise):
    name = "identity"
    doc = "Passes its input on unchanged (no new tensor)."
    view = True
    is_identity = True  # `identity` also names an empty branch (add: [identity, [...]])
    grad_alias = True  # no autograd node: the gradient passes through
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}
    torch_ops = ("Identity", "contiguous")
    channels_last = True

    def from_torch(self, op, kw, xs, y):
        return {}


@register
class PReLU(Pointwise):
    name = "prelu"
    doc = (
        "Parametric ReLU (torch.nn.PReLU): max(0, x) + a * min(0, x) with a learnable slope `a`, one "
        "shared (nn.PReLU(), the default) or one per channel (nn.PReLU(C)); a new tensor."
    )
    keys = (
        Key("per_channel", "bool", False, "one slope per channel (nn.PReLU(C)); false: one shared slope"),
        Key("init", "float", 0.25, "initial slope"),
    )
    formulas = {"shape": "unchanged", "params": "C (per_channel) or 1", "buffers": "0", "macs": "0"}

    def _n(self, a, xs):
        return xs[0][0] if a["per_channel"] else 1

    def count(self, a, xs, y):
        return self._n(a, xs), 0

    def formula(self, a, xs, y):
        if a["per_channel"]:
            return Counts(Count((Term((Factor("C", xs[0][0]),)),), "one slope per channel"))
        return Counts(Count((Term((Factor("1", 1),)),), "one shared slope"))

    def details(self, a, xs, y):
        return "per channel" if a.get("per_channel") else ""

    def saves(self, a, training):
        return ("input",)

    def torch(self, a, xs, y):
        return [("PReLU", {"num_parameters": self._n(a, xs), "init": a["init"]})]

    torch_ops = ("PReLU",)

    def from_torch(self, op, kw, xs, y):
        n = kw.get("num_parameters", 1)
        if n not in (1, xs[0][0]):
            return None
        out = {"per_channel": n != 1 or xs[0][0] == 1}
        if isinstance(kw.get("init"), float):
            out["init"] = kw["init"]
        return out


@register
class RadixSoftmax(Pointwise):
    torch_module = "activation_torch"  # its own nn.Module classes
    name = "radix_softmax"
    doc = (
        "A softmax across k parallel branches (timm's RadixSoftmax: split attention in ResNeSt, selective "
        "kernels in SKNet, any radix): the C channels (of a C x 1 x 1 gate, a flat vector or a map) are "
        "`groups` x `radix` x C/(groups*radix), laid out as torch views them; at each position the "
        "softmax runs over the radix. With radix 1 it is a sigmoid, as timm's. The output keeps the "
        "input's shape, its channels radix-major as timm's reshape leaves them: branch r's weights are "
        "channels r*C/radix .. (r+1)*C/radix - 1 (take them with `channels`)."
    )
    keys = (
        Key("radix", "size", REQUIRED, "the branches the softmax runs across"),
        Key("groups", "size", 1, "cardinality: independent groups of branches (ResNeSt's cardinality)"),
    )
    formulas = {"shape": "unchanged (C divisible by radix * groups)", "params": "0", "macs": "0"}

    def out(self, a, xs):
        from .base import ShapeError, concrete

        x = xs[0]
        k = a["radix"] * a["groups"]
        if concrete(x[0], k) and x[0] % k:
            raise ShapeError(f"radix_softmax: {x[0]} channels are not divisible by radix {a['radix']} x groups {a['groups']}",
                             hint="the gate has radix * groups * C/(radix*groups) channels")
        return x

    def details(self, a, xs, y):
        return f"radix {a['radix']}" + (f" g={a['groups']}" if a.get("groups", 1) != 1 else "")

    def channel_reads(self, a, xs, y, lo, hi):
        # timm's view (groups, radix, C') transposed to (radix, groups, C'): output block r*groups + g
        # of C' channels is input block g*radix + r (the softmax across the radix is a statistic:
        # not counted, as a norm's)
        k, g = a["radix"], a["groups"]
        if k == 1:
            return [(0, lo, hi, None)]
        part = xs[0][0] // (k * g)
        reads = []
        for block in range(lo // part, (hi - 1) // part + 1):
            r, gi = divmod(block, g)
            first, stop = max(lo, block * part), min(hi, (block + 1) * part)
            src = (gi * k + r) * part
            reads.append((0, src + first - block * part, src + stop - block * part, None))
        return reads

    def saves(self, a, training):
        return ("output",)

    def torch(self, a, xs, y):
        return [("RadixSoftmax", {"radix": a["radix"], "cardinality": a["groups"]})]

    torch_ops = ("RadixSoftmax", "timm.layers.split_attn.RadixSoftmax")

    def from_torch(self, op, kw, xs, y):
        keys = {"radix": kw["radix"], "groups": kw["cardinality"]}
        if len(y) == len(xs[0]):
            return keys
        if len(y) == 1 and len(xs[0]) == 3 and y[0] == prod(xs[0]):
            # timm's module returns the gate flat (x.reshape(batch, -1)): the softmax, then a flatten
            return [("radix_softmax", keys), ("flatten", {})]
        return None
