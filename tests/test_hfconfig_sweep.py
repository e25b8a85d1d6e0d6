"""`sweep` over a real model: --hf-config, model presets, --tp, fp8/int8 --dtype, --kv-scales. The
rows are kv-memory's sizing (tested by hand in test_hfconfig_published.py); here one figure is
checked by hand again and every row against kv-memory's."""

import csv
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf"


def test_sweep_a_config_at_tp_8_in_fp8_with_a_plot(cli, tmp_path):
    plot, table = tmp_path / "kv.png", tmp_path / "s.csv"
    r = cli("sweep", "--hf-config", FIXTURES / "llama-3.1-8b", "-s", "1024:131072", "--tp", "8", "--dtype", "fp8",
            "--plot", plot, "--csv", table)  # fmt: skip
    assert r.code == 0, r.err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 8 * 2  # 1,024 … 131,072 doubling, prefill and decode
    prefill = {int(r["seq_len"]): r for r in rows if r["mode"] == "prefill"}
    # 32 layers × K and V × (8 KV heads / 8 GPUs) × 128 × 131,072 tokens × 1 byte; k_scale + v_scale per layer
    assert int(prefill[131072]["kv_cache_bytes"]) == 32 * 2 * 1 * 128 * 131072
    assert (prefill[131072]["tp"], prefill[131072]["kv_scales"], prefill[131072]["kv_scale_bytes"]) == ("8", "per-tensor", str(32 * 2 * 4))
    assert "flops" not in rows[0]  # the FLOP columns are a whole model's, not one GPU's: left out at TP > 1
    decode = {int(r["seq_len"]): r for r in rows if r["mode"] == "decode"}
    assert int(decode[1024]["kv_cache_bytes"]) == 32 * 2 * 1 * 128 * 1025  # after one decode step
    for L, row in prefill.items():
        kv = cli("kv-memory", "--hf-config", FIXTURES / "llama-3.1-8b", "-s", str(L), "--tp", "8", "--dtype", "fp8",
                 "--json", "-").rows()[-1]  # fmt: skip
        assert int(row["kv_cache_bytes"]) == kv["kv_cache_bytes"]


def test_sweep_a_hybrid_model_and_a_model_preset(cli, tmp_path):
    r = cli("sweep", "--hf-config", FIXTURES / "jamba-v0.1", "-s", "1000,20000", "-m", "prefill", "--dtype", "int8",
            "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.rows()
    for row in rows:
        kv = cli("kv-memory", "--hf-config", FIXTURES / "jamba-v0.1", "-s", str(row["seq_len"]), "--dtype", "int8",
                 "--json", "-").rows()[-1]  # fmt: skip
        assert (row["kv_cache_bytes"], row["ssm_state_bytes"], row["kv_scale_bytes"]) == (
            kv["kv_cache_bytes"], kv["ssm_state_bytes"], kv["kv_scale_bytes"])  # fmt: skip
    assert rows[0]["layer_kind"] == "28 mamba + 4 full" and rows[0]["kv_scales"] == "per-token-head"
    gemma = cli("sweep", "-p", "gemma-2-9b", "-s", "8192", "-m", "prefill", "--json", "-").rows()[0]
    # the preset's own layers: 21 sliding at 4,096 + 21 full, 8 KV heads of 256, bfloat16
    assert gemma["kv_cache_bytes"] == 21 * 2 * 8 * 256 * 2 * (4096 + 8192) and "flops" not in gemma


def test_sweep_serving_options_are_checked(cli, tmp_path):
    r = cli("sweep", "-p", "small", "-s", "128", "--tp", "3")
    assert r.code == 2 and "--tp: 3 does not divide the 8 attention heads" in r.err, r.err
    r = cli("sweep", "-p", "small", "-s", "128", "--measure", "--dtype", "float32", "--kv-scales", "per-tensor")
    assert r.code == 2 and r.err.startswith("attncli: --kv-scales: sizes the cache of an analytic sweep"), r.err
    table = tmp_path / "s.csv"
    assert cli("sweep", "gqa", "-p", "small", "-s", "128", "-m", "prefill", "--tp", "2", "--csv", table).code == 0
    r = cli("sweep", "gqa", "-p", "small", "-s", "128", "-m", "prefill", "--tp", "2,4", "--csv", table, "--resume")
    assert r.code == 0, r.err  # tp is a key: the TP 4 row is added, the TP 2 one kept
    rows = list(csv.DictReader(table.open()))
    assert [(r["tp"], r["kv_heads_per_gpu"]) for r in rows] == [("2", "1"), ("4", "1")]  # small's gqa: 2 KV heads
    r = cli("sweep", "gqa", "-p", "small", "-s", "128", "-m", "prefill", "--tp", "2", "--dtype", "fp8", "--csv", table,
            "--resume")  # fmt: skip
    assert r.code == 2 and "was written with dtype=bfloat16, this sweep has dtype=fp8" in r.err, r.err
    plain = cli("sweep", "mha", "-p", "small", "-s", "128", "-m", "prefill", "--json", "-").rows()[0]
    assert "kv_heads_per_gpu" not in plain  # a size preset, no --tp, bfloat16: the seed's analytic rows
