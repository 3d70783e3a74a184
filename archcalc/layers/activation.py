"""Activations and other pointwise layers: relu & co, softmax, constant scale, dropout, stochastic
depth, identity. Adding an activation is one ``_activation(...)`` line (plus its test case)."""

from __future__ import annotations

from typing import ClassVar

from .base import REQUIRED, Key, Pointwise, args_of, register


class _Activation(Pointwise):
    torch_name: ClassVar[str] = ""
    saved: ClassVar[str] = "output"
    extra: ClassVar[dict] = {}
    formulas = {"shape": "unchanged", "params": "0", "macs": "0"}
    channels_last = True  # elementwise: the same on a channels-last tensor
    grad_elementwise = True  # its backward broadcasts an expanded gradient, copies nothing

    def saves(self, a, training):
        if self.saved == "input" and a.get("inplace"):
            return ("input_copy",)  # backward needs the input the op overwrites: autograd keeps a copy
        return (self.saved,)

    def torch(self, a, xs, y):
        kw = {k: a[k] for k in self.extra}
        if self.can_inplace:
            kw["inplace"] = a["inplace"]
        return [(self.torch_name, kw)]

    def from_torch(self, op, kw, xs, y):
        if kw.get("approximate", "none") != "none":
            return None  # GELU's tanh approximation is another function
        out = {k: kw[k] for k in self.extra}
        if self.can_inplace:
            out["inplace"] = bool(kw.get("inplace", op.endswith("_")))
        return out


def _activation(name, torch_name, doc, saved="output", can_inplace=True, extra=()):
    """Declare an activation: its YAML name, the torch.nn class, what its backward keeps
    ('output' or 'input'), whether it can run in place (an `inplace` key, default true)."""
    keys = tuple(extra) + ((Key("inplace", "bool", True, "overwrite the input (no new tensor)"),) if can_inplace else ())
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
            "torch_ops": (torch_name, name, name + "_"),  # the module, F.name / torch.name / x.name(), x.name_()
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
_activation("gelu", "GELU", "Gaussian error linear unit; a new tensor.", saved="input", can_inplace=False)


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
