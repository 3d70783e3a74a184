"""The same numbers through ONNX: timm models exported with the TorchScript exporter (BatchNorm kept:
training=PRESERVE; constants folded, so slices' bounds are constants), imported from the .onnx file,
and archcalc's params, buffers and MACs compared with timm's own (FlopCounterMode / 2). Not a test.

    python benchmarks/import_onnx_sample.py [MODEL ...]   (default: the six of docs/import.md)
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(names):
    import timm
    import torch

    from archcalc.analysis.engine import analyze
    from archcalc.importer import import_target
    from archcalc.importer.roundtrip import counts
    from archcalc.spec.load import loads

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            m = timm.create_model(n, pretrained=False).eval()
            shape = (3, 224, 224)
            ref = counts(m, shape)
            path = f"{tmp}/{n}.onnx"
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                torch.onnx.export(m, (torch.randn(1, *shape),), path, dynamo=False,
                                  training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
            try:
                text, _, _ = import_target(path)
            except Exception as err:  # noqa: BLE001 - a row
                print(f"{n}: {str(err).splitlines()[0][:200]}")
                continue
            r = analyze(loads(text)).totals
            mine = {k: r[k] for k in ("params", "buffers", "macs")}
            print(f"{n}: timm {ref}, archcalc from ONNX {mine}: {'same' if mine == ref else 'DIFFERENT'}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["resnet18", "efficientnet_b0", "mobilenetv3_small_050", "regnetx_002", "ghostnet_050", "rexnet_100"])
