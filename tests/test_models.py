"""Model presets and their config.json twins: KV bytes by hand, TP, fp8/int8 scales, budgets, parameters.

Each shipped preset under presets/models/ has a twin tests/fixtures/hf/<model>/config.json copied
from the published config (tests/fixtures/hf/SOURCES.md). Hand figures are bfloat16 (2 bytes).
"""

from pathlib import Path

import pytest

from attncli import hfconfig, presets
from conftest import torch_imported_by

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf"
MODELS = ["llama-3.1-8b", "gemma-2b", "mistral-7b-v0.1", "gemma-2-9b", "deepseek-v3", "minimax-text-01"]
BF16 = 2


def kv_rows(cli, *args):
    r = cli("kv-memory", *args, "--json", "-")
    assert r.code == 0, r.err
    return r.rows()


def model_row(rows):
    """The model's row (the last one of its seq_len/batch: --per-layer rows come first)."""
    return [r for r in rows if r["layers"] == max(x["layers"] for x in rows)]


# Bytes of each model's cache for one sequence of L tokens, by hand from the published configs
# (layers × cached elements per token × 2 bytes; a window W caps a layer at min(L, W) tokens).
def by_hand(model: str, L: int) -> int:
    if model == "llama-3.1-8b":  # 32 layers, 8 KV heads of 128: K and V
        return 32 * (2 * 8 * 128) * BF16 * L
    if model == "gemma-2b":  # 18 layers, 1 KV head of 256 (MQA)
        return 18 * (2 * 1 * 256) * BF16 * L
    if model == "mistral-7b-v0.1":  # 32 layers, 8 KV heads of 128, every layer windowed at 4096
        return 32 * (2 * 8 * 128) * BF16 * min(L, 4096)
    if model == "gemma-2-9b":  # 42 layers, 8 KV heads of 256: 21 global (all L) + 21 local (≤ 4096)
        return 21 * (2 * 8 * 256) * BF16 * L + 21 * (2 * 8 * 256) * BF16 * min(L, 4096)
    if model == "deepseek-v3":  # 61 MLA layers: latent 512 + RoPE key 64 per token
        return 61 * (512 + 64) * BF16 * L
    if model == "minimax-text-01":  # 10 softmax layers (8 KV heads of 128) + 70 lightning layers (64 heads × 128 × 128 state)
        return 10 * (2 * 8 * 128) * BF16 * L + 70 * (64 * 128 * 128) * BF16
    raise KeyError(model)


@pytest.mark.parametrize("model", MODELS)
def test_preset_and_config_twin_normalise_alike(model):
    a, b = presets.load_preset(model), hfconfig.load(FIXTURES / model)
    for key in ("d_model", "n_heads", "head_dim", "n_layers", "d_ff", "variants", "model"):
        assert getattr(a, key) == getattr(b, key), key


@pytest.mark.parametrize("model", MODELS)
def test_kv_bytes_of_preset_and_twin_equal_the_hand_figure(cli, model):
    lengths = [1000, 10000]  # below and above the 4,096-token windows (Mistral, Gemma 2)
    for L in lengths:
        want = by_hand(model, L)
        from_preset = model_row(kv_rows(cli, "-p", model, "-s", L))[0]
        from_config = model_row(kv_rows(cli, "--hf-config", FIXTURES / model / "config.json", "-s", L))[0]
        assert from_preset["kv_cache_bytes"] == from_config["kv_cache_bytes"] == want, (model, L)
        assert from_preset["layers"] == from_config["layers"] == presets.load_preset(model).n_layers


def test_the_figures_the_readme_quotes(cli):
    per_token = {m: model_row(kv_rows(cli, "-p", m, "-s", 1))[0]["kv_bytes_per_token"] for m in MODELS}
    assert per_token == {"llama-3.1-8b": 131_072, "gemma-2b": 18_432, "mistral-7b-v0.1": 131_072,
                         "gemma-2-9b": 344_064, "deepseek-v3": 70_272, "minimax-text-01": 40_960}  # fmt: skip


