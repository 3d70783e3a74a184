"""verify's and export's memory checks (archcalc/torchside/preflight.py): estimates from the
engine's totals, made before torch is imported."""

import subprocess
import sys
from types import SimpleNamespace

from archcalc.torchside.preflight import estimate_verify
from conftest import ROOT


def _report(params, buffers, activations, saved):
    return SimpleNamespace(totals={"params": params, "buffers": buffers, "activations": activations,
                                   "train_saved_bytes": saved})


def test_estimate_verify_by_hand():
    r = _report(10, 2, 100, 1000)
    # forward, batch 3: (10 + 2) weights x 4 bytes + 100 values x 3 images x 4 bytes = 48 + 1,200
    assert estimate_verify(None, r, "cpu", 3, False) == (1248, "verify --device cpu")
    # --memory, batch 3: 12 x 4 x 2 (weights and gradients) + (100 x 4 + 1,000) x 3 = 96 + 4,200
    assert estimate_verify(None, r, "cpu", 3, True) == (4296, "verify --memory on cpu")
    # the --memory run takes at least 2 images: 96 + 1,400 x 2 = 2,896, above the forward's 48 + 400
    assert estimate_verify(None, r, "cuda", 1, True) == (2896, "verify --memory on cuda")
    assert estimate_verify(None, r, "meta", 3, True) == (0, "verify")


_NO_TORCH = """
import sys
sys.modules["torch"] = None  # any import of torch fails
from archcalc.cli.main import main
code = main(["verify", "vgg16", "--device", "cpu", "--max-memory", "1M"])
print(code)
"""


def test_verify_refuses_before_torch_is_imported():
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.split() == ["2"], proc.stderr
    # vgg16 forward at batch 1: (138,357,544 params + 0 buffers) x 4 + 15,237,608 activations x 4 bytes
    assert f"would allocate about 585.92 MiB ({(138_357_544 + 15_237_608) * 4:,} bytes)" in proc.stderr
