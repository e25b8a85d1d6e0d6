"""--verify-flops: the analytic count of the plain-math path is the count of what that path runs,
for every family, prefill and decode, at 64 and 4,096 tokens; a wrong count still fails.

FlopCounterMode counts from shapes, so the 4,096-token cases run the math path on the `meta`
device (no data, the same Python and the same aten calls): the count is exact and costs nothing.
The 64-token cases run on real CPU tensors, through `bench --verify-flops` as a user runs it.
"""

import dataclasses

import pytest
import torch

from attncli import cost, presets, registry
from attncli.rows import layer_kinds, math_path_flops
from attncli.spec import Shape
from attncli.variants.hybrid import HybridStack
from conftest import counted

MICRO = presets.load_preset("micro")  # d_model 256, 4 heads of 64; mla r 256, nope 64, rope 32, v 64
VARIANTS = ["mha", "gqa", "mqa", "swa", "swa:window=300", "gqa:window=100,causal=false", "cross", "linear",
            "linear:causal=false", "mla:absorb=false", "mla:absorb=true", "mha:position=alibi"]  # fmt: skip


def math_path_count(spec, shape: Shape, device: str, dtype=torch.float32) -> int:
    """FlopCounterMode on the module's plain-math path doing `shape` (prefill: the sequence;
    decode: one token against a cache filled with seq_len tokens)."""
    torch.manual_seed(0)
    module = (HybridStack(spec, len(spec.layers)) if spec.family == "hybrid" else registry.get(spec.family).build(spec))
    module = module.to(device=device, dtype=dtype).eval()
    B, L = shape.batch, shape.seq_len
    if getattr(module, "memory_len", 0):
        module.set_memory(torch.randn(B, module.memory_len, spec.d_model, device=device, dtype=dtype))
    x = torch.randn(B, L + 1, spec.d_model, device=device, dtype=dtype)
    with torch.inference_mode():
        if shape.mode == "prefill":
            return counted(lambda: module(x[:, :L], math=True))
        cache = module.allocate_cache(B, L + 1)
        if device != "meta":  # on meta the step's count depends on shapes only: an empty cache will do
            module.fill_cache(cache, x[:, :L])
        return counted(lambda: module.step(x[:, L:], cache, L, math=True))


# -- the schedule's pair count, by hand ------------------------------------------------------------


def test_pairs_of_a_blocked_causal_prefill_by_hand():
    # blocks of 16 queries: block k (queries 16k..16k+15) scores keys 0..16(k+1)-1
    assert cost.math_path_pairs(64, 64, 16, causal=True) == sum(16 * 16 * (k + 1) for k in range(4)) == 2560
    assert cost.math_path_pairs(64, 64, 64, causal=True) == 64 * 64  # one block: the whole n×n matrix
    assert cost.math_path_pairs(64, 64, 1, causal=True) == 64 * 65 // 2  # one query per block: the causal pairs


def test_pairs_of_a_blocked_window_by_hand():
    # n = 10, W = 3, blocks of 4: causal [0,4)×[0,4), [4,8)×[2,8), [8,10)×[6,10)
    assert cost.math_path_pairs(10, 10, 4, causal=True, window=3) == 4 * 4 + 4 * 6 + 2 * 4 == 48
    # without the causal mask each block also reaches W − 1 keys past its last query
    assert cost.math_path_pairs(10, 10, 4, causal=False, window=3) == 4 * 6 + 4 * 8 + 2 * 4 == 64


def test_block_size_follows_the_score_budget_and_the_window():
    assert cost.math_query_block(1, 4, 4096, 4) == 256 * 2**20 // (4 * 4096 * 4) == 4096
    assert cost.math_query_block(4, 4, 4096, 4) == 1024  # a batch of 4 splits micro's 4,096 queries in 4
    assert cost.math_query_block(1, 4, 4096, 4, window=300) == 300
    assert cost.math_query_block(1, 4, 4096, 4, window=16) == 64


def test_blocked_causal_prefill_on_real_tensors_equals_the_hand_count(monkeypatch):
    """Real CPU tensors, scores budget forced to blocks of 16 queries (1 × 4 heads × 64 keys × 4 bytes
    = 1 KiB per query): FlopCounterMode, the count and a hand derivation agree."""
    monkeypatch.setattr(cost, "MATH_MAX_SCORE_BYTES", 16 * 1024)
    spec, shape = presets.parse_variant("mha", MICRO), Shape("prefill", 64)
    n, d, h, hd = 64, 256, 4, 64
    by_hand = 2 * n * d * hd * (3 * h) + 2 * n * h * hd * d + 2 * 2 * 2560 * h * hd  # QKV, O; scores and p·v
    assert math_path_count(spec, shape, "cpu") == math_path_flops(spec, shape) == by_hand


# -- every family, prefill and decode, 64 and 4,096 tokens -----------------------------------------


