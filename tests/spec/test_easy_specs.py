"""Specs that are easy to write (issue 23 item 3): `from:` names a block call by the name the
call was given, `$arg` works inside `from:`, every error path counts list positions from 0, and an
encoder-decoder whose branches agree only at multiples of its strides says so."""

from __future__ import annotations

import textwrap

import pytest

from archcalc import analyze
from archcalc.errors import SpecError
from archcalc.spec.load import loads


def spec(text):
    return textwrap.dedent(text).strip() + "\n"


BLOCKS = spec("""
    input: [3, 32, 32]
    blocks:
      enc:
        args: {c: null}
        layers:
          - {conv: {out: $c, kernel: 3, padding: 1}}
          - relu
      merge:
        args: {skip: null}
        layers:
          - {conv: {out: 8, kernel: 1}, name: proj}
          - concat: [identity, {from: $skip}]
      merge_braces:
        args: {skip: null}
        layers:
          - concat: [identity, {from: "{$skip}"}]
    layers:
      - {enc: {c: 8}, name: e1}
      - {enc: {c: 8}, name: e2}
    """)


def inputs(net, name):
    return [net.nodes[i].name if i >= 0 else "input" for i in next(n for n in net.nodes if n.name == name).inputs]


def test_from_names_a_block_call_by_its_name():
    net = loads(BLOCKS + "  - {conv: {out: 4, kernel: 1}, from: e1}\n  - {upsample: {like: e2}}\n", "f.yaml")
    assert inputs(net, "conv1") == ["e1.relu1"]  # the call's output: its last layer
    assert inputs(net, "upsample1") == ["conv1", "e2.relu1"]  # `like:` reads names alike


def test_dollar_argument_inside_from():
    net = loads(BLOCKS + "  - {merge: {skip: e1}}\n  - {merge: {skip: e1.conv1}}\n  - {merge_braces: {skip: e2}}\n", "f.yaml")
    assert inputs(net, "merge1.concat1") == ["merge1.proj", "e1.relu1"]
    assert inputs(net, "merge2.concat1") == ["merge2.proj", "e1.conv1"]  # a dotted name passes as a word
    assert inputs(net, "merge_braces1.concat1") == ["merge2.concat1", "e2.relu1"]
    # 8 + 8 channels, then 16 + 8 (e2): params of the three convs and two proj convs by hand
    r = analyze(net)
    assert r.row("merge_braces1.concat1").shape == (24, 32, 32)
    assert r.totals["params"] == (3 * 8 * 9 + 8) + (8 * 8 * 9 + 8) + (8 * 8 + 8) + (16 * 8 + 8)


def test_zoo_unet_reads_the_same_from_the_block_name():
    from archcalc.spec.zoo import lookup

    path, _ = lookup("unet")
    text = path.read_text()
    assert 'from: "down{$level}.relu2"' in text
    a = analyze(loads(text, str(path)))
    b = analyze(loads(text.replace('from: "down{$level}.relu2"', 'from: "down{$level}"'), str(path)))
    assert [(x.name, x.inputs, x.shape, x.params, x.macs) for x in a.rows] == \
        [(x.name, x.inputs, x.shape, x.params, x.macs) for x in b.rows]
    assert b.totals["params"] == 31_030_658  # Ronneberger et al. 2015, as the zoo's spec cites


@pytest.mark.parametrize("tail,message", [
    ("  - {merge: {skip: e9}}\n",
     "f.yaml:12: blocks.merge.layers[1].concat[1] (concat): 'from: e9' names no earlier layer; "
     "name the layer with name: and branch from it after it"),
    ("  - {conv: {out: 4, kernel: 1}, from: $x}\n",
     "f.yaml:20: layers[2] (conv): 'from: $x': no block argument '$x' here; "
     "give the layer's name, or pass it to the block as an argument"),
    ("  - {merge: {skip: 3}}\n",
     "f.yaml:12: blocks.merge.layers[1].concat[1] (concat): 'from: $skip' names an earlier layer, but $skip is 3; "
     "pass the layer's name: skip: NAME"),
    # a call's name given again enters its scope again (e1.conv2, e1.relu2: the importer writes
    # interleaved module lists so), but then `from: e1` has no one output
    ("  - {enc: {c: 8}, name: e1}\n  - {conv: {out: 4, kernel: 1}, from: e1}\n",
     "f.yaml:21: layers[3] (conv): 'from: e1' names a block call made more than once (first at line 18), "
     "so it has no one output; name a layer inside the call you mean"),
    ("  - {conv: {out: 4, kernel: 1}, name: e2}\n",
     "f.yaml:20: layers[2] (conv): layer name 'e2' is used twice; first at line 19"),
])
def test_from_errors(tail, message):
    with pytest.raises(SpecError) as err:
        loads(BLOCKS + tail, "f.yaml")
    assert str(err.value) == message