def test_a_folder_or_its_config_json_give_the_same_rows(cli):
    folder = kv_rows(cli, "--hf-config", FIXTURES / "gemma-2-9b", "-s", "8192")
    file = kv_rows(cli, "--hf-config", FIXTURES / "gemma-2-9b" / "config.json", "-s", "8192")
    assert folder == file
    assert folder[0]["kv_heads_from"] == "num_key_value_heads" and folder[0]["preset"] == "gemma-2-9b"


def test_per_layer_rows_give_kinds_with_counts(cli):
    rows = kv_rows(cli, "-p", "gemma-2-9b", "-s", "10000", "--per-layer")
    assert [(r["layer_kind"], r["layers"], r["cache_tokens"]) for r in rows] == [
        ("sliding", 21, 4096), ("full", 21, 10000), ("21 sliding(4096) + 21 full", 42, None)]  # fmt: skip
    assert rows[0]["kv_cache_bytes"] + rows[1]["kv_cache_bytes"] == rows[2]["kv_cache_bytes"] == by_hand("gemma-2-9b", 10000)
    assert [r["layer_of"] for r in rows] == ["gemma-2-9b", "gemma-2-9b", None] and rows[0]["label"] == "gqa-kv8-w4096"
    hybrid = kv_rows(cli, "-p", "minimax-text-01", "-s", "1000", "--per-layer")
    assert [(r["label"], r["layer_kind"], r["layers"]) for r in hybrid] == [
        ("linear-lightning", "linear", 70), ("gqa-kv8", "full", 10), ("gqa-kv8", "70 linear + 10 full", 80)]  # fmt: skip
    assert hybrid[0]["linear_state_bytes"] == hybrid[2]["linear_state_bytes"] == 70 * 64 * 128 * 128 * BF16
    uniform = kv_rows(cli, "-p", "llama-3.1-8b", "--per-layer")
    assert len(uniform) == 1  # one kind: the model row is its only row


