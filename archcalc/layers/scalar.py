"""Elementwise layers of timm's newer CNNs: HGNetV2's learnable affine and MetaFormer's StarReLU, each
with a learnable ``scale`` and ``bias`` of shape (1,) as timm's modules hold them (so their
state_dicts load), and the square (MetaFormer's SquaredReLU is relu, then square). A file of their
own; their nn.Modules live in scalar_torch.py."""

from __future__ import annotations

from .base import TENSOR, Count, Counts, Factor, Key, Pointwise, Term, args_of, prod, register

_KEYS = (Key("scale", "float", 1.0, "initial value of the learnable scale"),
         Key("bias", "float", 0.0, "initial value of the learnable bias"))


class _ScalarPair(Pointwise):
    torch_module = "scalar_torch"  # its own nn.Module classes
    keys = _KEYS
    formulas = {"shape": "unchanged", "params": "2 (scale and bias, one number each)", "buffers": "0", "macs": "0 (not a conv or linear)"}
    channels_last = True  # elementwise: the same on a channels-last tensor
    module: str = ""

    def count(self, a, xs, y):
        return 2, 0

    def formula(self, a, xs, y):
        return Counts(Count((Term((Factor("2", 2),)),), "scale and bias, one number each"))

    def torch(self, a, xs, y):
        return [(self.module, {"scale": a["scale"], "bias": a["bias"]})]


@register
class LearnableAffine(_ScalarPair):
    name = "learnable_affine"
    module = "LearnableAffine"
    doc = ("scale * x + bias with one learnable scale and one learnable bias for the whole map (timm HGNetV2's "
           "LearnableAffineBlock: parameters `scale` and `bias` of shape (1,)); a new tensor.")

    def saves(self, a, training):
        return ("input",)  # the scale's gradient needs the input

    def scratch(self, a, xs, y, itemsize, training):
        return 0 if training else prod(y) * itemsize  # scale * x, beside the output while the bias is added

    # archcalc's own module; timm's (by its bare name too: the importer takes only the class the full name names)
    torch_ops = ("LearnableAffine", "LearnableAffineBlock", "timm.models.hgnet.LearnableAffineBlock")

    def from_torch(self, op, kw, xs, y):
        return {}  # the state_dict carries the values; the initial ones are not kept


@register
class StarReLU(_ScalarPair):
    name = "star_relu"
    module = "StarReLU"
    doc = ("StarReLU, scale * relu(x) ** 2 + bias with one learnable scale and bias (MetaFormer's, So et al.'s "
           "squared ReLU with an affine; timm's StarReLU, parameters `scale` and `bias` of shape (1,)); a new tensor.")

    def workspace(self, a, xs, y):
        return 2 * prod(y)  # backward keeps relu(x) (the square's input) and relu(x) ** 2 (the scale's)

    def scratch(self, a, xs, y, itemsize, training):
        # relu(x) and its square are alive together before the output is made (then scale times the
        # square beside the output): one map beyond the input and the output at the peak
        return 0 if training else prod(y) * itemsize

    torch_ops = ("StarReLU", "timm.models.metaformer.StarReLU")  # archcalc's own module (and timm's: the full name)

    def from_torch(self, op, kw, xs, y):
        return None if kw.get("inplace") or kw.get("mode") else {}  # in place, timm's relu overwrites its input


@register
class Square(Pointwise):
    torch_module = "scalar_torch"  # its own nn.Module classes
    name = "square"
    doc = "x ** 2, elementwise (torch.square; timm MetaFormer's SquaredReLU is relu, then square); a new tensor."
    formulas = {"shape": "unchanged", "params": "0", "buffers": "0", "macs": "0 (not a conv or linear)"}
    channels_last = True  # elementwise: the same on a channels-last tensor
    grad_elementwise = True

    def saves(self, a, training):
        return ("input",)  # the gradient is 2 x

    def torch(self, a, xs, y):
        return [("Square", {})]

    torch_ops = ("Square", "square", "pow")

    def from_torch(self, op, kw, xs, y):
        if op != "pow":
            return {}
        args = args_of(kw) or [kw.get("input", kw.get("self")), kw.get("exponent")]
        return {} if len(args) == 2 and args[0] is TENSOR and args[1] == 2 and not isinstance(args[1], bool) else None
