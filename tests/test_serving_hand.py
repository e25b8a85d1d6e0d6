"""serving.py's budgets, group kinds and storage rules on hand-built layer groups, each figure by
hand; the mutation run (tools/mutate.py serving) found these unpinned. Pure Python: no torch."""

import dataclasses

import pytest

from attncli import hfconfig, presets, serving
from attncli.presets import build_spec
from attncli.serving import CacheBytes, LayerGroup, Storage, largest_batch, longest_context
from conftest import TINY

BF16 = Storage.of("bfloat16")  # 2 bytes per element, no scales


def one_element_per_token() -> list[LayerGroup]:
    """One full layer caching 1 element per token: 2 bytes per token in bfloat16, nothing else."""
    return [LayerGroup("full", 1, "x", None, None, 1, 1, 2, 0, 1)]


@pytest.mark.parametrize("tokens", [1, 2, 3, 5, 1000])
def test_longest_context_is_exactly_what_fits(tokens):
    # 2 bytes a token: a budget of exactly 2·t bytes holds t tokens, one byte less holds t − 1.
    g = one_element_per_token()
    assert longest_context(g, BF16, 1, 2 * tokens) == tokens
    assert longest_context(g, BF16, 1, 2 * tokens - 1) == tokens - 1
    assert longest_context(g, BF16, 3, 6 * tokens) == tokens  # 3 sequences: 6 bytes a token


def test_longest_context_just_below_the_search_cap_is_a_number():
    # 2^50 − 1 tokens fit in 2 · (2^50 − 1) bytes; the doubling reaches 2^50 (which does not fit)
    # without passing the cap, so the answer is exact.
    assert longest_context(one_element_per_token(), BF16, 1, 2 * (2**50 - 1)) == 2**50 - 1


def test_longest_context_past_the_search_cap_is_unbounded():
    # 1.5 · 2^50 tokens fit in 3 · 2^50 bytes; the search stops once 2^50 tokens fit: None.
    assert serving.MAX_SEARCH_TOKENS == 2**50
    assert longest_context(one_element_per_token(), BF16, 1, 3 * 2**50) is None


def test_largest_batch_subtracts_the_fixed_per_tensor_scales():
    # fp8, per-tensor: 2 float32 scales per layer (K and V) whatever the batch, 8 bytes; 1 byte a
    # cached element. 3 layers of 4 elements a token, 10 tokens: 120 bytes a sequence, 24 fixed.
    g = [LayerGroup("full", 3, "x", None, None, 4, 2, 2, 0, 1)]
    fp8 = Storage.of("fp8")
    assert fp8.scales == "per-tensor"
    assert serving.cache_bytes(g, fp8, 10, 0) == CacheBytes(0, 24, 0)
    assert largest_batch(g, fp8, 10, 24 + 5 * 120) == 5
    assert largest_batch(g, fp8, 10, 24 + 5 * 120 - 1) == 4


def test_a_float_cache_has_no_scale_line_and_each_scale_format_says_what_it_stores():
    assert Storage.of("bfloat16").describe() == ""
    assert Storage.of("fp8").describe().startswith("fp8: 1 byte per element plus per-tensor scales (a float32 scale per layer")
    assert Storage.of("int8").describe().startswith("int8: 1 byte per element plus per-token-head scales (a float32 scale per token")


def test_a_cache_of_no_bytes_fits_any_batch():
    # Two layers without attention (Nemotron-NAS no-ops) cache nothing: no batch limit, not a division by zero.
    g = [LayerGroup("none", 2, "no-attention", None, None, 0, 0, 0, 0, None)]
    assert largest_batch(g, BF16, 1000, 10) is None


@pytest.mark.parametrize("cls", [Storage, LayerGroup, CacheBytes, serving.Plan])
def test_storage_groups_bytes_and_plans_are_frozen(cls):
    field = dataclasses.fields(cls)[0].name
    obj = {Storage: BF16, LayerGroup: one_element_per_token()[0], CacheBytes: CacheBytes(1, 2, 3),
           serving.Plan: serving.Plan(BF16)}[cls]  # fmt: skip
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, None)


