"""Strict presets and variant arguments: what loads, what each field means, what is refused."""

import re
from pathlib import Path

import pytest

from attncli import presets
from attncli.errors import InputError
from attncli.presets import preset_paths

SIZES = {"micro": (256, 4), "small": (512, 8), "medium": (768, 12), "large": (1024, 16)}


@pytest.mark.parametrize("name,shape", SIZES.items())
def test_size_presets_match_the_published_shapes(name, shape):
    p = presets.load_preset(name)
    assert (p.d_model, p.n_heads) == shape
    assert p.d_model // p.n_heads == 64
    assert p.d_ff == 4 * p.d_model


def test_default_preset_is_small():
    assert presets.load_preset(None).name == "small"


@pytest.mark.parametrize("path", sorted(preset_paths().values()), ids=lambda p: p.stem)
def test_every_field_of_every_preset_carries_a_comment(path):
    for line in Path(path).read_text().splitlines():
        if re.match(r"^\s*[a-z_]+:\s*\S", line) and not line.lstrip().startswith(("name:", "description:", "source:")):
            assert "#" in line, f"{path.name}: no comment on {line.strip()!r}"


@pytest.mark.parametrize("arg,label,kv", [
    ("mha", "mha", 8), ("mqa", "mqa", 1), ("gqa", "gqa-kv2", 2), ("gqa:n_kv_heads=4", "gqa-kv4", 4),
    ("mha:causal=false", "mha-bidir", 8), ("gqa:n_kv_heads=1,position=none", "gqa-kv1-nope", 1),
    ("mha:label=mine", "mine", 8), ("mha:causal=true", "mha", 8),
])  # fmt: skip
def test_variant_arguments_and_labels(arg, label, kv):
    spec = presets.parse_variant(arg, presets.load_preset("small"))
    assert (spec.label, spec.n_kv_heads, spec.head_dim) == (label, kv, 64)


def test_overriding_heads_rederives_head_dim():
    spec = presets.parse_variant("mha:n_heads=16", presets.load_preset("small"))
    assert (spec.n_heads, spec.head_dim, spec.label) == (16, 32, "mha-h16")


def test_gqa_default_follows_the_preset_and_the_fallback_rule():
    from attncli.registry import default_kv_heads

    assert [presets.parse_variant("gqa", presets.load_preset(n)).n_kv_heads for n in SIZES] == [2, 2, 3, 4]
    assert [default_kv_heads(h) for h in (1, 4, 8, 12, 32, 64)] == [1, 1, 2, 3, 8, 16]


def test_variant_yaml_file_with_overrides(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("family: gqa  # the family\nn_kv_heads: 4\ncausal: false\n")
    small = presets.load_preset("small")
    assert presets.parse_variant(str(f), small).label == "gqa-kv4-bidir"
    assert presets.parse_variant(f"{f}:n_kv_heads=2", small).n_kv_heads == 2


def test_preset_yaml_file(tmp_path):
    f = tmp_path / "wide.yaml"
    f.write_text("d_model: 2048\nn_heads: 16\nhead_dim: 128\nn_layers: 3\n")
    p = presets.load_preset(str(f))
    spec = presets.parse_variant("gqa", p)
    assert (p.name, p.n_layers, spec.head_dim, spec.n_kv_heads) == ("wide", 3, 128, 4)


def bad(arg=None, preset_text=None, tmp_path=None, preset="small"):
    if preset_text is not None:
        f = tmp_path / "p.yaml"
        f.write_text(preset_text)
        preset = str(f)
    with pytest.raises(InputError) as e:
        presets.parse_variant(arg or "mha", presets.load_preset(preset))
    return e.value.message


@pytest.mark.parametrize("arg,expected", [
    ("gqq", "gqq: unknown variant 'gqq'; did you mean 'gqa'? (choices: mha, mqa, gqa"),
    ("gqa:n_kv_head=2", "gqa:n_kv_head=2: unknown key 'n_kv_head' for gqa; did you mean 'n_kv_heads'?"),
    ("gqa:n_kv_heads=3", "gqa:n_kv_heads=3: n_kv_heads: 3 does not divide n_heads 8"),
    ("gqa:n_kv_heads=16", "n_kv_heads: 16 exceeds n_heads 8"),
    ("gqa:n_kv_heads=0", "n_kv_heads: 0 must be positive"),
    ("gqa:n_kv_heads=two", "n_kv_heads: 'two' is not an integer"),
    ("gqa:n_kv_heads=2.5", "n_kv_heads: 2.5 is not an integer"),
    ("mha:causal=maybe", "causal: 'maybe' is not true or false"),
    ("mha:position=sinusoid", "position: 'sinusoid' is not one of rope, none"),
    ("mha:n_heads=7", "n_heads: 7 does not divide d_model 512"),
    ("mha:n_kv_heads=2", "n_kv_heads: mha fixes n_kv_heads; use gqa:n_kv_heads=N"),
    ("gqa:n_kv_heads", "override 'n_kv_heads' is not key=value"),
    ("gqa:n_kv_heads=2,n_kv_heads=4", "override 'n_kv_heads' is given twice"),
    ("gqa:", "nothing after ':'"),
    ("mha:head_dim=63", "head_dim: 63 must be even for position rope"),
])  # fmt: skip
def test_bad_variants_name_the_culprit(arg, expected):
    assert expected in bad(arg)


@pytest.mark.parametrize("text,expected", [
    ("d_model: 512\nn_head: 8\n", "unknown key 'n_head'; did you mean 'n_heads'?"),
    ("d_model: 512\nn_heads: 8\nn_heads: 4\n", "duplicate key 'n_heads' (line 3)"),
    ("d_model: [512\n", "malformed YAML"),
    ("!!python/object:os.system {}\n", "YAML tag '!!python/object:os.system' is not allowed"),
    ("d_model: !!python/name:os.system\nn_heads: 8\n", "YAML tag '!!python/name:os.system' is not allowed"),
    ("", "is empty"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("d_model: 512\nn_heads: 3\n", "n_heads: 3 does not divide d_model 512"),
    ("d_model: -512\nn_heads: 8\n", "d_model: -512 must be positive"),
    ("d_model: 512\nn_heads: 8\nvariants:\n  gqa:\n    kv_heads: 2\n", "unknown key 'variants.gqa.kv_heads' for gqa; did you mean 'n_kv_heads'?"),
    ("d_model: 512\nn_heads: 8\nvariants:\n  gga: {}\n", "unknown variant 'gga'; did you mean 'gqa'?"),
])  # fmt: skip
def test_bad_preset_files_name_the_file_and_key(tmp_path, text, expected):
    message = bad(preset_text=text, tmp_path=tmp_path)
    assert message.startswith(str(tmp_path / "p.yaml") + ": ")
    assert expected in message


def test_unknown_and_missing_presets():
    with pytest.raises(InputError, match="unknown preset 'smal'; did you mean 'small'"):
        presets.load_preset("smal")
    with pytest.raises(InputError, match="nope.yaml: no such file"):
        presets.load_preset("nope.yaml")


def test_binary_file_is_refused(tmp_path):
    f = tmp_path / "bin.yaml"
    f.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(InputError, match="is not a UTF-8 text file"):
        presets.load_preset(str(f))