def test_tp_halves_bytes_per_gpu_until_one_kv_head_each(cli):
    """Llama 3.1 8B has 8 KV heads: TP 1, 2, 4, 8 halve the cache per GPU; TP 16 replicates heads."""
    got = {}
    for tp in (1, 2, 4, 8, 16):
        row = kv_rows(cli, "--hf-config", FIXTURES / "llama-3.1-8b", "-s", "4096", "--tp", tp)[0]
        got[tp] = (row["kv_heads_per_gpu"], row["kv_cache_bytes"])
    full = by_hand("llama-3.1-8b", 4096)
    assert got == {1: (8, full), 2: (4, full // 2), 4: (2, full // 4), 8: (1, full // 8), 16: (1, full // 8)}


def test_tp_keeps_mla_latent_whole_and_splits_linear_state(cli):
    one, eight = (kv_rows(cli, "-p", "deepseek-v3", "-s", "1000", "--tp", tp)[0] for tp in (1, 8))
    assert one["kv_cache_bytes"] == eight["kv_cache_bytes"] == by_hand("deepseek-v3", 1000)
    assert eight["kv_heads_per_gpu"] is None
    mm = kv_rows(cli, "-p", "minimax-text-01", "-s", "1000", "--tp", "8")[0]
    assert mm["kv_cache_bytes"] == 10 * (2 * 1 * 128) * BF16 * 1000 + 70 * (64 // 8 * 128 * 128) * BF16


@pytest.mark.parametrize("args,message", [
    (["--tp", "3"], "--tp: 3 does not divide the 32 attention heads"),
    (["--tp", "64"], "--tp: 64 does not divide the 32 attention heads"),
])  # fmt: skip
def test_tp_that_cannot_split_the_heads_is_refused(cli, args, message):
    r = cli("kv-memory", "-p", "llama-3.1-8b", *args)
    assert r.code == 2 and message in r.err


def test_fp8_and_int8_scales_by_hand(cli):
    L, B = 1000, 2
    int8 = kv_rows(cli, "-p", "llama-3.1-8b", "-s", L, "-b", B, "--dtype", "int8")[0]
    assert int8["kv_cache_bytes"] == 32 * (2 * 8 * 128) * 1 * L * B  # one byte per element
    assert int8["kv_scales"] == "per-token-head"
    assert int8["kv_scale_bytes"] == 32 * (2 * 8) * L * B * 4  # a float32 per token per K/V head vector: 3.1%
    fp8 = kv_rows(cli, "-p", "llama-3.1-8b", "-s", L, "-b", B, "--dtype", "fp8")[0]
    assert (fp8["kv_scales"], fp8["kv_scale_bytes"]) == ("per-tensor", 32 * 2 * 4)  # k_scale and v_scale per layer
    fp8_tok = kv_rows(cli, "-p", "llama-3.1-8b", "-s", L, "-b", B, "--dtype", "fp8", "--kv-scales", "per-token-head")[0]
    assert fp8_tok["kv_scale_bytes"] == int8["kv_scale_bytes"]
    mla = kv_rows(cli, "-p", "deepseek-v3", "-s", L, "--dtype", "int8", "--tp", "8")[0]
    assert (mla["kv_cache_bytes"], mla["kv_scale_bytes"]) == (61 * 576 * L, 61 * 1 * L * 4)  # one latent vector per token
    hybrid = kv_rows(cli, "-p", "minimax-text-01", "-s", L, "--dtype", "fp8")[0]  # the linear state stays bfloat16
    assert hybrid["kv_cache_bytes"] == 10 * (2 * 8 * 128) * L + 70 * 64 * 128 * 128 * BF16
    assert cli("kv-memory", "-p", "small", "--kv-scales", "per-tensor").code == 2  # bfloat16 has no scales


def _bytes_at(cli, *args):
    row = model_row(kv_rows(cli, *args))[0]
    return row["kv_cache_bytes"] + (row.get("kv_scale_bytes") or 0) + (row.get("weight_bytes") or 0)


@pytest.mark.parametrize("model,extra", [
    ("llama-3.1-8b", []), ("llama-3.1-8b", ["--include-weights"]), ("llama-3.1-8b", ["--dtype", "int8", "--tp", "2"]),
    ("gemma-2-9b", ["--include-weights", "-b", "3"]), ("deepseek-v3", ["--tp", "8", "--dtype", "fp8", "--include-weights", "--weight-dtype", "fp8"]),
    ("minimax-text-01", ["--tp", "8", "--include-weights", "--budget", "141GB"]),
])  # fmt: skip
def test_budget_longest_context_fits_and_one_more_token_does_not(cli, model, extra):
    budget = [] if "--budget" in extra else ["--budget", "80GiB"]
    row = model_row(kv_rows(cli, "-p", model, *budget, *extra))[0]
    L, limit = row["max_seq_len"], row["budget_bytes"]
    assert L and L > 1
    assert _bytes_at(cli, "-p", model, "-s", L, *extra) <= limit < _bytes_at(cli, "-p", model, "-s", L + 1, *extra)


def test_budget_largest_batch_fits_and_one_more_sequence_does_not(cli):
    row = kv_rows(cli, "-p", "llama-3.1-8b", "-s", "8192", "--budget", "80GiB", "--include-weights")[0]
    n = row["max_batch"]
    assert n == (80 * 2**30 - 8_030_261_248 * 2) // by_hand("llama-3.1-8b", 8192)
    at = lambda b: _bytes_at(cli, "-p", "llama-3.1-8b", "-s", "8192", "-b", b, "--include-weights")  # noqa: E731
    assert at(n) <= 80 * 2**30 < at(n + 1)


def test_budget_when_the_cache_stops_growing_or_the_weights_do_not_fit(cli):
    mistral = kv_rows(cli, "-p", "mistral-7b-v0.1", "--budget", "24GiB", "--include-weights")[0]
    assert mistral["max_seq_len"] is None and mistral["fits"]  # every layer windowed: any length fits
    r = cli("kv-memory", "-p", "mistral-7b-v0.1", "--budget", "24GiB")
    assert "any context fits" in r.out.replace("\n", " ")
    heavy = kv_rows(cli, "-p", "deepseek-v3", "--budget", "80GiB", "--include-weights")[0]  # 1.3 TB of weights on one GPU
    assert (heavy["fits"], heavy["max_seq_len"], heavy["max_batch"]) == (False, 0, 0)


@pytest.mark.parametrize("text,want", [("80GiB", 80 * 2**30), ("80GB", 80 * 10**9), ("1.5TiB", 3 * 2**39),
                                       ("123", 123), ("64 MiB", 64 * 2**20)])  # fmt: skip
def test_budget_sizes(text, want):
    from attncli.options import parse_bytes

    assert parse_bytes(text, "--budget") == want


@pytest.mark.parametrize("text,message", [("80G", "write 80GiB (2^30) or 80GB (10^9)"), ("lots", "'lots' is not a size"),
                                          ("0GiB", "must be positive")])  # fmt: skip
def test_bad_budget_sizes(cli, text, message):
    r = cli("kv-memory", "-p", "llama-3.1-8b", "--budget", text)
    assert r.code == 2 and message in r.err and r.err.count("\n") == 1


# Published parameter counts, each with its source.
PUBLISHED = {
    # Hugging Face model page, safetensors metadata: 8.03B params (meta-llama/Llama-3.1-8B)
    "llama-3.1-8b": 8.03e9,
    # Gemma Team 2024, arXiv:2403.08295, Table 2: 524,550,144 embedding + 1,981,884,416 non-embedding
    "gemma-2b": 524_550_144 + 1_981_884_416,
    # Hugging Face model page, safetensors metadata: 7.24B params (mistralai/Mistral-7B-v0.1)
    "mistral-7b-v0.1": 7.24e9,
    # Gemma Team 2024, arXiv:2408.00118, Table 2: 917,962,752 embedding + 8,324,201,984 non-embedding
    "gemma-2-9b": 917_962_752 + 8_324_201_984,
    # DeepSeek-AI 2024, arXiv:2412.19437, abstract: 671B total parameters (the MTP module excluded)
    "deepseek-v3": 671e9,
    # MiniMax 2025, arXiv:2501.08313, abstract and model card: 456 billion total parameters
    "minimax-text-01": 456e9,
}
# Config fixtures without a preset, checked the same way.
PUBLISHED_FIXTURES = {
    # deepseek-ai/DeepSeek-V2-Lite model card: 15.7B total parameters
    "deepseek-v2-lite": 15.7e9,
    # Qwen/Qwen3-Next-80B-A3B-Instruct model card: 80B parameters in total
    "qwen3-next-80b-a3b": 80e9,
}


@pytest.mark.parametrize("model", MODELS)
def test_parameter_counts_within_one_percent_of_published(cli, model):
    for args in (["-p", model], ["--hf-config", FIXTURES / model]):
        row = kv_rows(cli, *args, "--include-weights")[0]
        assert abs(row["model_params"] / PUBLISHED[model] - 1) < 0.01, (model, row["model_params"])
        assert row["weight_bytes"] == row["model_params"] * 2  # bfloat16 on one GPU


@pytest.mark.parametrize("model", PUBLISHED_FIXTURES)
def test_parameter_counts_of_other_fixtures(cli, model):
    row = kv_rows(cli, "--hf-config", FIXTURES / model, "--include-weights", "--tp", "2")[-1]
    assert abs(row["model_params"] / PUBLISHED_FIXTURES[model] - 1) < 0.01
    assert row["weight_bytes"] == -(-row["model_params"] * 2 // 2)


def test_parameter_counts_by_hand_for_dense_and_moe():
    from attncli.params import model_params

    llama = presets.load_preset("llama-3.1-8b")
    d, V, L = 4096, 128256, 32
    attention = d * 128 * (2 * 32 + 2 * 8)  # W_q, W_o (32 heads) and W_k, W_v (8 heads)
    mlp = 3 * d * 14336
    want = 2 * V * d + L * (attention + mlp + 2 * d) + d
    assert model_params(presets.build_spec("gqa", llama, {}, "x"), llama) == want == 8_030_261_248
    ds = presets.load_preset("deepseek-v3")
    d, V = 7168, 129280
    mla = d * 1536 + 1536 + 1536 * 128 * 192 + d * 576 + 512 + 512 * 128 * 256 + 128 * 128 * d
    moe = 256 * 3 * d * 2048 + 1 * 3 * d * 2048 + 256 * d  # routed experts, the shared one, the router
    want = 2 * V * d + 61 * (mla + 2 * d) + 3 * 3 * d * 18432 + 58 * moe + d
    assert model_params(presets.build_spec("mla", ds, {}, "x"), ds) == want


def test_include_weights_needs_a_model(cli):
    r = cli("kv-memory", "mha", "-p", "small", "--include-weights")
    assert r.code == 2 and "describes one layer, not a model" in r.err


def test_what_if_variants_keep_the_model_layers(cli):
    """Another attention on a model keeps its layer kinds (the window still caps the local layers)."""
    rows = kv_rows(cli, "mqa", "-p", "gemma-2-9b", "-s", "10000")
    assert rows[0]["label"] == "mqa" and rows[0]["kv_heads_from"] is None
    assert rows[0]["kv_cache_bytes"] == 21 * (2 * 256) * BF16 * 10000 + 21 * (2 * 256) * BF16 * 4096
    r = cli("kv-memory", "-p", "gemma-2-9b", "--layers", "3")
    assert r.code == 2 and "--layers: 3 breaks the model's layer pattern (21 sliding(4096) + 21 full)" in r.err
    assert kv_rows(cli, "-p", "llama-3.1-8b", "--layers", "1", "-s", "1")[0]["kv_cache_bytes"] == 2 * 8 * 128 * BF16


def test_flops_bench_and_compare_take_a_config(cli, tmp_path):
    flops = cli("flops", "--hf-config", FIXTURES / "llama-3.1-8b", "-s", "128", "--json", "-")
    assert flops.code == 0 and flops.rows()[0]["label"] == "gqa-kv8" and flops.rows()[0]["layers"] == 32
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "config.json").write_text('{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, '
                                      '"num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 100}')  # fmt: skip
    for command in ("bench", "compare"):
        r = cli(command, "--hf-config", tiny, "-s", "16", "--device", "cpu", "--min-time", "0", "--json", "-")
        assert r.code == 0, r.err
        assert r.rows()[0]["label"] == "gqa-kv2" and r.rows()[0]["preset"] == "tiny"
    named = cli("flops", "mha", "-p", "gemma-2-9b")  # one named variant would price local and global layers alike
    assert named.code == 2 and "which one named variant would price alike" in named.err


@pytest.mark.parametrize("model,label", [
    ("gemma-2-9b", "hybrid-gqa-kv8-w4096+gqa-kv8"), ("mistral-7b-v0.1", "gqa-kv8-w4096"),
    ("minimax-text-01", "hybrid-7×linear+gqa-kv8"), ("deepseek-v3", "mla-r512-absorb"),
])  # fmt: skip
def test_flops_of_a_model_build_its_own_layers(cli, model, label):
    for args in (["-p", model], ["--hf-config", FIXTURES / model]):
        rows = cli("flops", *args, "-s", "10000", "--mode", "decode", "--json", "-").rows()
        row = next(r for r in rows if r["label"] == label)
        assert row["layers"] == presets.load_preset(model).n_layers
        if model != "minimax-text-01":  # whose flops rows price the linear layers with the linear family's state
            assert row["kv_cache_bytes"] == by_hand(model, 10001)  # decode: the cache after the new token


def test_bench_of_a_model_with_sliding_layers(cli, tmp_path):
    tiny = tmp_path / "tiny-gemma"
    tiny.mkdir()
    (tiny / "config.json").write_text('{"model_type": "gemma2", "hidden_size": 64, "num_attention_heads": 4, '
                                      '"num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 4, '
                                      '"sliding_window": 8, "vocab_size": 100}')  # fmt: skip
    r = cli("bench", "--hf-config", tiny, "-s", "16", "--mode", "decode", "--device", "cpu", "--min-time", "0",
            "--per-layer", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.rows()
    assert [(x["label"], x["layers"]) for x in rows] == [("gqa-kv2-w8", 2), ("gqa-kv2", 2), ("hybrid-gqa-kv2-w8+gqa-kv2", 4)]
    assert rows[-1]["kv_cache_bytes_measured"] == rows[-1]["kv_cache_bytes"] == 2 * (8 + 17) * 2 * 2 * 16 * 4


@pytest.mark.parametrize("variant", ["mha", "gqa", "mqa", "mla", "swa:window=100", "cross", "linear",
                                     "hybrid:pattern=[swa:window=100,gqa]", "hybrid:softmax_every=4"])  # fmt: skip
def test_serving_rows_agree_with_the_variant_rows(variant):
    """At TP 1 in a float dtype, kv-memory's per-GPU figures are the stack-aware rows of every family."""
    from attncli import rows, serving

    small = presets.load_preset("small")
    spec = presets.parse_variant(variant, small)
    plan = serving.Plan(serving.Storage.of("float16"))
    for L in (50, 1000):
        mine = rows.serving_rows(spec, small, L, 3, 6, plan, per_layer=True)
        theirs = rows.kv_rows(spec, small, L, 3, 6, "float16", per_layer=True)
        for key in ("label", "layers", "cache_tokens", "kv_bytes_per_token", "kv_cache_bytes", "layer_of", "stack"):
            assert [r.get(key) for r in mine] == [r.get(key) for r in theirs], (variant, L, key)


def test_tp_over_a_stack_splits_each_kind(cli):
    one, two = (kv_rows(cli, "hybrid:softmax_every=4", "-p", "small", "-s", "1000", "--tp", tp)[0] for tp in (1, 2))
    assert two["kv_cache_bytes"] * 2 == one["kv_cache_bytes"]  # 2 KV heads of the softmax layers and 8 state heads, halved
    r = cli("kv-memory", "cross", "-p", "small", "--tp", "16")
    assert r.code == 2 and "--tp: 16 does not divide the 8 attention heads" in r.err


@pytest.mark.parametrize("model,arg", [
    ("llama-3.1-8b", "gqa"), ("gemma-2b", "mqa"), ("deepseek-v3", "mla"), ("mistral-7b-v0.1", "gqa:window=4096"),
    ("gemma-2-9b", "hybrid:pattern=[gqa:window=4096,gqa]"),
    ("minimax-text-01", "hybrid:pattern=[linear,linear,linear,linear,linear,linear,linear,gqa]"),
])  # fmt: skip
def test_model_layers_as_a_variant_argument_for_the_stack_families(model, arg):
    assert presets.model_variant(presets.load_preset(model)) == arg


def test_model_commands_never_import_torch():
    imported, codes = torch_imported_by(
        ["kv-memory", "--hf-config", FIXTURES / "deepseek-v3", "--budget", "80GiB", "--include-weights", "--tp", "8"],
        ["flops", "-p", "llama-3.1-8b"], ["presets"])  # fmt: skip
    assert codes == [0, 0, 0] and not imported
