"""`mla` on the command line: both paths as rows, one row when a path is chosen, errors, no torch."""


import pytest

from attncli import presets
from attncli.rows import analytic_row
from attncli.spec import Shape
from conftest import torch_imported_by


def test_flops_shows_both_paths_in_both_modes(cli):
    r = cli("flops", "mla", "-p", "large", "-s", 4096, "--mode", "both", "--layers", 1, "--json", "-")
    assert r.code == 0, r.err
    rows = r.rows()
    assert [(row["label"], row["mode"]) for row in rows] == [
        ("mla-r256-naive", "prefill"), ("mla-r256-absorb", "prefill"),
        ("mla-r256-naive", "decode"), ("mla-r256-absorb", "decode"),
    ]  # fmt: skip
    large = presets.load_preset("large")
    for row in rows:
        spec = presets.parse_variant(f"mla:absorb={str(row['absorb']).lower()}", large)
        assert row["flops"] == analytic_row(spec, large, Shape(row["mode"], 4096), 1, "bfloat16")["flops"]
    naive_prefill, absorbed_prefill, naive_decode, absorbed_decode = (row["flops"] for row in rows)
    assert naive_prefill < absorbed_prefill and absorbed_decode < naive_decode


@pytest.mark.parametrize("arg,label", [("mla:absorb=true", "mla-r256-absorb"), ("mla:absorb=false", "mla-r256-naive")])
def test_a_chosen_path_gives_one_row(cli, arg, label):
    r = cli("flops", arg, "--json", "-")
    assert r.code == 0, r.err
    assert [row["label"] for row in r.rows()] == [label]


def test_kv_memory_gives_one_row_the_cache_being_the_same(cli):
    r = cli("kv-memory", "mha", "mla", "-p", "large", "-s", 1000, "--layers", 1, "--json", "-")
    assert r.code == 0, r.err
    mha, mla = r.rows()
    assert mla["label"] == "mla-r256" and mla["kv_cache_bytes"] == 1000 * (256 + 32) * 2
    assert mha["kv_cache_bytes"] == 1000 * 2 * 16 * 64 * 2


def test_a_label_given_to_both_paths_is_suffixed(cli):
    r = cli("flops", "mla:label=lite", "--json", "-")
    assert [row["label"] for row in r.rows()] == ["lite-naive", "lite-absorb"]


@pytest.mark.parametrize("arg,message", [
    ("mla:head_dim=64", "mla:head_dim=64: head_dim: mla fixes head_dim; mla derives it as qk_nope_head_dim + qk_rope_head_dim; set those"),
    ("mla:kv_lora_rank=0", "mla:kv_lora_rank=0: kv_lora_rank: 0 must be positive"),
    ("mla:q_lora_rank=-3", "mla:q_lora_rank=-3: q_lora_rank: -3 must be positive"),
    ("mla:qk_rope_head_dim=3", "mla:qk_rope_head_dim=3: qk_rope_head_dim: 3 must be even for position rope"),
    ("mla:absorb=maybe", "mla:absorb=maybe: absorb: 'maybe' is not true or false"),
    ("mla:kv_lora_rnk=8", "mla:kv_lora_rnk=8: unknown key 'kv_lora_rnk' for mla; did you mean 'kv_lora_rank'?"),
])  # fmt: skip
def test_bad_mla_fields_are_one_line_errors(cli, arg, message):
    r = cli("flops", arg)
    assert r.code == 2
    assert r.err == f"attncli: {message}\n"


def test_odd_rope_width_is_fine_without_rotation(cli):
    r = cli("kv-memory", "mla:qk_rope_head_dim=3,position=none", "-s", 10, "--layers", 1, "--json", "-")
    assert r.code == 0 and r.rows()[0]["kv_cache_bytes"] == 10 * (256 + 3) * 2


def test_analytic_mla_commands_do_not_import_torch():
    imported, codes = torch_imported_by(["flops", "mla", "--mode", "both", "--json", "-"], ["kv-memory", "mla", "--json", "-"])
    assert codes == [0, 0] and not imported


def test_compare_shows_mla_paths_beside_mha_and_gqa(cli):
    r = cli("compare", "mha", "gqa", "mla", "-p", "micro", "--mode", "decode", "-s", 16, "--device", "cpu",
            "--dtype", "float32", "--min-time", 0, "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.rows()
    assert [row["label"] for row in rows] == ["mha", "gqa-kv2", "mla-r256-naive", "mla-r256-absorb"]
    for row in rows:
        assert row["kv_cache_bytes_measured"] == row["kv_cache_bytes"]
        assert row["err_rel_l2"] <= 1e-5 and row["speedup_vs_base"] > 0
    assert rows[2]["kv_ratio_vs_base"] == rows[3]["kv_ratio_vs_base"] == 288 / 512
