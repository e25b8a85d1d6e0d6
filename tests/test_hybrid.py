"""Model-level stacks (`hybrid`): layer patterns, model totals, --per-layer, nested overrides."""


import pytest
import torch

from attncli import cost, presets
from attncli.measure.bench import Settings, measure_row
from attncli.measure.stack import measure_model
from attncli.rows import analytic_row, analytic_rows, kv_row, layer_kinds
from attncli.spec import Shape
from attncli.variants.hybrid import HybridStack
from conftest import TINY, counted, torch_imported_by

SMALL = presets.load_preset("small")


def kinds(variant, layers, preset=SMALL):
    return [(spec.label, n) for spec, n in layer_kinds(presets.parse_variant(variant, preset), layers)]


def test_acceptance_2_kv_growth_is_that_of_the_ten_softmax_layers(cli):
    r = cli("kv-memory", "hybrid:softmax_every=8", "gqa", "-s", "4096,8192", "--layers", 80, "--dtype", "bfloat16",
            "--per-layer", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    rows = {(row["label"], row["layer_of"], row["seq_len"]): row for row in r.rows()}
    hybrid = "hybrid-7×linear+gqa-kv2"
    total = {L: rows[(hybrid, None, L)]["kv_cache_bytes"] for L in (4096, 8192)}
    # Ten softmax layers alone (gqa, small: 2 KV heads of 64), by hand and through the tool:
    ten_softmax = {L: kv_row(presets.parse_variant("gqa", SMALL), SMALL, L, 1, 10, "bfloat16")["kv_cache_bytes"]
                   for L in (4096, 8192)}  # fmt: skip
    assert total[8192] - total[4096] == ten_softmax[8192] - ten_softmax[4096] == 10 * 4096 * 2 * 2 * 64 * 2
    # The 70 linear layers hold the same state at every length: (8·64·64 + 8·64) elements × 2 bytes.
    linear = {L: rows[("linear", hybrid, L)] for L in (4096, 8192)}
    assert linear[4096]["layers"] == 70 and rows[("gqa-kv2", hybrid, 4096)]["layers"] == 10
    assert linear[4096]["kv_cache_bytes"] == linear[8192]["kv_cache_bytes"] == 70 * (8 * 64 * 64 + 8 * 64) * 2
    assert total[4096] == linear[4096]["kv_cache_bytes"] + ten_softmax[4096]


def test_layer_kinds_fill_and_cut_the_pattern():
    assert kinds("hybrid", 80) == [("linear", 70), ("gqa-kv2", 10)]
    assert kinds("hybrid", 12) == [("linear", 11), ("gqa-kv2", 1)]
    assert kinds("hybrid:softmax_every=1", 3) == [("gqa-kv2", 3)]
    assert kinds("hybrid:pattern=[swa,gqa]", 5) == [("swa-w1024", 3), ("gqa-kv2", 2)]
    gemma3 = "hybrid:pattern=[swa,swa,swa,swa,swa,gqa]"
    assert kinds(gemma3, 26) == [("swa-w1024", 22), ("gqa-kv2", 4)]
    assert kinds("mha", 7) == [("mha", 7)]


@pytest.mark.parametrize("arg,label,layers", [
    ("hybrid:softmax_every=8,softmax=gqa:n_kv_heads=8", "hybrid-7×linear+gqa-kv8", ["linear"] * 7 + ["gqa-kv8"]),
    ("hybrid:softmax_every=4,softmax=[gqa:n_kv_heads=4,window=128]", "hybrid-3×linear+gqa-kv4-w128",
     ["linear"] * 3 + ["gqa-kv4-w128"]),
    ("hybrid:pattern=[[swa:window=512,n_kv_heads=2],gqa]", "hybrid-swa-w512-kv2+gqa-kv2", ["swa-w512-kv2", "gqa-kv2"]),
    ("hybrid:pattern=[swa:window=64,mha]", "hybrid-swa-w64+mha", ["swa-w64", "mha"]),
    ("hybrid:linear=swa,softmax_every=2", "hybrid-swa-w1024+gqa-kv2", ["swa-w1024", "gqa-kv2"]),
])  # fmt: skip
def test_nested_overrides(arg, label, layers):
    spec = presets.parse_variant(arg, SMALL)
    assert spec.label == label
    assert [layer.label for layer in spec.layers] == layers


def test_flat_overrides_keep_their_meaning():
    spec = presets.parse_variant("gqa:n_kv_heads=2,causal=false", SMALL)
    assert (spec.n_kv_heads, spec.causal, spec.label) == (2, False, "gqa-kv2-bidir")
    assert presets.parse_overrides("n_kv_heads=2,causal=false,label=g", "x") == {
        "n_kv_heads": 2, "causal": False, "label": "g"}  # fmt: skip
    assert presets.parse_variant("gqa:rope_theta=1e6,window=64", SMALL).rope_theta == 1e6


@pytest.mark.parametrize("arg,message", [
    ("hybrid:pattern=[swa", "hybrid:pattern=[swa: unclosed '[' in 'pattern=[swa'; "
                            "brackets group a nested value: softmax=[gqa:n_kv_heads=2]"),
    ("hybrid:pattern=[swa,gqa],softmax_every=2", "hybrid:pattern=[swa,gqa],softmax_every=2: "
                                                 "give pattern or softmax_every, not both"),
    ("hybrid:pattern=[swa,hybrid]", "hybrid:pattern=[swa,hybrid]: pattern: 'hybrid' is itself a stack; "
                                    "a stack's layers are single layers"),
    ("hybrid:softmax=gqa:n_kv_heads=3", "hybrid:softmax=gqa:n_kv_heads=3: softmax: 'gqa:n_kv_heads=3': "
                                        "n_kv_heads: 3 does not divide n_heads 8"),
    ("hybrid:causal=false", "hybrid:causal=false: causal: hybrid fixes causal; "
                            "set it on the layer variants, e.g. softmax=[gqa:causal=false]"),
    ("hybrid:softmax_every=0", "hybrid:softmax_every=0: softmax_every: 0 must be a positive integer"),
    ("hybrid:pattern=[[swa:d_model=256,label=narrow]]", "hybrid:pattern=[[swa:d_model=256,label=narrow]]: pattern: "
                                                        "every layer must have d_model 512 (the residual width); "
                                                        "'narrow' has 256"),
])  # fmt: skip
def test_bad_stacks_are_one_line_exit_2(cli, arg, message):
    r = cli("kv-memory", arg)
    assert r.code == 2
    assert r.err == f"attncli: {message}\n"


@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_model_row_is_the_sum_of_the_per_layer_rows(mode):
    spec = presets.parse_variant("hybrid:softmax_every=3,softmax=swa:window=100", SMALL)
    *parts, total = analytic_rows(spec, SMALL, Shape(mode, 300, 2), 10, "float16", per_layer=True)
    assert [(p["label"], p["layers"], p["layer_of"]) for p in parts] == [("linear", 7, spec.label), ("swa-w100", 3, spec.label)]
    for key in ("flops", "proj_flops", "attn_flops", "elementwise_flops", "ffn_flops", "params", "kv_cache_bytes"):
        assert total[key] == sum(p[key] for p in parts)
        assert total[key] == sum(analytic_row(presets.parse_variant(v, SMALL), SMALL, Shape(mode, 300, 2), n,
                                              "float16")[key] for v, n in (("linear", 7), ("swa:window=100", 3)))  # fmt: skip
    assert total["layers"] == 10 and total["stack"] == "7×linear + 3×swa-w100"



def stack(variant, n_layers):
    spec = presets.parse_variant(variant, TINY)
    torch.manual_seed(0)
    return spec, HybridStack(spec, n_layers).double()


def test_stack_module_flops_and_cache_bytes_equal_the_model_figures(monkeypatch):
    spec, m = stack("hybrid:softmax_every=3,softmax=gqa", 7)  # linear, linear, gqa, linear, linear, gqa, linear
    x = torch.randn(2, 10, TINY.d_model, dtype=torch.float64)
    decode = analytic_row(spec, TINY, Shape("decode", 9, 2), 7, "float64")
    cache = m.allocate_cache(2, 10)
    assert cache.nbytes == decode["kv_cache_bytes"]
    m.fill_cache(cache, x[:, :9])
    assert counted(lambda: m.step(x[:, 9:], cache, 9, math=True)) == decode["flops"]
    _, prefill_cache = m(x)
    assert prefill_cache.nbytes == analytic_row(spec, TINY, Shape("prefill", 10, 2), 7, "float64")["kv_cache_bytes"]
    # A softmax-only alternation, prefill on the math path (one query per block: exact pairs).
    spec, m = stack("hybrid:pattern=[swa:window=4,gqa]", 5)
    monkeypatch.setattr(cost, "MATH_MAX_SCORE_BYTES", 1)
    assert counted(lambda: m(x, math=True)) == analytic_row(spec, TINY, Shape("prefill", 10, 2), 5, "float64")["flops"]


def test_stack_decode_equals_stack_prefill():
    _, m = stack("hybrid:pattern=[linear,swa:window=3,gqa]", 4)
    x = torch.randn(2, 9, TINY.d_model, dtype=torch.float64)
    y, _ = m(x, math=True)
    cache = m.allocate_cache(2, 9)
    m.fill_cache(cache, x[:, :6])
    for pos in range(6, 9):
        torch.testing.assert_close(m.step(x[:, pos : pos + 1], cache, pos), y[:, pos : pos + 1])


def test_bench_measures_each_kind_once_and_totals_count_times_one_layer():
    micro = presets.load_preset("micro")
    spec = presets.parse_variant("hybrid:softmax_every=4", micro)
    settings = Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0)
    memo: dict = {}
    *parts, total = measure_model(spec, micro, Shape("decode", 32), settings, layers=6, per_layer=True, memo=memo)
    assert len(memo) == 2  # linear and gqa-kv2, one layer each
    one = {kind.label: row for (kind, _), row in memo.items()}
    assert [(p["label"], p["layers"]) for p in parts] == [("linear", 5), ("gqa-kv2", 1)]
    assert total["latency_ms_median"] == pytest.approx(5 * one["linear"]["latency_ms_median"]
                                                       + one["gqa-kv2"]["latency_ms_median"])  # fmt: skip
    assert total["kv_cache_bytes_measured"] == total["kv_cache_bytes"] == (
        5 * (4 * 64 * 64 + 4 * 64) * 4 + 33 * 2 * 2 * 64 * 4)  # fmt: skip
    assert total["err_rel_l2"] == max(one[k]["err_rel_l2"] for k in one) <= 1e-5
    assert total["status"] == "ok" and total["latency_basis"] == "Σ count × 1 layer per kind"
    # The same kind in another variant of the same command is not measured again.
    measure_model(presets.parse_variant("linear", micro), micro, Shape("decode", 32), settings, memo=memo)
    assert len(memo) == 2


