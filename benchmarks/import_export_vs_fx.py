"""CPU seconds of tracing timm models with torch.fx (archcalc's tracer) and with torch.export, for
docs/import.md's choice of tracer. Not a test. Run: python benchmarks/import_export_vs_fx.py
"""
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import timm  # noqa: E402
import torch  # noqa: E402

from archcalc.importer import fx as F  # noqa: E402

warnings.simplefilter("ignore")
torch.set_num_threads(1)
for name in ["resnet50", "efficientnet_b0", "vgg11", "bat_resnext26ts"]:
    m = timm.create_model(name).eval()
    x = torch.randn(1, 3, 224, 224)
    names = F._declared_names()
    t = time.process_time()
    try:
        F._Tracer(names, F._autowrap(m, names)).trace(m)
        fx_s = f"{time.process_time() - t:.2f} s"
    except Exception:  # noqa: BLE001 - a size branch: the MetaTracer retry archcalc makes
        graph, _ = F._trace_concrete(m.to("meta"), names, (3, 224, 224))
        fx_s = f"refused; MetaTracer retry {'ok' if graph is not None else 'refused'} {time.process_time() - t:.2f} s"
    m = timm.create_model(name).eval()
    t = time.process_time()
    try:
        ep = torch.export.export(m, (x,))
        ex_s = f"{time.process_time() - t:.2f} s, {len(ep.graph.nodes)} ATen nodes"
    except Exception as e:  # noqa: BLE001
        first = (str(e).splitlines() or [''])[0][:100]
        ex_s = f"fails ({type(e).__name__}: {first})"
    print(f"{name}: torch.fx {fx_s}; torch.export {ex_s}", flush=True)
