"""Import a sample of timm's CNNs with `archcalc import ... --check`'s round trip and tabulate it
(issue 22's table in docs/import.md). Not a test: it takes minutes.

    nice python benchmarks/import_timm_table.py                 # the sample below -> markdown on stdout
    nice python benchmarks/import_timm_table.py --json out.json  # also the rows as JSON
    python benchmarks/import_timm_table.py resnet18 efficientnet_b0   # only these models

For each model (``timm.create_model(NAME, pretrained=False)``, so random weights): timm's own
params, buffers (BatchNorm's num_batches_tracked left out) and MACs (torch's FlopCounterMode on
the forward at the model's default input size, / 2), then the import at that size, and the round
trip: the original's state_dict loads into the built spec, params, buffers and MACs of the original,
the built spec and archcalc's engine agree, and the outputs at a size the spec accepts (64x64
where it does) agree (relative difference <= 1e-4). A failure's first line is in the table.
Each model has a time limit (--limit, default 120 s).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# one or two members of each CNN family in timm 1.0.31 (timm/models/<family>.py), small ones first
SAMPLE = {
    "byoanet": ["eca_halonext26ts", "lambda_resnet26t"],
    "byobnet": ["gernet_s", "repvgg_a0", "mobileone_s0", "resnet32ts", "gcresnet33ts", "eca_resnet33ts",
                "bat_resnext26ts", "regnetz_b16"],
    "convmixer": ["convmixer_768_32"],
    "convnext": ["convnext_atto", "convnextv2_atto"],
    "cspnet": ["cspresnet50", "cspdarknet53", "darknet17", "cs3darknet_s"],
    "cspnext": ["cspnext_tiny"],
    "densenet": ["densenet121", "densenetblur121d"],
    "dla": ["dla34", "dla46_c"],
    "dpn": ["dpn48b"],
    "efficientnet": ["efficientnet_b0", "mobilenetv2_100", "mnasnet_100", "mixnet_s", "tinynet_a", "fbnetc_100",
                     "spnasnet_100", "efficientnet_lite0", "tf_efficientnet_b0", "efficientnetv2_rw_t",
                     "efficientnet_b0_gn", "semnasnet_050"],
    "fasternet": ["fasternet_t0"],
    "ghostnet": ["ghostnet_050", "ghostnetv2_100"],
    "hardcorenas": ["hardcorenas_a"],
    "hgnet": ["hgnet_tiny", "hgnetv2_b0"],
    "hrnet": ["hrnet_w18_small"],
    "inception_next": ["inception_next_atto"],
    "inception_resnet_v2": ["inception_resnet_v2"],
    "inception_v3": ["inception_v3"],
    "inception_v4": ["inception_v4"],
    "lcnetv2": ["lcnetv2_small"],
    "metaformer": ["poolformer_s12", "convformer_s18"],
    "mobilenetv3": ["mobilenetv3_small_050", "mobilenetv3_large_100", "lcnet_050", "fbnetv3_b",
                    "mobilenetv4_conv_small", "tf_mobilenetv3_small_minimal_100"],
    "nasnet": ["nasnetalarge"],
    "nfnet": ["nf_resnet26", "nf_regnet_b0", "dm_nfnet_f0", "eca_nfnet_l0"],
    "pnasnet": ["pnasnet5large"],
    "rdnet": ["rdnet_tiny"],
    "regnet": ["regnetx_002", "regnety_002", "regnetz_005"],
    "repghost": ["repghostnet_050"],
    "repvit": ["repvit_m0_9"],
    "res2net": ["res2net50_14w_8s", "res2next50"],
    "resnest": ["resnest14d"],
    "resnet": ["resnet18", "resnet50", "resnet18d", "resnet10t", "seresnet18", "ecaresnet26t", "resnetblur18",
               "resnetaa34d", "resnet50_gn", "wide_resnet50_2"],
    "resnetv2": ["resnetv2_18", "resnetv2_50x1_bit"],
    "rexnet": ["rexnet_100", "rexnetr_100"],
    "selecsls": ["selecsls42b"],
    "senet": ["legacy_seresnet18", "legacy_seresnext26_32x4d"],
    "sknet": ["skresnet18"],
    "starnet": ["starnet_s050"],
    "tresnet": ["tresnet_m"],
    "vgg": ["vgg11", "vgg11_bn"],
    "vovnet": ["ese_vovnet19b_dw", "vovnet39a"],
    "xception": ["legacy_xception"],
    "xception_aligned": ["xception41"],
}


class Timeout(Exception):
    pass


def one(name, limit):
    import timm
    import torch

    from archcalc.errors import ArchcalcError
    from archcalc.importer import import_target
    from archcalc.importer.roundtrip import check, counts

    row = {"model": name}
    torch.manual_seed(0)
    t0 = time.perf_counter()

    def alarm(*_):
        raise Timeout(f"over {limit} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(limit)
    try:
        model = timm.create_model(name, pretrained=False)
        shape = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))
        row["input"] = "x".join(map(str, shape))
        ref = counts(model, shape)
        row.update({"timm_params": ref["params"], "timm_buffers": ref["buffers"], "timm_macs": ref["macs"]})
        try:
            text, graph, _ = import_target("timm:create_model", {"model_name": name}, shape, model=model)
        except ArchcalcError as err:
            row.update({"import": False, "check": False, "error": str(err).splitlines()[0]})
            return row
        row["import"] = True
        row["lines"] = text.count("\n")
        t1 = time.perf_counter()
        # where the trace read sizes as numbers (a note), the spec is the model at the traced size: compared there
        result = check(text, model, shape, output_input=shape if getattr(graph, "notes", None) else None)
        row["check_s"] = round(time.perf_counter() - t1, 2)
        e = result["engine"]
        row.update({"params": e["params"], "buffers": e["buffers"], "macs": e["macs"]})
        sd = result["state_dict"]
        row["state_dict"] = not (sd["missing"] or sd["unexpected"] or sd["shape"])
        out = result.get("outputs") or {}
        row["outputs_at"] = "x".join(map(str, out.get("input", ())))
        row["diff"] = out.get("max_abs_diff")
        row["scale"] = out.get("max_abs")
        row["check"] = bool(result["ok"])
        if not result["ok"]:
            if "error" in out:
                row["error"] = "outputs: " + out["error"]
            elif out.get("first"):
                row["error"] = f"outputs differ first at {out['first'][0]}"
            elif out:
                row["error"] = "outputs differ"
            elif not row["state_dict"]:
                row["error"] = f"state_dict: e.g. {(sd['missing'] + sd['unexpected'] + sd['shape'])[:2]}"
            else:
                row["error"] = "counts differ: " + ", ".join(
                    f"{k} {result['original'][k]} vs {result['built'][k]} vs {e[k]}" for k in e if not result["original"][k] == result["built"][k] == e[k])
    except Timeout as err:
        row.update({"check": False, "error": str(err)})
        row.setdefault("import", False)
    except ArchcalcError as err:
        row.update({"check": False, "error": str(err).splitlines()[0]})
        row.setdefault("import", False)
    except Exception as err:  # noqa: BLE001 - a row, not a crash
        row.update({"check": False, "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:200]})
        row.setdefault("import", False)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def fmt_n(v):
    return "" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:,.1f}"


def table(rows, families):
    out = ["| family | model | import | check | timm params | timm buffers | timm MACs | archcalc = timm | outputs: max diff (max value) | s | note |",
           "|---|---|---|---|---:|---:|---:|---|---|---:|---|"]
    for r in rows:
        same = all(r.get(k) == r.get("timm_" + k) for k in ("params", "buffers", "macs")) if r.get("params") is not None else None
        diff = "" if r.get("diff") is None else f"{r['diff']:.2g} ({r['scale']:.2g}) at {r['outputs_at']}"
        note = (r.get("error") or "").replace("|", "/")
        if len(note) > 180:
            note = note[:177] + "..."
        out.append(f"| {families.get(r['model'], '')} | {r['model']} | {'ok' if r.get('import') else 'no'} | "
                   f"{'ok' if r.get('check') else 'no'} | {fmt_n(r.get('timm_params'))} | {fmt_n(r.get('timm_buffers'))} | "
                   f"{fmt_n(r.get('timm_macs'))} | {'' if same is None else 'yes' if same else 'NO'} | {diff} | {r.get('seconds', '')} | {note} |")
    n = len(rows)
    ok = sum(1 for r in rows if r.get("check"))
    imp = sum(1 for r in rows if r.get("import"))
    out.append("")
    out.append(f"{n} models: {imp} import, {ok} pass --check (exact params, buffers, MACs and outputs).")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*")
    ap.add_argument("--json")
    ap.add_argument("--limit", type=int, default=120)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    families = {m: f for f, ms in SAMPLE.items() for m in ms}
    names = a.models or [m for ms in SAMPLE.values() for m in ms]
    rows = []
    for name in names:
        r = one(name, a.limit)
        rows.append(r)
        print(f"{name}: {'ok' if r.get('check') else 'FAIL ' + str(r.get('error'))[:150]} ({r.get('seconds')} s)", file=sys.stderr, flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1))
    print(table(rows, families))


if __name__ == "__main__":
    main()
