"""Position encodings as a field: rope, alibi (Press et al. 2022), none; elementwise cost only."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from attncli import presets
from attncli.measure.bench import Settings, measure_row
from attncli.rows import analytic_row
from attncli.spec import Shape
from attncli.variants.common import alibi_slopes
from conftest import TINY

SMALL = presets.load_preset("small")


def test_alibi_slopes_power_of_two_heads():
    # Press et al. 2022 §3: for 8 heads the slopes are 1/2, 1/4, ..., 1/256.
    assert alibi_slopes(8) == [2.0**-i for i in range(1, 9)]
    assert alibi_slopes(1) == [2.0**-8]


def test_alibi_slopes_twelve_heads_follow_the_reference_rule():
    # 12 heads: the 8 slopes of 8 heads, then slopes 1, 3, 5, 7 of 16 heads (2^(-k/2) for odd k).
    expected = [2.0**-i for i in range(1, 9)] + [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]
    assert alibi_slopes(12) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_position_cost_is_elementwise_never_matmul(mode):
    shape = Shape(mode, 100)
    rows = {pos: analytic_row(presets.parse_variant(f"gqa:position={pos}", SMALL), SMALL, shape, 1, "bfloat16")
            for pos in ("rope", "alibi", "none")}  # fmt: skip
    assert rows["rope"]["flops"] == rows["alibi"]["flops"] == rows["none"]["flops"]
    pairs = 100 * 101 // 2 if mode == "prefill" else 101
    n = shape.n_query
    assert rows["none"]["elementwise_flops"] == 5 * pairs * 8
    assert rows["alibi"]["elementwise_flops"] == 5 * pairs * 8 + 2 * pairs * 8  # slope × distance, add
    assert rows["rope"]["elementwise_flops"] == 5 * pairs * 8 + 3 * n * 64 * (8 + 2)  # rotate q and k heads


def test_alibi_math_path_by_hand():
    """One head (slope 2^-8): softmax(q·k/√d − slope·(i − j) + causal mask) v."""
    one = presets.PresetSpec(name="one", d_model=8, n_heads=1)
    spec = presets.parse_variant("mha:position=alibi", one)
    torch.manual_seed(0)
    m = presets.registry.get("mha").build(spec).double()
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    q, k, v = m.q_proj(x)[0], m.k_proj(x)[0], m.v_proj(x)[0]  # (6, 8)
    i, j = torch.arange(6)[:, None], torch.arange(6)[None, :]
    scores = q @ k.T / 8**0.5 - 2.0**-8 * (i - j)
    scores = scores.masked_fill(j > i, float("-inf"))
    expected = m.o_proj(torch.softmax(scores, dim=-1) @ v)
    torch.testing.assert_close(m(x, math=True)[0][0], expected)
    torch.testing.assert_close(m(x)[0][0], expected)


@pytest.mark.parametrize("variant", ["mha:position=alibi", "gqa:position=alibi,causal=false"])
def test_alibi_prefill_flops_equal_flop_counter_and_decode_equals_prefill(variant):
    spec = presets.parse_variant(variant, TINY)
    torch.manual_seed(0)
    m = presets.registry.get(spec.family).build(spec).double()
    x = torch.randn(2, 12, TINY.d_model, dtype=torch.float64)
    with FlopCounterMode(display=False) as counter:
        y, _ = m(x, math=True)
    full = presets.parse_variant(variant.replace(",causal=false", "") + ",causal=false", TINY)
    assert counter.get_total_flops() == analytic_row(full, TINY, Shape("prefill", 12, 2), 1, "float64")["flops"]
    if spec.causal:
        cache = m.allocate_cache(2, 12)
        m.fill_cache(cache, x[:, :11])
        torch.testing.assert_close(m.step(x[:, 11:], cache, 11), y[:, 11:])


@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_alibi_fp32_fast_path_within_1e5_of_float64(mode):
    row = measure_row(presets.parse_variant("mha:position=alibi", SMALL), SMALL, Shape(mode, 128),
                      Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0))  # fmt: skip
    assert row["status"] == "ok" and row["label"] == "mha-alibi"
    assert row["err_rel_l2"] <= 1e-5 and row["naive_err_rel_l2"] <= 1e-5


def test_unknown_position_lists_the_family_choices(cli):
    r = cli("flops", "mha:position=alibo")
    assert r.code == 2
    assert r.err == "attncli: mha:position=alibo: position: 'alibo' is not one of rope, none, alibi\n"
    r = cli("flops", "linear:position=alibi")
    assert r.err == "attncli: linear:position=alibi: position: 'alibi' is not one of none for linear\n"