def test_every_list_position_counts_from_zero():
    # the first layer of the third branch of the join in the second layer: layers[1], concat[2], [0]
    text = spec("""
        input: [3, 8, 8]
        layers:
          - relu
          - concat:
              - identity
              - [relu]
              - [{conv: {out: 4, kernell: 1}}]
        """)
    with pytest.raises(SpecError) as err:
        loads(text, "f.yaml")
    assert str(err.value) == ("f.yaml:7: layers[1].concat[2][0] 'concat1.b3.conv1' (conv): unknown key 'kernell'; "
                              "did you mean 'kernel'?")


UNET = spec("""
    input: [3, H, W]
    symbols: {H: 100, W: 100}
    blocks:
      double:
        args: [c]
        layers:
          - {conv: {out: $c, kernel: 3, padding: 1}}
          - relu
      up:
        args: [c, skip]
        layers:
          - {conv_transpose: {out: $c, kernel: 2, stride: 2}}
          - concat: [{from: $skip}, identity]
          - {double: {c: $c}}
    layers:
      - {double: {c: 8}, name: enc1}
      - maxpool: {kernel: 2}
      - {double: {c: 16}, name: enc2}
      - maxpool: {kernel: 2}
      - {double: {c: 32}, name: enc3}
      - maxpool: {kernel: 2}
      - {double: {c: 64}, name: enc4}
      - maxpool: {kernel: 2}
      - {double: {c: 128}, name: bottom}
      - {up: {c: 64, skip: enc4}}
      - {up: {c: 32, skip: enc3}}
      - {up: {c: 16, skip: enc2}}
      - {up: {c: 8, skip: enc1}}
    """)


def test_encoder_decoder_at_a_size_that_is_no_multiple_of_16():
    # 100 // 2 // 2 = 25 at enc3, but 100 // 16 = 6 upsampled twice gives 24
    with pytest.raises(SpecError) as err:
        analyze(loads(UNET, "u.yaml"))
    assert str(err.value) == (
        "u.yaml:13: blocks.up.layers[1] 'up2.concat1' (concat): branch 'b1' gives 32x25x25 but branch 'b2' gives "
        "32x24x24; this network's branches agree only where the input's height and width are multiples of 16 "
        "(its strides before its joins), and 100x100 is not: write input: [3, 16*h, 16*w] with symbols: "
        "{h: 6, w: 6}, or give --input 3x96x96 or --input 3x112x112")
    # the suggested form loads, at every h and w
    fixed = UNET.replace("input: [3, H, W]", "input: [3, 16*h, 16*w]").replace("{H: 100, W: 100}", "{h: 6, w: 6}")
    for h, w in ((6, 6), (7, 5), (1, 1)):
        r = analyze(loads(fixed, "u.yaml", values={"h": h, "w": w}))
        assert r.rows[-1].shape == (8, 16 * h, 16 * w)


def test_the_modulus_is_the_product_of_the_strides():
    # a stride-2 stem and three 2x2 pools before the joins: multiples of 16 again, from 2 * 2**3.
    # The padded 3x3/2 stem rounds up (ceil(H / 2)), so 16k - 1 agrees too: "only" is not said
    three = (UNET.replace("  - {double: {c: 8}, name: enc1}",
                          "  - {conv: {out: 8, kernel: 3, stride: 2, padding: 1}}\n  - {double: {c: 8}, name: enc1}")
             .replace("  - maxpool: {kernel: 2}\n  - {double: {c: 128}, name: bottom}\n", "  - {double: {c: 128}, name: bottom}\n")
             .replace("  - {up: {c: 64, skip: enc4}}\n", ""))
    with pytest.raises(SpecError) as err:
        analyze(loads(three, "u.yaml"))
    assert str(err.value).endswith(
        "this network's branches agree where the input's height and width are multiples of 16 (its strides before "
        "its joins), and 100x100 is not: write input: [3, 16*h, 16*w] with symbols: {h: 6, w: 6}, "
        "or give --input 3x96x96 or --input 3x112x112")
    assert analyze(loads(three, "u.yaml", values={"H": 111, "W": 111})).rows[-1].shape == (8, 56, 56)  # ceil(111 / 2)
    # two pools and the stem: 2 * 2**2 = 8
    two = (three.replace("  - maxpool: {kernel: 2}\n  - {double: {c: 64}, name: enc4}\n", "  - {double: {c: 64}, name: enc4}\n")
           .replace("  - {up: {c: 32, skip: enc3}}\n", ""))
    with pytest.raises(SpecError, match=r"multiples of 8 .*and 100x100 is not: write input: \[3, 8\*h, 8\*w\] "
                       r"with symbols: \{h: 12, w: 12\}, or give --input 3x96x96 or --input 3x104x104"):
        analyze(loads(two, "u.yaml"))
    # pools of stride (2, 1) halve the height only: the width may be anything
    tall = UNET.replace("maxpool: {kernel: 2}", "maxpool: {kernel: [2, 1]}").replace(
        "kernel: 2, stride: 2}", "kernel: [2, 1], stride: [2, 1]}")
    with pytest.raises(SpecError) as err:
        analyze(loads(tall, "u.yaml", values={"H": 100, "W": 37}))
    assert str(err.value).endswith(
        "this network's branches agree only where the input's height is a multiple of 16 (its strides before its "
        "joins), and 100x37 is not: write input: [3, 16*h, 37] with symbols: {h: 6}, or give --input 3x96x37 "
        "or --input 3x112x37")


