"""Regenerate tests/reference/torchvision.json: the independent reference for zoo specs named
like torchvision models.

For each model it records torchvision's published metadata (``weights.meta["num_params"]`` and
``weights.meta["_ops"]``, GMACs rounded to 3 decimals) and the exact figures measured on the
model itself: ``sum(p.numel())`` over parameters, buffers (running statistics only) and MACs from
``torch.utils.flop_counter.FlopCounterMode`` (which reports 2 FLOPs per MAC) on one image at the
model's eval size, in eval mode (auxiliary heads not run).

Classifiers are measured at the crop size of their default weights' transforms (224, 299 for
inception_v3, 240..600 for efficientnet_b1..b7, 384/480 for efficientnet_v2_s/m/l).
Segmentation models are measured at 520x520 (the size their weights are evaluated at) with their
default heads: no auxiliary classifier (``aux_loss`` unset, as ``weights=None`` leaves it) and
21 classes. Their published ``num_params`` counts the auxiliary classifier the pretrained
weights carry, so for them the tool also records ``params_with_aux``, measured on the same
model built with ``aux_loss=True`` (equal to ``meta_num_params``); their ``_ops`` is recorded
as published.

Needs torchvision (not a project dependency). On the project machines:
    python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tvenv/bin/python tools/torchvision_reference.py > tests/reference/torchvision.json
No weights are downloaded: every model is built with ``weights=None`` (and
``weights_backbone=None``); the metadata is read from the weights enums in the package source.
"""

import json
import sys

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import get_model, get_model_weights

MODELS = [
    "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "googlenet", "inception_v3", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "wide_resnet50_2", "wide_resnet101_2", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
    "densenet121", "densenet161", "densenet169", "densenet201", "squeezenet1_0", "mobilenet_v2",
    # issue 8: the rest of the CNN classifiers
    "squeezenet1_1",
    "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
    "mobilenet_v3_small", "mobilenet_v3_large",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
    "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l",
    "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf",
    "regnet_x_16gf", "regnet_x_32gf",
    "regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf",
    "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf",
    "convnext_tiny", "convnext_small", "convnext_base", "convnext_large",
]  # fmt: skip
SEGMENTATION = [
    "fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
    "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large",
]  # fmt: skip
WITH_AUX = {"fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large"}
# the configuration torchvision's pretrained weights use
KWARGS = {"googlenet": {"aux_logits": False, "init_weights": False}, "inception_v3": {"aux_logits": True, "init_weights": False}}


def count(model, size):
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return params, buffers, flops // 2


def measure(name):
    weights = get_model_weights(name).DEFAULT
    segmentation = name in SEGMENTATION
    if segmentation:
        size = 520
        model = get_model(name, weights=None, weights_backbone=None).eval()
    else:
        size = weights.transforms().crop_size[0]
        model = get_model(name, weights=None, **KWARGS.get(name, {})).eval()
    params, buffers, macs = count(model, size)
    out = {
        "input": [3, size, size],
        "meta_num_params": weights.meta["num_params"],
        "meta_gmacs": weights.meta["_ops"],
        "params": params,
        "buffers": buffers,
        "macs": macs,
    }
    if name in WITH_AUX:
        aux = get_model(name, weights=None, weights_backbone=None, aux_loss=True)
        out["params_with_aux"] = sum(p.numel() for p in aux.parameters())
    return out


def main():
    out = {
        "_about": f"torchvision {torchvision.__version__}, torch {torch.__version__}; tools/torchvision_reference.py",
        "models": {name: measure(name) for name in MODELS + SEGMENTATION},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
