"""Bad input: one line with file, line, layer path and a hint; exit code 2; never a traceback."""

import textwrap

import pytest

from conftest import run_subprocess

CASES = [
    (
        "kernal",
        """
        input: [3, 32, 32]
        layers:
          - conv: {out: 8, kernal: 3}
        """,
        "{f}:3: layers[0] 'conv1' (conv): unknown key 'kernal'; did you mean 'kernel'?",
    ),
    (
        "unknown type",
        """
        input: [3, 32, 32]
        layers:
          - conv: {out: 8, kernel: 3}
          - rellu
        """,
        "{f}:4: layers[1]: unknown layer type 'rellu'; did you mean 'relu'?",
    ),
    (
        "missing key",
        """
        input: [3, 32, 32]
        layers:
          - conv: {out: 8}
        """,
        "{f}:3: layers[0] 'conv1' (conv): missing key 'kernel' (kernel size)",
    ),
    (
        "broken YAML",
        """
        input: [3, 32, 32]
        layers:
          - conv: {out: 8, kernel: 3
        """,
        "{f}:4: invalid YAML: while parsing a flow mapping did not find expected ',' or '}}'",
    ),
    (
        "concat spatial mismatch",
        """
        input: [16, 32, 32]
        layers:
          - concat:
              - [{conv: {out: 8, kernel: 3, padding: 1}}]
              - [{conv: {out: 8, kernel: 3, stride: 2, padding: 1}}]
        """,
        "{f}:3: layers[0] 'concat1' (concat): branch 'b1' gives 8x32x32 but branch 'b2' gives 8x16x16; "
        "branches must agree on spatial size",
    ),
    (
        "add channel mismatch",
        """
        input: [16, 32, 32]
        layers:
          - add:
              residual: [{conv: {out: 32, kernel: 3, padding: 1}}]
              shortcut: identity
        """,
        "{f}:3: layers[0] 'add1' (add): branch 'residual' gives 32x32x32 but branch 'shortcut' gives 16x32x32; "
        "project the shortcut with a 1x1 conv (stride to match) so channels agree",
    ),
    (
        "linear on a feature map",
        """
        input: [3, 32, 32]
        layers:
          - linear: {out: 10}
        """,
        "{f}:3: layers[0] 'linear1' (linear): linear needs a flat vector, got a 3x32x32 feature map; add flatten before it",
    ),
    (
        "window larger than input",
        """
        input: [3, 8, 8]
        layers:
          - conv: {out: 8, kernel: 11}
        """,
        "{f}:3: layers[0] 'conv1' (conv): output would be 8x-2x-2 for input 3x8x8; the window is larger than the padded input",
    ),
    (
        "misspelt symbol",
        """
        input: [3, 32, 32]
        symbols: {width: 16}
        layers:
          - conv: {out: 2*widht, kernel: 3}
        """,
        "{f}:4: layers[0] 'conv1' (conv): unknown name 'widht'; did you mean 'width'?",
    ),
    (
        "code in an expression",
        """
        input: [3, 32, 32]
        layers:
          - conv: {out: "__import__('os').system('echo hi')", kernel: 3}
        """,
        "{f}:3: layers[0] 'conv1' (conv): \"__import__('os').system('echo hi')\" is not a size expression "
        "(allowed: integers, decimals, names, + - * / // % **, comparisons, and/or/not, 'a if c else b', "
        "parentheses, min, max, floor, ceil, round, abs, sqrt)",
    ),
    (
        "groups do not divide channels",
        """
        input: [3, 32, 32]
        layers:
          - conv: {out: 8, kernel: 3, groups: 2}
        """,
        "{f}:3: layers[0] 'conv1' (conv): input channels 3 are not divisible by groups=2",
    ),
    (
        "misspelt block argument",
        """
        input: [3, 32, 32]
        blocks:
          unit:
            args: [width]
            layers: [{conv: {out: $width, kernel: 3}}]
        layers:
          - unit: {widht: 8}
        """,
        "{f}:7: layers[0] (unit): block 'unit' has no argument 'widht'; did you mean 'width'?",
    ),
    (
        "misspelt argument inside a block",
        """
        input: [3, 32, 32]
        blocks:
          unit:
            args: [width]
            layers: [{conv: {out: $widht, kernel: 3}}]
        layers:
          - unit: {width: 8}
        """,
        "{f}:5: blocks.unit.layers[0] 'unit1.conv1' (conv): unknown name '$widht'; did you mean '$width'?",
    ),
    (
        "duplicate layer name",
        """
        input: [3, 32, 32]
        layers:
          - {conv: {out: 8, kernel: 3}, name: c1}
          - {conv: {out: 8, kernel: 3}, name: c1}
        """,
        "{f}:4: layers[1] (conv): layer name 'c1' is used twice; first at line 3",
    ),
    (
        "misspelt top-level key",
        """
        input: [3, 32, 32]
        layer:
          - conv: {out: 8, kernel: 3}
        """,
        "{f}:2: unknown top-level key 'layer'; did you mean 'layers'?",
    ),
    (
        "integer where a bool goes",
        """
        input: [3, 32, 32]
        layers:
          - conv: {out: 8, kernel: 3, bias: 1}
        """,
        "{f}:3: layers[0] 'conv1' (conv): bias: expected true or false, got 1",
    ),
    (
        "two layers in one item",
        """
        input: [3, 32, 32]
        layers:
          - conv: {out: 8, kernel: 3}
            relu: {}
        """,
        "{f}:3: layers[0]: one layer per list item: found 'conv', 'relu'; give each layer its own '- ' entry",
    ),
    (
        "three padding values",
        """
        input: [3, 32, 32]
        layers:
          - conv: {out: 8, kernel: 3, padding: [1, 2, 3]}
        """,
        "{f}:3: layers[0] 'conv1' (conv): padding: expected integer, [h, w], [top, bottom, left, right] or 'same', got a list of 3",
    ),
    (
        "huge repeat",
        """
        input: [3, 32, 32]
        layers:
          - repeat: 1000000
            layers: [relu]
        """,
        "{f}:3: layers[0] (repeat): repeat count 1000000 is above the limit of 200000 layers",
    ),
    (
        "alias bomb",
        """
        input: [3, 32, 32]
        notes: &a [x, x, x, x, x, x, x, x, x, x]
        symbols: {}
        title: [%s]
        layers: [relu]
        """ % ", ".join(["*a"] * 101),
        "{f}:4: invalid YAML: more than 100 aliases",
    ),
    (
        "duplicate key",
        """
        input: [3, 32, 32]
        layers:
          - conv: {out: 8, kernel: 3, kernel: 5}
        """,
        "{f}:3: key 'kernel' appears twice in one mapping; first at line 3",
    ),
    (
        "block calling itself",
        """
        input: [3, 32, 32]
        blocks:
          a:
            layers: [relu, b]
          b:
            layers: [a]
        layers: [a]
        """,
        "{f}:6: blocks.b.layers[0] (a): block 'a' calls itself (a -> b -> a); "
        "a block may only use blocks that do not lead back to it",
    ),
    (
        "not a mapping",
        """
        - conv
        """,
        "{f}:1: a spec is a mapping with at least 'input' and 'layers'",
    ),
]


