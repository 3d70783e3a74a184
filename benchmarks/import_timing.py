"""How long `archcalc import ... --check` takes on a timm model of resnet50's size (issue 22: under
15 s here). Not a test. Run: python benchmarks/import_timing.py [MODEL ...] (default: resnet50
and efficientnet_b3, timm 1.0.31, random weights).

Prints, per model, the wall and CPU seconds of: building the model, the trace and the spec
(import_target), and the round trip (check: build, state_dict, counts, outputs at a valid size).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(names):
    import timm
    import torch

    from archcalc.importer import import_target
    from archcalc.importer.roundtrip import check

    for name in names:
        t = [(time.perf_counter(), time.process_time())]
        model = timm.create_model(name, pretrained=False)
        shape = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))
        t.append((time.perf_counter(), time.process_time()))
        text, g, _ = import_target("timm:create_model", {"model_name": name}, shape, model=model)
        t.append((time.perf_counter(), time.process_time()))
        r = check(text, model, shape)
        t.append((time.perf_counter(), time.process_time()))
        steps = ("create_model", "import", "check")
        parts = ", ".join(f"{s} {t[k + 1][0] - t[k][0]:.1f} s wall / {t[k + 1][1] - t[k][1]:.1f} s CPU" for k, s in enumerate(steps))
        total = t[-1][0] - t[1][0]
        print(f"{name} ({sum(p.numel() for p in model.parameters()):,} params, torch threads {torch.get_num_threads()}): "
              f"{parts}; import + check {total:.1f} s; check {'ok' if r['ok'] else 'MISMATCH'}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["resnet50", "efficientnet_b3"])