@pytest.mark.parametrize("mode", ["prefill", "decode"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_math_path_count_at_64_tokens_on_real_tensors(variant, mode):
    spec = presets.parse_variant(variant, MICRO)
    shape = Shape(mode, 64, 2)
    assert math_path_count(spec, shape, "cpu") == math_path_flops(spec, shape, element_bytes=4)


# batch 4: a prefill's queries no longer fit one block (1,024 per block); decode has one query
@pytest.mark.parametrize("mode,batch", [("prefill", 1), ("prefill", 4), ("decode", 1)])
@pytest.mark.parametrize("variant", VARIANTS)
def test_math_path_count_at_4096_tokens(variant, mode, batch):
    spec = presets.parse_variant(variant, MICRO)
    shape = Shape(mode, 4096, batch)
    assert math_path_count(spec, shape, "meta") == math_path_flops(spec, shape, element_bytes=4)


def test_long_blocked_causal_prefill_is_between_the_causal_and_the_full_count():
    spec = presets.parse_variant("mha", MICRO)
    shape = Shape("prefill", 4096, 4)  # 4 blocks of 1,024 queries: keys up to each block's last query
    pairs = sum(1024 * 1024 * (k + 1) for k in range(4))
    n, d, h, hd = 4096, 256, 4, 64
    proj = 2 * n * d * hd * (3 * h) + 2 * n * h * hd * d
    assert math_path_count(spec, shape, "meta") == 4 * (proj + 4 * pairs * h * hd)
    assert 4096 * 4097 // 2 < pairs < 4096 * 4096


@pytest.mark.parametrize("mode", ["prefill", "decode"])
@pytest.mark.parametrize("seq_len", [64, 4096])
def test_hybrid_stack_math_path_is_the_sum_of_its_layer_kinds(mode, seq_len):
    """The whole 8-layer stack (7 linear + gqa) on its math path, against Σ count × each kind's count:
    what a stack's `flops_math_path_model` totals."""
    spec = presets.parse_variant("hybrid", MICRO)
    shape = Shape(mode, seq_len, 1)
    expected = sum(count * math_path_flops(kind, shape) for kind, count in layer_kinds(spec, 8))
    assert math_path_count(spec, shape, "meta") == expected


# -- through the CLI: per-layer and model columns; a wrong count fails -----------------------------

CLI = ["-p", "micro", "-s", "64", "-m", "prefill,decode", "--min-time", "0", "--threads", "1", "--verify-flops"]


def test_bench_verify_flops_passes_on_every_family_with_model_columns(cli):
    r = cli("bench", "mha", "gqa", "mqa", "swa:window=16", "cross", "linear", "mla", "hybrid", *CLI, "--layers", "8",
            "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.rows()
    assert len(rows) == 2 * 9  # mla gives its naive and absorbed rows
    for row in rows:
        assert row["flops_match"] is True, row["label"]
        assert row["layers"] == 8 and row["flops_counted_model"] == row["flops_math_path_model"]
        if row["family"] != "hybrid":  # one layer × 8, beside `flops` of the same 8 layers
            assert row["flops_counted_model"] == 8 * row["flops_counted_layer"] == 8 * row["flops_counted"]
            assert row["flops_math_path_model"] == 8 * row["flops_math_path_layer"]
        else:  # a stack's layers differ: no one-layer figure
            assert row["flops_counted_layer"] is None and row["flops_counted"] is None
        if row["mode"] == "decode":  # one query: the math path scores what the causal-aware count says
            assert row["flops_math_path_model"] == row["flops"]
    hybrid = {row["mode"]: row for row in rows if row["family"] == "hybrid"}
    kinds = {(row["label"], row["mode"]): row for row in rows}
    for mode, row in hybrid.items():  # 7 linear + 1 gqa-kv2, each measured alone
        assert row["flops_counted_model"] == (7 * kinds[("linear", mode)]["flops_counted_layer"]
                                              + kinds[("gqa-kv2", mode)]["flops_counted_layer"])  # fmt: skip


def test_a_wrong_math_path_count_fails_with_exit_1(cli, monkeypatch):
    """The old count (masking skips no work: the causal-aware pairs) is wrong for a 64-token causal
    prefill, which the math path scores as one 64×64 block."""
    mha = registry.FAMILIES["mha"]
    monkeypatch.setitem(registry.FAMILIES, "mha", dataclasses.replace(mha, math_flops=lambda s, sh, b: cost.gqa_flops(s, sh)))
    r = cli("bench", "mha", *CLI, "--json", "-")
    assert r.code == 1
    assert r.err.splitlines()[-1] == ("attncli: --verify-flops: FlopCounterMode disagrees with the analytic count "
                                      "for mha prefill s=64")  # fmt: skip


def test_a_wrong_count_in_one_layer_kind_fails_the_stack(cli, monkeypatch):
    linear = registry.FAMILIES["linear"]
    wrong = dataclasses.replace(linear, math_flops=lambda s, sh, b: cost.linear_flops(s, sh))  # the chunkwise form
    monkeypatch.setitem(registry.FAMILIES, "linear", wrong)
    r = cli("bench", "hybrid", *CLI, "-m", "prefill", "--json", "-")
    assert r.code == 1
    assert "hybrid-7×linear+gqa-kv2 prefill s=64" in r.err.splitlines()[-1]
