"""Tensor-parallel measurement (--tp): the shard layout, the sharded layer's numbers, refusals.

Expected values are derived by hand (heads per rank from vLLM's rule, KV bytes from the cache
shapes, all-reduce bytes = batch × new tokens × d_model × dtype bytes) or come from an independent
path (kv-memory --tp, the unsharded float64 layer)."""

import json

import pytest
import torch

from attncli import presets, registry
from attncli.cli import main
from attncli.spec import PresetSpec
from attncli.variants import sharding

# 8 query heads of 8 (d_model 64): every T in 1, 2, 4, 8 divides the heads; gqa has 2 KV heads.
SHARD = PresetSpec(name="shard", d_model=64, n_heads=8, n_layers=1, variants={
    "gqa": {"n_kv_heads": 2},
    "mla": {"kv_lora_rank": 16, "q_lora_rank": 24, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8}})  # fmt: skip


def test_layout_follows_vllm_rule():
    """Query heads split evenly; KV heads split while T ≤ g, then each is held by T/g ranks
    (vLLM: shard_id = tp_rank // (T / g)). gqa: 8 query heads, 2 KV heads."""
    spec = presets.parse_variant("gqa", SHARD)
    kv = {tp: [list(sharding.layout(spec, r, tp).kv_heads) for r in range(tp)] for tp in (1, 2, 4, 8)}
    assert kv[1] == [[0, 1]]
    assert kv[2] == [[0], [1]]
    assert kv[4] == [[0], [0], [1], [1]]  # T/g = 2 replicas of each KV head
    assert kv[8] == [[0]] * 4 + [[1]] * 4
    q = [list(sharding.layout(spec, r, 4).q_heads) for r in range(4)]
    assert q == [[0, 1], [2, 3], [4, 5], [6, 7]]
    # each local query head keeps the KV head it had: global head i uses KV head i // (8 / 2)
    for tp in (1, 2, 4, 8):
        for r in range(tp):
            lay = sharding.layout(spec, r, tp)
            local = sharding.local_spec(spec, tp)
            for j, head in enumerate(lay.q_heads):
                assert lay.kv_heads[j // local.group_size] == head // 4


VARIANTS = ["mha", "gqa", "mqa", "mla:absorb=true", "mla:absorb=false", "cross:memory_len=12", "linear",
            "gqa:position=alibi", "swa:window=5", "gqa:sinks=true,qk_norm=true,softcap=20",
            "gqa:qk_norm=true,qk_norm_type=layer"]  # fmt: skip


@pytest.mark.parametrize("variant, tp", [(v, t) for v in VARIANTS for t in (2, 4)] + [("gqa", 8), ("mla", 8)])
def test_shards_sum_to_the_whole_layer(variant, tp):
    """Σ over ranks of each shard's partial output (what the all-reduce adds) = the unsharded
    layer's output, prefill and decode, in float64."""
    spec = presets.parse_variant(variant, SHARD)
    torch.manual_seed(0)
    full = registry.get(spec.family).build(spec).double().eval()
    with torch.no_grad():  # sinks start at 0 and norm weights at 1: make every head's differ
        for name, w in full.named_parameters():
            if "proj" not in name:
                w.copy_(torch.rand_like(w) + 0.5)
    x = torch.randn(2, 9, spec.d_model, dtype=torch.float64)
    memory = torch.randn(2, 12, spec.d_model, dtype=torch.float64)
    shards = [sharding.shard(full, spec, r, tp) for r in range(tp)]
    for m in [full, *shards]:
        if getattr(m, "memory_len", 0):
            m.set_memory(memory)

    def decode(m):
        cache = m.allocate_cache(2, 9)
        m.fill_cache(cache, x[:, :8])
        return m.step(x[:, 8:], cache, 8)

    with torch.inference_mode():
        torch.testing.assert_close(sum(s(x)[0] for s in shards), full(x)[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(sum(decode(s) for s in shards), decode(full), rtol=0, atol=1e-12)


def _err_line(cli, *args):
    r = cli(*args)
    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err
    return lines[0]


@pytest.mark.parametrize("variant, tp", [("gqa", "3"), ("mla", "3"), ("linear", "16")])
def test_layout_that_cannot_shard_is_exit_2_as_kv_memory(cli, variant, tp):
    """bench --tp refuses what kv-memory --tp refuses, with the same words (one rule: serving.py).
    small has 8 query heads."""
    bench = _err_line(cli, "bench", variant, "-p", "small", "--tp", tp, "--device", "cpu")
    assert f"--tp: {tp} does not divide the 8 attention heads" in bench
    assert bench == _err_line(cli, "kv-memory", variant, "-p", "small", "--tp", tp)


def test_kv_heads_not_dividing_is_exit_2(cli):
    """6 KV heads over 4 ranks: neither divides the other (vLLM's rule), refused before any rank starts."""
    variant = "gqa:n_heads=12,n_kv_heads=6,head_dim=32"
    bench = _err_line(cli, "bench", variant, "-p", "small", "--tp", "4", "--device", "cpu")
    assert bench == _err_line(cli, "kv-memory", variant, "-p", "small", "--tp", "4")
    assert "4 does not divide the 6 KV heads" in bench


@pytest.mark.parametrize("args, what", [
    (["--compile"], "cannot be combined with --compile"),
    (["--verify-flops"], "cannot be combined with --verify-flops"),
    (["--tp-timeout", "0"], "--tp-timeout: 0.0 must be positive"),
    (["--device", "mps"], "no torch.distributed backend runs on MPS tensors"),
])  # fmt: skip
def test_options_tp_does_not_take_are_exit_2(cli, args, what):
    device = [] if "--device" in args else ["--device", "cpu"]
    assert what in _err_line(cli, "bench", "gqa", "--tp", "2", *device, *args)


def test_qk_norm_over_the_projection_is_exit_2(cli):
    line = _err_line(cli, "bench", "gqa:qk_norm=true,qk_norm_over=proj", "--tp", "2", "--device", "cpu")
    assert "normalises q and k over the whole projection" in line


def test_sweep_tp_without_measure_sizes_the_cache_per_gpu(cli):
    # issue 13: an analytic sweep's --tp is kv-memory's per-GPU sizing (tests/test_hfconfig_sweep.py)
    rows = cli("sweep", "gqa", "--tp", "1,2", "-s", "64", "-m", "prefill", "--json", "-").rows()
    assert [(r["tp"], r["kv_heads_per_gpu"]) for r in rows] == [(1, 2), (2, 1)]
    assert "--tp: 3 does not divide" in _err_line(cli, "sweep", "gqa", "--tp", "3", "-s", "64")


def test_tp_refusals_do_not_import_torch():
    from conftest import torch_imported_by

    imported, codes = torch_imported_by(["bench", "gqa", "--tp", "3", "--device", "cpu"],
                                        ["sweep", "gqa", "--tp", "3", "-s", "64"])  # fmt: skip
    assert codes == [2, 2] and not imported


# ---------------------------------------------------------------------------------------------
# the sharded layer measured over two gloo ranks started by attncli


def _kv_memory_bytes(cli, variant, preset, tp, tokens, batch):
    r = cli("kv-memory", variant, "-p", preset, "--tp", tp, "-s", tokens, "-b", batch, "--layers", "1",
            "--dtype", "float32", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    (row,) = r.rows()
    return row["kv_cache_bytes"], row["kv_heads_per_gpu"]


TP2_VARIANTS = {"mha": "mha", "gqa-kv2": "gqa", "mqa": "mqa", "mla-r256-naive": "mla:absorb=false",
                "mla-r256-absorb": "mla:absorb=true", "cross-m16": "cross:memory_len=16", "linear": "linear"}  # label: variant


@pytest.fixture(scope="module")
def tp2_rows(tmp_path_factory):
    """One run: mha, gqa, mqa, mla (both paths), cross and linear × prefill and decode, two gloo ranks."""
    out = tmp_path_factory.mktemp("tp") / "rows.json"
    code = main(["bench", "mha", "gqa", "mqa", "mla", "cross:memory_len=16", "linear", "-p", "micro", "-s", "24", "-b", "2", "-m", "prefill,decode",
                 "--tp", "2", "--device", "cpu", "--min-time", "0", "--json", str(out)])  # fmt: skip
    assert code == 0
    return json.loads(out.read_text())


def test_tp2_rows_against_independent_figures(tp2_rows, cli):
    """micro: d_model 256, 4 heads of 64; gqa 2 KV heads; mla latent 256 + RoPE 32; cross 4 KV
    heads over a 16-token memory; linear 4 heads with a 64 × 64 state (+ 64 normaliser) each."""
    B, L, d = 2, 24, 256
    assert [(r["label"], r["mode"]) for r in tp2_rows] == [(v, m) for m in ("prefill", "decode") for v in TP2_VARIANTS]
    # KV heads per rank, max(1, g / 2): MQA's one head on both ranks; MLA's latent and linear's state not split by KV head
    heads = {"mha": 2, "gqa-kv2": 1, "mqa": 1, "mla-r256-naive": None, "mla-r256-absorb": None, "cross-m16": 2,
             "linear": None}  # fmt: skip

    def per_rank_by_hand(label, tokens):  # cache elements one rank holds, × batch × 4 bytes
        if label.startswith("mla"):
            return (256 + 32) * tokens * B * 4  # the whole latent + RoPE key on every rank
        if label == "linear":
            return 2 * (64 * 64 + 64) * B * 4  # its 2 heads' state S and normaliser z, whatever the length
        if label == "cross-m16":
            return 2 * 2 * 64 * 16 * B * 4  # K and V of its 2 heads over the memory, whatever the length
        return 2 * heads[label] * 64 * tokens * B * 4  # K and V of its KV heads

    for r in tp2_rows:
        tokens = L if r["mode"] == "prefill" else L + 1  # decode: the cache holds the new token too
        new = L if r["mode"] == "prefill" else 1
        assert (r["tp"], r["tp_backend"], r["tp_launcher"], r["status"]) == (2, "gloo", "spawn", "ok")
        assert r["err_rel_l2"] <= 1e-6 and r["tp_err_rel_l2"] <= 1e-6, r
        assert r["allreduce_bytes"] == B * new * d * 4  # float32
        kv, kv_heads = _kv_memory_bytes(cli, TP2_VARIANTS[r["label"]], "micro", 2, tokens, B)
        assert r["kv_cache_bytes_per_rank"] == kv == per_rank_by_hand(r["label"], tokens)
        assert r["kv_heads_per_gpu"] == kv_heads == heads[r["label"]]
        assert r["kv_cache_bytes_measured"] == 2 * r["kv_cache_bytes_per_rank"]  # two ranks, replicas counted
        assert r["latency_ms_median"] > 0 and r["allreduce_ms"] > 0 and r["n_runs"] >= 5
        assert r["tp_slowest_rank"] in (0, 1)


def test_gqa_with_more_ranks_than_kv_heads(tmp_path):
    """gqa on micro has 2 KV heads; 4 ranks each hold one, replicated twice (the T > n_kv_heads case)."""
    out = tmp_path / "rows.json"
    assert main(["bench", "gqa", "-p", "micro", "-s", "16", "-m", "prefill,decode", "--tp", "4", "--device", "cpu",
                 "--min-time", "0", "--json", str(out)]) == 0  # fmt: skip
    rows = json.loads(out.read_text())
    for r in rows:
        tokens = 16 if r["mode"] == "prefill" else 17
        assert r["tp"] == 4 and r["kv_heads_per_gpu"] == 1
        assert r["kv_cache_bytes_per_rank"] == 2 * 1 * 64 * tokens * 1 * 4
        assert r["kv_cache_bytes_measured"] == 4 * r["kv_cache_bytes_per_rank"]
        assert r["err_rel_l2"] <= 1e-6 and r["tp_err_rel_l2"] <= 1e-6
        assert r["allreduce_bytes"] == (16 if r["mode"] == "prefill" else 1) * 256 * 4
