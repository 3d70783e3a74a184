"""Regenerate tests/reference/torchvision.json: the independent reference for zoo specs named
like torchvision models.

For each model it records torchvision's published metadata (``weights.meta["num_params"]`` and
``weights.meta["_ops"]``, GMACs rounded to 3 decimals) and the exact figures measured on the
model itself: ``sum(p.numel())`` over parameters, buffers (running statistics only) and MACs from
``torch.utils.flop_counter.FlopCounterMode`` (which reports 2 FLOPs per MAC) on one image at the
model's eval size, in eval mode (auxiliary heads not run).

Needs torchvision (not a project dependency). On the project machines:
    python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tvenv/bin/python tools/torchvision_reference.py > tests/reference/torchvision.json
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
]
# the configuration torchvision's pretrained weights use
KWARGS = {"googlenet": {"aux_logits": False, "init_weights": False}, "inception_v3": {"aux_logits": True, "init_weights": False}}


def measure(name):
    weights = get_model_weights(name).DEFAULT
    size = 299 if name == "inception_v3" else 224
    model = get_model(name, weights=None, **KWARGS.get(name, {})).eval()
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return {
        "input": [3, size, size],
        "meta_num_params": weights.meta["num_params"],
        "meta_gmacs": weights.meta["_ops"],
        "params": params,
        "buffers": buffers,
        "macs": flops // 2,
    }


def main():
    out = {
        "_about": f"torchvision {torchvision.__version__}, torch {torch.__version__}; tools/torchvision_reference.py",
        "models": {name: measure(name) for name in MODELS},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
