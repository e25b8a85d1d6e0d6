"""The five commands end to end: the rows they print and export, and what they import."""

import json

import pandas as pd
import pytest

from conftest import run_process, torch_imported_by


def test_contract_figures(cli):
    cases = [
        (["flops", "mha:causal=false", "-p", "small", "-s", "1024", "--layers", "1"], "flops", 4_294_967_296),
        (["flops", "mha", "-p", "small", "-s", "1024", "--layers", "1"], "flops", 3_222_274_048),
        (["flops", "mha", "-p", "small", "-s", "1024", "--layers", "1", "--mode", "decode"], "flops", 4_196_352),
        (["kv-memory", "gqa:n_kv_heads=2", "-p", "small", "-s", "1024", "--layers", "1", "--dtype", "float16"],
         "kv_cache_bytes", 524_288),
    ]  # fmt: skip
    for args, column, want in cases:
        r = cli(*args, "--json", "-")
        assert r.code == 0, r.err
        assert r.rows()[0][column] == want


def test_kv_memory_grid_and_default_layers(cli):
    r = cli("kv-memory", "mha", "mqa", "gqa", "-p", "large", "-s", "1024,4096,32768", "--dtype", "bfloat16", "--json", "-")
    rows = r.rows()
    assert len(rows) == 9
    assert {row["layers"] for row in rows} == {24}  # large's n_layers
    by = {(row["label"], row["seq_len"]): row["kv_cache_bytes"] for row in rows}
    assert by[("mha", 32768)] == 32768 * 24 * 2 * 16 * 64 * 2
    assert by[("gqa-kv4", 4096)] == 4096 * 24 * 2 * 4 * 64 * 2
    assert by[("mqa", 1024)] == 1024 * 24 * 2 * 1 * 64 * 2
    assert "variant" in r.err and "KV cache" in r.err  # the table went to stderr


def test_flops_decode_for_two_variants_with_batch(cli):
    r = cli("flops", "mha", "gqa:n_kv_heads=2", "-p", "small", "-s", "2048", "--mode", "decode", "-b", "4", "--json", "-")
    mha, gqa = r.rows()
    layers = 6
    assert mha["flops"] == layers * 4 * (4 * 2 * 512 * 512 + 4 * 2049 * 512)
    assert gqa["proj_flops"] == layers * 4 * (2 * 512 * 64 * (8 + 4) + 2 * 512 * 512)
    assert (mha["mode"], mha["cache_tokens"], mha["batch"]) == ("decode", 2049, 4)


def test_table_on_stdout_without_exports(cli):
    r = cli("flops", "mha", "-s", "128")
    assert r.code == 0 and r.err == ""
    assert "FLOPs" in r.out and "mha" in r.out


def test_csv_and_json_files_hold_the_same_rows(cli, tmp_path):
    c, j = tmp_path / "r.csv", tmp_path / "r.json"
    r = cli("flops", "mha", "mqa", "gqa", "-s", "128,256", "--mode", "both", "--csv", c, "--json", j)
    assert r.code == 0
    from_csv = pd.read_csv(c)
    from_json = pd.DataFrame(json.loads(j.read_text()))
    assert list(from_csv.columns) == list(from_json.columns)
    assert len(from_csv) == 12
    assert from_csv.isna().equals(from_json.isna())  # empty cells and nulls in the same places
    full = lambda df: df.dropna(axis=1, how="all")  # noqa: E731
    pd.testing.assert_frame_equal(full(from_csv), full(from_json), check_dtype=False)


def test_presets_lists_sizes_with_their_shapes(cli):
    rows = cli("presets", "--json", "-").rows()
    shapes = {r["preset"]: (r["d_model"], r["n_heads"], r["head_dim"]) for r in rows}
    assert shapes["micro"] == (256, 4, 64) and shapes["small"] == (512, 8, 64)
    assert shapes["medium"] == (768, 12, 64) and shapes["large"] == (1024, 16, 64)


def test_bench_rows_measure_what_they_claim(cli):
    r = cli("bench", "mha", "gqa", "-p", "micro", "-s", "64", "--mode", "both", "--device", "cpu",
            "--min-time", "0", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.rows()
    assert [(x["label"], x["mode"]) for x in rows] == [("mha", "prefill"), ("gqa-kv2", "prefill"),
                                                        ("mha", "decode"), ("gqa-kv2", "decode")]  # fmt: skip
    import torch

    for row in rows:
        assert row["kv_cache_bytes_measured"] == row["kv_cache_bytes"]
        assert row["latency_ms_p25"] <= row["latency_ms_median"] <= row["latency_ms_p75"]
        assert row["n_runs"] >= 5
        assert row["gflops_per_s"] == pytest.approx(row["flops"] / (row["latency_ms_median"] * 1e-3) / 1e9)
        assert row["err_rel_l2"] <= 1e-5 and row["naive_err_rel_l2"] <= 1e-5
        assert (row["dtype"], row["device"], row["layers"], row["status"]) == ("float32", "cpu", 1, "ok")
        assert row["torch_version"] == torch.__version__ and row["threads"] >= 1 and row["device_name"]


def test_compare_ratios_against_the_first(cli):
    r = cli("compare", "mha", "gqa", "mqa", "-p", "micro", "-s", "64", "--device", "cpu", "--min-time", "0",
            "--json", "-")  # fmt: skip
    mha, gqa, mqa = r.rows()
    assert mha["speedup_vs_base"] == 1.0 and mha["kv_ratio_vs_base"] == 1.0
    assert gqa["kv_ratio_vs_base"] == 0.5 and mqa["kv_ratio_vs_base"] == 0.25  # 2 and 1 of 4 KV heads
    # the median of the per-round ratios (tests/test_interleave.py), inside their p25–p75
    assert gqa["speedup_vs_base_p25"] <= gqa["speedup_vs_base"] <= gqa["speedup_vs_base_p75"]
    assert mqa["flops_ratio_vs_base"] == pytest.approx(mqa["flops"] / mha["flops"])
    assert {x["base_label"] for x in (mha, gqa, mqa)} == {"mha"}


def test_interrupted_bench_keeps_finished_rows(cli, tmp_path, monkeypatch):
    from attncli.measure import bench

    real, calls = bench.measure_row, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "measure_row", flaky)
    out = tmp_path / "partial.csv"
    r = cli("bench", "mha", "mqa", "gqa", "-p", "micro", "-s", "32", "--device", "cpu", "--min-time", "0", "--csv", out)
    assert r.code == 130
    assert "interrupted after 1 of 3 rows" in r.err
    assert list(pd.read_csv(out)["label"]) == ["mha"]


ANALYTIC = [["kv-memory", "mha", "-s", "1024"], ["flops", "gqa", "--mode", "both"], ["presets"], ["--help"],
            ["bench", "--help"], ["kv-memory", "gqq"]]  # fmt: skip


@pytest.mark.parametrize("args", ANALYTIC, ids=" ".join)
def test_analytic_commands_never_import_torch(args):
    imported, _ = torch_imported_by(args)
    assert not imported


def test_module_entry_point_and_version():
    r = run_process("--version")
    assert r.code == 0 and r.out.startswith("attncli ")
    r = run_process()
    assert r.code == 0 and "kv-memory" in r.out
