"""The Python API (issue 25, docs/python.md): archcalc.summary / compare / check / verify / load.

Numbers come from torch, torchvision and timm themselves (the model's own parameters,
FlopCounterMode / 2), from torchvision's published table (tests/reference/torchvision.json) or
from hand arithmetic written out here; renderings are held equal to the CLI's own output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields

import pytest

import archcalc
from conftest import REFERENCE, ROOT

# a spec small enough to count by hand: conv 3->8, 3x3, padding 1, on 3x16x16; relu; global pool; linear 8->10
SMALL = {
    "name": "small",
    "input": [3, 16, 16],
    "layers": [
        {"conv": {"out": 8, "kernel": 3, "padding": 1}},
        "relu",
        {"adaptive_avgpool": {"size": 1}},
        "flatten",
        {"linear": {"out": 10}},
    ],
}
SMALL_PARAMS = (8 * 3 * 3 * 3 + 8) + (8 * 10 + 10)  # conv weight + bias, linear weight + bias = 314
SMALL_MACS = 8 * 16 * 16 * (3 * 3 * 3) + 8 * 10  # every output position of the conv x its 27 taps; linear = 55,376


# --------------------------------------------------------------------------- live modules


def test_resnet50_module_gives_torchvisions_numbers():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet50()
    totals = archcalc.summary(model, input_size=(1, 3, 224, 224)).totals
    assert totals.params == 25_557_032 == sum(p.numel() for p in model.parameters())
    assert totals.macs == 4_089_184_256 == REFERENCE["resnet50"]["macs"]  # torchvision's 4.09 GFLOPS (GMACs)
    # BN running mean and var (archcalc counts no num_batches_tracked counter: docs/conventions.md)
    assert totals.buffers == 53_120 == sum(b.numel() for n, b in model.named_buffers() if "running_" in n)


def test_timm_module_gives_timms_numbers():
    timm = pytest.importorskip("timm")
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    name = "mobilenetv3_small_050"
    model = timm.create_model(name)
    report = archcalc.summary(model, input_size=(1, 3, 224, 224))
    with torch.device("meta"):
        meta = timm.create_model(name).eval()
    with FlopCounterMode(display=False) as counter:
        meta(torch.empty(1, 3, 224, 224, device="meta"))
    assert report.totals.params == sum(p.numel() for p in model.parameters()) == 1_593_224
    assert report.totals.macs == counter.get_total_flops() // 2 == 24_188_688


def test_module_needs_input_size_and_prints_nothing(capsys):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
    with pytest.raises(archcalc.UsageError, match=r"needs input_size=\(N, C, H, W\)"):
        archcalc.summary(model)
    r = archcalc.summary(model, input_size=(4, 3, 16, 16))
    assert (r.batch, r.input) == (4, (3, 16, 16))
    assert r.totals.params == 8 * 27 + 8
    assert r.totals.macs == 8 * 16 * 16 * 27
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- what summary takes


def test_spec_as_mapping_text_path_and_network(tmp_path):
    import yaml

    text = yaml.safe_dump(SMALL, sort_keys=False)
    path = tmp_path / "small.yaml"
    path.write_text(text)
    for model in (SMALL, text, str(path), path, archcalc.load(str(path))):
        t = archcalc.summary(model).totals
        assert (t.params, t.macs) == (SMALL_PARAMS, SMALL_MACS), model
    assert archcalc.summary(SMALL, input=(3, 32, 32)).totals.macs == 8 * 32 * 32 * 27 + 80
    assert archcalc.summary("vgg16").totals.params == REFERENCE["vgg16"]["params"]


def test_options_are_the_clis():
    r = archcalc.summary("resnet18", batch=8, dtype="fp16", optimizer="adam")
    assert (r.batch, r.dtype) == (8, "fp16")
    t = r.totals
    # fp16: 2 bytes a value; adam keeps two state tensors per parameter: weights + grads + 2 states
    assert t.param_bytes == 11_689_512 * 2
    assert t.train_state_bytes == 11_689_512 * 2 * (1 + 1 + 2)
    assert t.batch_activation_bytes == t.activation_bytes * 8
    r = archcalc.summary("vgg16", set={"H": 32, "W": 32})
    assert r.input == (3, 32, 32)
    assert archcalc.summary("resnet18", ensemble=2, crops=3).totals.macs == 1_814_073_344 * 2 * 3


def test_errors_are_the_clis_one_line_messages(cli, capsys):
    cases = [("no_such_net", {}, ["summary", "no_such_net"]),
             ("vgg16", {"input": (3, 0, 1)}, ["summary", "vgg16", "--input", "3x0x1"]),
             ("vgg16", {"set": {"H": -1}}, ["summary", "vgg16", "--set", "H=-1"])]
    for model, kw, argv in cases:
        with pytest.raises(archcalc.ArchcalcError) as err:
            archcalc.summary(model, **kw)
        assert capsys.readouterr() == ("", ""), "a library call printed"
        code, out, stderr = cli(*argv)
        assert code == err.value.exit_code == 2
        message = str(err.value)
        assert "\n" not in message
        if model == "no_such_net":
            assert stderr == f"archcalc: error: {message}\n"  # the same words, word for word
        else:  # the same rule, naming the keyword instead of the flag
            assert "expected" in message and ("input=" in message or "set=" in message)
    with pytest.raises(archcalc.UsageError, match="input_size="):
        archcalc.summary("vgg16", input_size=(1, 3))


def test_import_archcalc_stays_light():
    code = ("import sys, archcalc\n"
            "assert not [m for m in ('sympy', 'torch', 'archcalc.api') if m in sys.modules], 'import'\n"
            "r = archcalc.summary('vgg16'); r.totals; r.rows; r.to_json(); r._repr_html_(); str(r)\n"
            "print([m for m in ('sympy', 'torch') if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n"


# --------------------------------------------------------------------------- the report


def test_totals_are_typed_and_cover_the_json_totals():
    r = archcalc.summary("vgg16")
    doc = json.loads(r.to_json())
    names = [f.name for f in fields(archcalc.Totals) if f.name != "extra"]
    missing = [k for k in doc["totals"] if k not in names]
    assert not missing, f"JSON totals without a Totals field (add one line each to archcalc/api/report.py): {missing}"
    gone = [n for n in names if n not in doc["totals"]]
    assert not gone, f"Totals fields the JSON totals no longer have (remove them from archcalc/api/report.py): {gone}"
    assert r.totals.extra == {}
    assert all(archcalc.Totals.__annotations__.get(n) for n in names)
    t = r.totals
    assert (t.params, t.macs) == (138_357_544, 15_470_264_320)
    assert t["params"] == t.params
    with pytest.raises(Exception):
        t.params = 0  # frozen
    # torchinfo's sizes, fp32: the input 3*224*224*4 bytes, the params 138,357,544*4
    assert t.size_input_bytes == 3 * 224 * 224 * 4
    assert t.size_param_bytes == 138_357_544 * 4
    assert t.params_trainable == 138_357_544 and t.params_frozen == 0
    assert t.layers == 40 == len(r.rows)


def test_rows_have_attributes():
    r = archcalc.summary("vgg16")
    conv = r.rows[0]
    assert (conv.name, conv.type, conv.output) == ("conv1_1", "conv", (64, 224, 224))
    assert conv.params == 64 * 3 * 3 * 3 + 64
    assert conv.macs == 64 * 224 * 224 * 27
    assert conv.rf is not None and (conv.rf.h.size, conv.rf.h.stride, conv.rf.h.padding) == (3, 1, 1)
    assert conv.details == "3x3 p1"
    fc = r.row("fc8")
    assert fc.params == 4096 * 1000 + 1000
    assert r.row("flatten1").output == (512 * 7 * 7,)
    assert abs(fc.params_share - 4_097_000 / 138_357_544) < 1e-12


def test_closed_forms_are_sympy_and_json_text():
    r = archcalc.summary("vgg16", symbolic=("H", "W"))
    macs = r.totals.macs
    assert hasattr(macs, "subs") and r.symbolic
    H, W = archcalc.symbol("H"), archcalc.symbol("W")
    assert macs.subs({H: 224, W: 224}) == 15_470_264_320
    assert r.totals.subs(H=224, W=224).macs == 15_470_264_320
    # vgg16's params do not depend on H and W (the adaptive pool makes fc6's input 512x7x7 at any size)
    assert r.totals.params == 138_357_544
    text = json.loads(r.to_json())["totals"]["macs"]
    assert isinstance(text, str) and "H" in text and "W" in text
    assert r.totals.inference_peak_bytes is None  # no liveness profile for symbolic sizes


def test_renderings_equal_the_cli(cli, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    r = archcalc.summary("resnet18")
    for fmt, text in (("json", r.to_json()), ("csv", r.to_csv()), ("markdown", r.to_markdown()), ("table", str(r))):
        code, out, _ = cli("summary", "resnet18", "-f", fmt)
        assert code == 0 and out == text, fmt
    assert r.to_dict() == json.loads(r.to_json())
    r = archcalc.summary("resnet18", symbolic="H,W", batch="N", depth=1, fit="8GiB")
    for fmt, text in (("json", r.to_json()), ("markdown", r.to_markdown())):
        code, out, _ = cli("summary", "resnet18", "--symbolic", "H,W", "-b", "N", "-d", "1", "--fit", "8GiB", "-f", fmt)
        assert code == 0 and out == text, fmt


def test_to_pandas():
    pd = pytest.importorskip("pandas", reason="pandas is not installed: to_pandas() is optional")
    df = archcalc.summary("vgg16").to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert len(df) == 40 and int(df["params"].sum()) == 138_357_544
    assert df.loc["conv1_1", "macs"] == 64 * 224 * 224 * 27


# --------------------------------------------------------------------------- compare, check, verify


def test_compare(cli, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    c = archcalc.compare("vgg16", "vgg19")
    assert [r.totals.params for r in c.reports] == [REFERENCE["vgg16"]["params"], REFERENCE["vgg19"]["params"]]
    assert c.ratios("params")[1] == 143_667_240 / 138_357_544
    for fmt, text in (("json", c.to_json()), ("csv", c.to_csv()), ("table", str(c))):
        code, out, _ = cli("compare", "vgg16", "vgg19", "-f", fmt)
        assert code == 0 and out == text, fmt
    code, out, _ = cli("compare", "vgg16", "vgg19", "-f", "markdown")
    assert c.to_markdown().startswith(out)
    assert c._repr_markdown_() == c.to_markdown()
    with pytest.raises(archcalc.UsageError, match="at least two"):
        archcalc.compare("vgg16")


def test_check_is_the_function_after_the_ci_package_is_imported():
    """The CI code is the package archcalc.ci, so importing it never replaces archcalc.check."""
    code = ("import archcalc\n"
            "print(archcalc.check('resnet18', budget={'params': '10M'}).exit_code)\n"
            "import archcalc.ci.checks as c\n"
            "print(c.__name__, archcalc.check('resnet18').exit_code, type(archcalc.check).__name__)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    # resnet18 has 11,689,512 params (torchvision): over a 10M budget, exit code 1; no budget, 0
    assert (proc.returncode, proc.stdout) == (0, "1\narchcalc.ci.checks 0 function\n"), proc.stderr[-2000:]


def test_check_returns_a_result(cli):
    result = archcalc.check("resnet18", budget={"params": "10M"})
    assert (result.ok, result.exit_code) == (False, 1)  # 11,689,512 params > 10,000,000
    with pytest.raises(archcalc.CheckFailed) as err:
        result.raise_for_status()
    code, out, stderr = cli("check", "resnet18", "--budget", "params=10M")
    assert code == 1 and stderr == f"archcalc: error: {err.value}\n"
    assert out == str(result)
    assert archcalc.check(SMALL, budget={"params": 314}).ok  # 314 params: at the limit passes
    assert not archcalc.check(SMALL, budget={"params": 313}).ok
    assert json.loads(result.to_json())["summary"] == result.to_dict()["summary"]


def test_verify_against_torch():
    pytest.importorskip("torch")
    result = archcalc.verify(SMALL)
    assert result.ok and result.mismatches == 0
    data = result.to_dict()
    assert data["totals"]["params"] == {"engine": SMALL_PARAMS, "torch": SMALL_PARAMS, "status": "ok"}
    assert "conv" in str(result)