def test_measure_row_of_a_stack_is_one_period_of_its_pattern():
    micro = presets.load_preset("micro")
    spec = presets.parse_variant("hybrid:pattern=[linear,linear,mqa]", micro)
    row = measure_row(spec, micro, Shape("prefill", 16), Settings(device=torch.device("cpu"), dtype="float32",
                                                                  min_run_time=0))  # fmt: skip
    assert row["layers"] == 3 and row["stack"] == "2×linear + 1×mqa"
    assert row["kv_cache_bytes_measured"] == row["kv_cache_bytes"] == (2 * (4 * 64 * 64 + 4 * 64) + 16 * 2 * 64) * 4


def test_compare_with_a_stack_reports_model_totals(cli):
    r = cli("compare", "mha", "hybrid", "-p", "micro", "-s", 16, "--min-time", 0, "--dtype", "float32",
            "--device", "cpu", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    mha, hybrid = r.rows()
    assert mha["layers"] == hybrid["layers"] == 4  # micro's n_layers: a stack has no single layer
    assert mha["latency_basis"] == "4 × 1 layer"
    assert hybrid["kv_ratio_vs_base"] == pytest.approx(hybrid["kv_cache_bytes"] / mha["kv_cache_bytes"])
    assert "4 layers = Σ count × one layer of each kind" in " ".join(r.err.split())  # the caption says how
    r = cli("bench", "mha", "-p", "micro", "-s", 16, "--min-time", 0, "--device", "cpu", "--json", "-")
    assert r.rows()[0]["layers"] == 1 and r.rows()[0]["latency_basis"] == "1 layer"


def test_analytic_commands_with_stacks_never_import_torch():
    imported, codes = torch_imported_by(["flops", "hybrid:softmax=[gqa:n_kv_heads=4,window=64]", "cross", "swa", "--per-layer"],
                                        ["kv-memory", "hybrid:pattern=[swa,gqa]", "linear"])  # fmt: skip
    assert codes == [0, 0] and not imported
