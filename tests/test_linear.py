"""Linear attention: parallel, chunkwise and recurrent forms agree; constant-size state; FLOPs."""

import pytest
import torch
import torch.nn.functional as F

from attncli import cost, presets
from attncli.measure.bench import Settings, measure_row
from attncli.rows import analytic_row, kv_row
from attncli.spec import DTYPE_BYTES, Shape
from conftest import TINY, counted

SMALL = presets.load_preset("small")


def build(variant="linear:chunk_size=8", preset=TINY):
    spec = presets.parse_variant(variant, preset)
    torch.manual_seed(0)
    return spec, presets.registry.get("linear").build(spec).double()



def test_parallel_form_equals_the_definition_by_hand():
    """y_i = Σ_{j≤i} φ(q_i)·φ(k_j) v_j / Σ_{j≤i} φ(q_i)·φ(k_j), φ = elu + 1, one head, by loops."""
    one = presets.PresetSpec(name="one", d_model=8, n_heads=1)
    _, m = build("linear", one)
    x = torch.randn(1, 7, 8, dtype=torch.float64)
    q, k, v = F.elu(m.q_proj(x)[0]) + 1, F.elu(m.k_proj(x)[0]) + 1, m.v_proj(x)[0]  # (7, 8)
    rows = []
    for i in range(7):
        w = [q[i] @ k[j] for j in range(i + 1)]
        rows.append(sum(wj * v[j] for wj, j in zip(w, range(i + 1))) / sum(w))
    torch.testing.assert_close(m(x, math=True)[0][0], m.o_proj(torch.stack(rows)))


@pytest.mark.parametrize("T", [1, 8, 37])
@pytest.mark.parametrize("causal", [True, False])
def test_chunkwise_parallel_and_final_state_agree(T, causal):
    _, m = build(f"linear:chunk_size=8,causal={str(causal).lower()}")
    x = torch.randn(2, T, TINY.d_model, dtype=torch.float64)
    y_fast, state_fast = m(x)
    y_math, state_math = m(x, math=True)
    torch.testing.assert_close(y_fast, y_math, rtol=1e-10, atol=1e-12)
    for name in ("s", "z"):
        torch.testing.assert_close(state_fast[name], state_math[name], rtol=1e-10, atol=1e-12)


def test_recurrent_decode_from_an_empty_state_equals_prefill():
    _, m = build()
    x = torch.randn(2, 21, TINY.d_model, dtype=torch.float64)
    y_prefill, state = m(x, math=True)
    cache = m.allocate_cache(2, capacity=1)
    size = cache.nbytes
    for pos in range(21):
        torch.testing.assert_close(m.step(x[:, pos : pos + 1], cache, pos), y_prefill[:, pos : pos + 1])
        assert cache.nbytes == size  # the state never grows
    torch.testing.assert_close(cache.s, state.s)
    torch.testing.assert_close(cache.z, state.z)
    m.fill_cache(cache, x[:, :20])  # fill_cache sets (does not add to) the state
    torch.testing.assert_close(m.step(x[:, 20:], cache, 20, math=True), y_prefill[:, 20:])


@pytest.mark.parametrize("T,causal", [(37, True), (16, True), (5, True), (37, False)])
def test_prefill_flops_equal_flop_counter(T, causal, monkeypatch):
    spec, m = build(f"linear:chunk_size=8,causal={str(causal).lower()}")
    x = torch.randn(2, T, TINY.d_model, dtype=torch.float64)
    shape = Shape("prefill", T, 2)
    # The headline figure is the fast (chunkwise) path's work ...
    assert counted(lambda: m(x)) == analytic_row(spec, TINY, shape, 1, "float64")["flops"]
    # ... and the math path (one query per block: exactly the causal pairs) is the parallel form.
    monkeypatch.setattr(cost, "MATH_MAX_SCORE_BYTES", 1)
    assert counted(lambda: m(x, math=True)) == 2 * cost.linear_parallel_flops(spec, shape).matmul


def test_chunkwise_flops_by_hand():
    """T = 37, chunks of 8 (four full, one of 5), 4 heads of 8, d_model 32, one sequence."""
    spec = presets.parse_variant("linear:chunk_size=8", TINY)
    f = cost.linear_flops(spec, Shape("prefill", 37))
    assert f.proj == 4 * 2 * 37 * 32 * 32
    intra = 4 * 2 * (8 + 8) * (4 * 64 + 25)  # masked c×c blocks: scores and weighted sum
    carried = 4 * 37 * (2 * 8 * 8 + 2 * 8 * 8 + 2 * 8)  # state update, read-out of S and z
    assert f.attn == intra + carried


@pytest.mark.parametrize("math", [False, True])
def test_decode_flops_equal_flop_counter(math):
    spec, m = build()
    x = torch.randn(3, 10, TINY.d_model, dtype=torch.float64)
    cache = m.allocate_cache(3, 10)
    m.fill_cache(cache, x[:, :9])
    measured = counted(lambda: m.step(x[:, 9:], cache, 9, math=math))
    assert measured == analytic_row(spec, TINY, Shape("decode", 9, 3), 1, "float64")["flops"]
    assert measured == 3 * (4 * 2 * 32 * 32 + 4 * (4 * 8 * 8 + 2 * 8))  # by hand: projections + recurrence


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_state_bytes_independent_of_length_and_equal_to_allocation(dtype):
    spec, m = build()
    state = (4 * 8 * 8 + 4 * 8) * DTYPE_BYTES[dtype]  # n_heads·d_k·d_v + n_heads·d_k normaliser
    assert {kv_row(spec, TINY, L, 2, 3, dtype)["kv_cache_bytes"] for L in (1, 10, 10**6)} == {state * 2 * 3}
    m = m.to(getattr(torch, dtype))
    assert m.allocate_cache(2, 10**6).nbytes == state * 2
    _, cache = m(torch.randn(2, 19, TINY.d_model, dtype=getattr(torch, dtype)))
    assert cache.nbytes == state * 2


@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_fp32_fast_path_within_1e5_of_float64(mode):
    row = measure_row(presets.parse_variant("linear", SMALL), SMALL, Shape(mode, 200),
                      Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0))  # fmt: skip
    assert row["status"] == "ok"
    assert row["err_rel_l2"] <= 1e-5 and row["naive_err_rel_l2"] <= 1e-5
    assert row["kv_cache_bytes_measured"] == row["kv_cache_bytes"] == (8 * 64 * 64 + 8 * 64) * 4


def test_linear_takes_no_position_encoding(cli):
    r = cli("flops", "linear:position=rope")
    assert r.code == 2
    assert r.err == "attncli: linear:position=rope: position: 'rope' is not one of none for linear\n"