def test_a_linear_layer_is_a_linear_group_whose_state_splits_over_tp():
    # TINY linear: 4 heads of 8, one 8 × 8 state per head (+ the normaliser's 8): cached per
    # sequence, never per token; TP 2 holds half of it.
    spec = presets.parse_variant("linear", TINY)
    (one,) = serving.layer_groups(spec, None, 3)
    (two,) = serving.layer_groups(spec, None, 3, tp=2)
    assert (one.kind, one.elements_per_token, one.kv_heads_per_gpu) == ("linear", 0, None)
    assert one.state_elements == spec.state_elements == 4 * (8 * 8 + 8)
    assert two.state_elements == one.state_elements // 2 and isinstance(two.state_elements, int)
    assert serving.describe([one]) == "3 linear"
    # Its state is kept at bfloat16 beside an fp8 cache, never scaled: no scale bytes of any format.
    for fmt in serving.SCALE_FORMATS:
        b = serving.cache_bytes([one], Storage.of("fp8", fmt), 100, 2)
        assert b == CacheBytes(0, 0, 3 * 4 * (8 * 8 + 8) * 2 * 2)  # 3 layers · state · 2 bytes · 2 sequences


def test_per_layer_kv_heads_name_each_group_by_its_family():
    # Nemotron-NAS: 16 heads; groups of 1 (16 KV heads: mha), 16 (1: mqa) and 4 (4: gqa).
    blocks = [{"attention": {"n_heads_in_group": k}} for k in (1, 16, 4, 4)]
    config = {"model_type": "nemotron-nas", "hidden_size": 1024, "num_attention_heads": 16, "num_hidden_layers": 4,
              "block_configs": blocks}  # fmt: skip
    p = hfconfig.normalise(config, "config.json", "t")
    spec = build_spec(p.model.attention, p, {}, p.name)
    groups = serving.layer_groups(spec, p.model, 4)
    assert [(g.spec.family, g.count, g.kv_heads_per_gpu) for g in groups] == [("mha", 1, 16), ("mqa", 1, 1), ("gqa", 2, 4)]


def test_layers_override_keeps_a_single_kind_models_kind():
    # mamba-130m: 24 Mamba layers and nothing else; --layers 4 sizes 4 of them, still Mamba
    # (a constant state, no KV cache), not 4 layers of its stand-in attention.
    p = hfconfig.load("tests/fixtures/hf/mamba-130m-hf")
    spec = build_spec(p.model.attention, p, {}, p.name)
    (group,) = serving.layer_groups(spec, p.model, 4)
    assert (group.kind, group.count, group.elements_per_token) == ("mamba", 4, 0)
    assert serving.bytes_per_token([group], BF16) == 0


def test_a_hybrids_linear_layers_carry_no_per_tensor_scales():
    # MiniMax-Text-01: lightning (linear) layers with a softmax layer every 8th. With an fp8 cache
    # and per-tensor scales, only the softmax layers hold scales: K and V, 4 bytes each, per layer.
    p = hfconfig.load("tests/fixtures/hf/minimax-text-01")
    spec = build_spec(p.model.attention, p, {}, p.name)
    groups = serving.layer_groups(spec, p.model, p.n_layers)
    full = p.model.layer_types.count("full")
    assert 0 < full < p.n_layers
    b = serving.cache_bytes(groups, Storage.of("fp8", "per-tensor"), 1000, 1)
    assert b.scales == full * 2 * 4


def test_a_cache_that_fills_the_budget_exactly_fits():
    g = one_element_per_token()
    held = serving.cache_bytes(g, BF16, 10, 1)  # 10 tokens · 2 bytes
    spec = presets.parse_variant("gqa", TINY)
    assert held.total == 20
    assert serving.Plan(BF16, budget=20).budget_columns(spec, TINY, g, 10, 1, held)["fits"] is True
    assert serving.Plan(BF16, budget=19).budget_columns(spec, TINY, g, 10, 1, held)["fits"] is False


def test_layers_without_attention_hold_nothing():
    # Nemotron-NAS no-op blocks: no cache, no state, no scales; the 2 attention layers hold
    # K and V scales (4 bytes each) beside their fp8 data.
    blocks = [{"attention": {"n_heads_in_group": 8}}, {"attention": {"no_op": True}},
              {"attention": {"n_heads_in_group": 8}}, {"attention": {"replace_with_linear": True}}]  # fmt: skip
    config = {"model_type": "nemotron-nas", "hidden_size": 1024, "num_attention_heads": 16, "num_hidden_layers": 4,
              "block_configs": blocks}  # fmt: skip
    p = hfconfig.normalise(config, "config.json", "t")
    spec = build_spec(p.model.attention, p, {}, p.name)
    groups = serving.layer_groups(spec, p.model, 4)
    b = serving.cache_bytes(groups, Storage.of("fp8", "per-tensor"), 100, 3)
    assert b == CacheBytes(2 * 2 * 2 * 64 * 100 * 3, 2 * 2 * 4, 0)  # 2 layers · K,V · 2 KV heads · 64 · 100 · 3
