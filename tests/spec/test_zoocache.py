"""The zoo listing's cache (archcalc/spec/zoocache.py): a cached listing is byte for byte the computed
one, and an entry is used only when the code and the spec file are the ones it was made from."""

import json
import os

import pytest

from archcalc.spec import zoocache

FORMATS = ("table", "json", "csv", "markdown")


SMALL_ZOO = ("vgg16", "stack3x3", "alexnet", "efficientnet")  # efficientnet: a family of 8 members


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache, and a zoo of a few specs (the whole zoo takes 1.5 s to list)."""
    from archcalc.spec import zoo

    specs = tmp_path / "specs"
    specs.mkdir()
    for name in SMALL_ZOO:
        (specs / f"{name}.yaml").write_bytes((zoo.specs_dir() / f"{name}.yaml").read_bytes())
    monkeypatch.setattr(zoo, "specs_dir", lambda: specs)
    folder = tmp_path / "cache"
    monkeypatch.setenv("ARCHCALC_CACHE_DIR", str(folder))
    monkeypatch.delenv("ARCHCALC_NO_CACHE", raising=False)
    return folder


def _file(folder):
    (file,) = folder.glob("zoo-*.json")  # one: a new code digest replaces the old file
    return file


def _listing(cli, fmt):
    code, out, err = cli("list", "-f", fmt)
    assert code == 0 and err == ""
    return out


def test_cached_listing_is_the_computed_one(cli, cache, monkeypatch):
    cold = {f: _listing(cli, f) for f in FORMATS}  # the first one computes and writes the cache
    assert len(json.loads(cold["json"])) == 3 + 8
    warm = {f: _listing(cli, f) for f in FORMATS}
    monkeypatch.setenv("ARCHCALC_NO_CACHE", "1")
    computed = {f: _listing(cli, f) for f in FORMATS}
    assert cold == warm == computed
    # real figures, not just agreement: vgg16's totals (tests/zoo/test_vgg.py works them out by hand)
    vgg = next(e for e in json.loads(computed["json"]) if e["name"] == "vgg16")
    assert (vgg["params"], vgg["macs"]) == (138_357_544, 15_470_264_320)
    # and the symbolic ones keep their closed form: three 3x3 convs, 3 * 9 * C**2 weights
    stack = next(e for e in json.loads(computed["json"]) if e["name"] == "stack3x3")
    assert stack["params"] == "27*C**2"


def _poison(file, name, **changes):
    doc = json.loads(file.read_text())
    doc["entries"][name]["entry"].update(changes.get("entry", {}))
    if "key" in changes:
        doc["entries"][name]["key"] = changes["key"]
    file.write_text(json.dumps(doc))


def test_an_entry_is_used_only_for_the_same_spec_bytes(cli, cache):
    _listing(cli, "json")
    file = _file(cache)
    # a cached figure under a key that is not the spec file's: recomputed, never shown
    _poison(file, "vgg16", entry={"params": 1}, key="0" * 64)
    vgg = next(e for e in json.loads(_listing(cli, "json")) if e["name"] == "vgg16")
    assert vgg["params"] == 138_357_544
    # the cache was repaired
    assert json.loads(file.read_text())["entries"]["vgg16"]["entry"]["params"] == 138_357_544


def test_a_damaged_cache_is_ignored(cli, cache):
    expected = _listing(cli, "csv")
    file = _file(cache)
    for damage in ("{not json", json.dumps({"format": 1, "entries": []}), json.dumps([1, 2]), ""):
        file.write_text(damage)
        assert _listing(cli, "csv") == expected
    _listing(cli, "csv")
    doc = json.loads(file.read_text())
    # an entry of the wrong shape (a bool where a count belongs) is recomputed too
    doc["entries"]["alexnet"]["entry"]["params"] = True
    file.write_text(json.dumps(doc))
    assert _listing(cli, "csv") == expected


def test_an_unwritable_cache_still_lists(cli, cache, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("ARCHCALC_CACHE_DIR", str(blocker / "below"))  # a directory under a file
    out = _listing(cli, "csv")
    assert "vgg16,3x224x224,138357544,15470264320," in out


def test_the_code_digest_covers_the_version_and_every_module(monkeypatch):
    """The digest changes with the version, it reads every .py file of the package (folders
    included, found here by os.walk), and one changed byte in a nested module changes it."""
    import archcalc.version
    from pathlib import Path

    base = zoocache.code_digest()
    monkeypatch.setattr(archcalc.version, "__version__", archcalc.version.__version__ + ".dev")
    assert zoocache.code_digest() != base
    monkeypatch.undo()
    root = os.path.dirname(os.path.dirname(os.path.abspath(zoocache.__file__)))  # the package, archcalc/
    files = {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
             if f.endswith(".py") and "__pycache__" not in d}
    assert os.path.join("analysis", "engine.py") in files and os.path.join("layers", "conv.py") in files
    read = set()
    real = Path.read_bytes

    def spy(self):
        read.add(os.path.relpath(os.path.abspath(self), root))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    assert zoocache.code_digest() == base
    assert read == files, (files - read, read - files)
    for changed in (os.path.join("analysis", "engine.py"), os.path.join("layers", "conv.py")):
        monkeypatch.setattr(Path, "read_bytes", lambda self, c=changed: real(self) + (
            b"#" if os.path.relpath(os.path.abspath(self), root) == c else b""))
        assert zoocache.code_digest() != base, changed