@pytest.mark.parametrize("label,text,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_spec(cli, tmp_path, label, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    code, out, err = cli("summary", str(path))
    assert code == 2
    assert out == ""  # no partial output pretending to be a result
    assert err == "archcalc: error: " + expected.format(f=path) + "\n"


def test_error_in_a_subprocess_has_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("input: [3, 32, 32]\nlayers:\n  - conv: {out: 8, kernal: 3}\n")
    proc = run_subprocess("summary", str(path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith("unknown key 'kernal'; did you mean 'kernel'?")


@pytest.mark.parametrize(
    "args,expected",
    [
        (["summary", "alexnett"], "archcalc: error: 'alexnett' is not in the zoo; did you mean 'alexnet'?"),
        (["summary", "missing/net.yaml"], "archcalc: error: no such file 'missing/net.yaml'"),
        (["summary", "vgg16", "--set", "H=abc"], "archcalc: error: --set H=abc: expected NAME=VALUE with a number VALUE from 1 to 1,099,511,627,776 (or a positive decimal), e.g. --set H=299"),
        (["summary", "vgg16", "--set", "HH=299"], "archcalc: error: specs/vgg16.yaml: --set HH: the spec has no symbol 'HH'; did you mean 'H'?"),
        (["summary", "vgg16", "--input", "3x224"], "archcalc: error: --input 3x224: expected CxHxW with integers from 1 to 1,099,511,627,776, e.g. 3x224x224"),
        (["summary", "vgg16", "--input", "3x16x16"], "archcalc: error: specs/vgg16.yaml:18: blocks.stage.layers[1] 'pool5' (maxpool): output would be 512x0x0 for input 512x1x1; the window is larger than the padded input"),
        (["summary", "vgg16", "--fit", "lots"], "archcalc: error: --fit lots: expected a size such as 16GiB or 80G"),
        (["summary", "vgg16", "--symbolic", "HH"], "archcalc: error: specs/vgg16.yaml: --symbolic HH: the spec has no symbol 'HH'; did you mean 'H'?"),
        (["summary", "vgg16", "--symbolic", "H", "--set", "H=3"], "archcalc: error: specs/vgg16.yaml: symbol 'H' is both given a value and kept symbolic"),
        (["summary", "vgg16", "--symbolic", "H W"], "archcalc: error: --symbolic H W: 'H W' is not a symbol name"),
        (["compare", "vgg16"], "archcalc: error: compare needs at least two specs"),
        (["check", "vgg16", "--budget", "parms=1M"], "archcalc: error: --budget parms=1M: expected KEY=AMOUNT; did you mean 'params'?"),
    ],
)
def test_bad_arguments(cli, args, expected, monkeypatch):
    from conftest import ROOT

    monkeypatch.chdir(ROOT)
    code, out, err = cli(*args)
    assert code == 2
    assert out == ""
    assert err.endswith(expected.split("archcalc: error: ", 1)[1] + "\n")
    assert err.startswith("archcalc: error: ")


def test_unknown_option_is_a_usage_error():
    proc = run_subprocess("summary", "vgg16", "--formt", "json")
    assert proc.returncode == 2
    assert "No such option" in proc.stderr and "Traceback" not in proc.stderr