def test_no_modulus_claim_where_sizes_are_not_why():
    # branches that never agree (a 3x3 conv without padding on one side): the plain hint stays
    text = spec("""
        input: [3, 32, 32]
        layers:
          - maxpool: {kernel: 2}
          - concat: [identity, [{conv: {out: 4, kernel: 3}}]]
        """)
    with pytest.raises(SpecError) as err:
        analyze(loads(text, "f.yaml"))
    assert str(err.value).endswith("branches must agree on spatial size")


def test_a_block_call_name_is_taken_for_derived_names_too():
    # the second `relu` of a repeat is planned (its keys known): its derived name still meets the
    # block call's name 'relu2' and says so
    text = spec("""
        input: [3, 8, 8]
        blocks:
          b: {layers: [relu]}
        layers:
          - {b: {}, name: relu2}
          - repeat: 2
            layers: [relu]
        """)
    with pytest.raises(SpecError, match=r"layer name 'relu2' is used twice; first at line 5"):
        loads(text, "f.yaml")


def test_closed_forms_get_the_modulus_too():
    # H and W kept free: 2*floor(W/16) is floor(W/8) only where W mod 16 < 8; the hint is probed
    # at sizes of its own (65 and 64 + 16 = 80 ...), and the form to write is the same
    with pytest.raises(SpecError) as err:
        analyze(loads(UNET, "u.yaml", free=("H", "W")))
    text = str(err.value)
    assert "branch 'b1' gives 64xfloor(H/8)xfloor(W/8) but branch 'b2' gives 64x2*floor(H/16)x2*floor(W/16)" in text
    assert text.endswith("this network's branches agree only where the input's height and width are multiples of 16 "
                         "(its strides before its joins): write input: [3, 16*h, 16*w] and declare those symbols")


def test_a_repeat_that_would_hide_a_block_argument_named_i_is_refused():
    # found writing timm's rexnet: inside a repeat '$i' is the repeat's count (1, 2, ...), so a
    # block argument named i read there gave another channel slice with no error
    text = spec("""
        input: [3, 8, 8]
        blocks:
          b:
            args: [i]
            layers:
              - {conv: {out: $i, kernel: 1}}
              - repeat: 2
                layers: [{conv: {out: $i, kernel: 1}}]
        layers:
          - b: {i: 4}
        """)
    with pytest.raises(SpecError) as err:
        loads(text, "net.yaml")
    assert err.value.where.line == 7
    assert "hides the argument 'i' of block 'b'" in str(err.value)
    # the same block without '$i' in its repeat is fine: 3*4 + 4*5 + 5*5 = 57 weights, 4 + 5 + 5 = 14 biases
    ok = analyze(loads(text.replace("layers: [{conv: {out: $i, kernel: 1}}]", "layers: [{conv: {out: 5, kernel: 1}}]"), "net.yaml"))
    assert ok.totals["params"] == 3 * 4 + 4 + 4 * 5 + 5 + 5 * 5 + 5
    # and an argument named i read outside any repeat is the argument (4 output channels)
    no_repeat = "\n".join(line for line in text.splitlines() if "repeat" not in line and "layers: [{conv" not in line)
    ok = analyze(loads(no_repeat + "\n", "net.yaml"))
    assert ok.rows[-1].shape == (4, 8, 8)
