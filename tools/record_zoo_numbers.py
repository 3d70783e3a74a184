"""Record every zoo network's numbers (issue 20: the redesign keeps them all).

Runs ``archcalc summary NAME -f json --max-rows 0`` for every zoo name and keeps the totals
(params, buffers, MACs, activations, both peaks, training MACs) and each layer's name, output
shape, params, MACs and receptive field. tests/zoo/test_zoo_numbers.py compares the current tree
with the file this writes::

    python tools/record_zoo_numbers.py | gzip -9 -n > tests/reference/zoo_numbers.json.gz

Regenerate it only when a change is *meant* to change a number, and say which and why in the
commit message.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

TOTALS = ("params", "buffers", "macs", "activations", "activation_bytes", "inference_peak_bytes", "inference_live_bytes",
          "train_peak_bytes", "train_live_bytes", "train_total_bytes", "train_macs", "train_saved_bytes", "layers")


def numbers(name: str) -> dict:
    from archcalc.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["summary", name, "-f", "json", "--max-rows", "0"])
    if code != 0:
        raise SystemExit(f"summary {name} exited {code}")
    doc = json.loads(out.getvalue())
    totals = {k: doc["totals"][k] for k in TOTALS}
    layers = [[r["name"], r["output"], r["params"], r["macs"], r["rf"]] for r in doc["layers"]]
    return {"totals": totals, "layers": layers}


def main() -> None:
    from archcalc.cli.main import main as cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli(["list", "-f", "json"])
    names = [row["name"] for row in json.loads(out.getvalue())]
    doc = {name: numbers(name) for name in names}
    json.dump(doc, sys.stdout, separators=(",", ":"), sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
