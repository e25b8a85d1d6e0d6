"""Published config.json files of the classes that were sized wrong or refused (tests/fixtures/hf,
sources in SOURCES.md): every byte figure below is computed by hand from the published fields,
at one length inside and one beyond every window and chunk, at --tp 1 and 8, in bfloat16 and fp8.

Per layer that caches tokens: K and V × (KV heads / TP, at least 1) × head_dim × tokens held ×
bytes per element; fp8 adds vLLM's per-tensor float32 k_scale and v_scale per layer. A Mamba-2
layer keeps (d_inner + 2·n_groups·d_state)/TP × (d_conv − 1) conv + (heads/TP) × head_dim × d_state
SSM elements per sequence, a Mamba-1 layer (d_inner/TP) × (d_conv − 1) conv + (d_inner/TP) × d_state
SSM. The conv part is at bfloat16 (vLLM's mamba_cache_dtype `auto`, the model dtype; an fp8 KV cache
leaves it in bfloat16), and so is the SSM part (mamba_ssm_cache_dtype `auto`) except in Nemotron-H:
vLLM's NemotronHForCausalLMConfig hook (vllm/model_executor/models/config.py) serves its SSM state
at the config's mamba_ssm_cache_dtype, float32 when absent (neither Nemotron-H copy here gives one).
"""

from pathlib import Path

import pytest

from attncli import hfconfig

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf"
INSIDE, BEYOND = 100, 20_000  # below gpt-oss's 128-token window; beyond every window and Llama 4's 8,192 chunk


def attention(layers, kv, head_dim, cap=None):
    """(layers, KV heads, head_dim, tokens cap) of the layers that hold a token cache."""
    return (layers, kv, head_dim, cap)


def mamba2(layers, d_inner, groups, d_state, d_conv, heads, head_dim, ssm_bytes=2):
    """(layers, bytes of one layer's conv + SSM state on one of tp GPUs): conv at bfloat16, SSM at ssm_bytes."""
    def state_bytes(tp):
        g = groups if groups % tp == 0 else tp  # vLLM extra_groups_for_head_shards: tp − n_groups more
        return (d_inner + 2 * g * d_state) // tp * (d_conv - 1) * 2 + heads // tp * head_dim * d_state * ssm_bytes
    return (layers, state_bytes)


def mamba1(layers, d_inner, d_state, d_conv):
    return (layers, lambda tp: d_inner // tp * (d_conv - 1) * 2 + d_inner // tp * d_state * 2)


# Each published model by hand: its caching layers, its Mamba layers, its max_position_embeddings.
MODELS = {
    # block_configs: 49 blocks with n_heads_in_group 8 (64 / 8 = 8 KV heads), 31 with attention.no_op
    "llama-3.3-nemotron-super-49b": ([attention(49, 8, 8192 // 64)], [], 131072),
    # 64 blocks with n_heads_in_group 16 (128 / 16 = 8 KV heads), 98 no_op
    "llama-3.1-nemotron-ultra-253b": ([attention(64, 8, 16384 // 128)], [], 131072),
    # no_rope_layers []: every 4th of 48 layers NoPE (full), the other 36 chunked at 8,192
    "llama-4-scout-17b-16e": ([attention(36, 8, 128, 8192), attention(12, 8, 128)], [], 262144),
    # pattern: 4 `*` attention, 27 `M` Mamba-2 (128 heads × 80, n_groups NemotronHConfig's 8, state 128, conv 4);
    # the SSM state float32 (4 bytes): no mamba_ssm_cache_dtype given, vLLM's NemotronH hook's float32
    "nvidia-nemotron-nano-9b-v2": ([attention(4, 8, 128)], [mamba2(27, 128 * 80, 8, 128, 4, 128, 80, 4)], 4096),
    "nemotron-h-8b-base-8k": ([attention(4, 8, 4096 // 32)], [mamba2(24, 128 * 64, 8, 128, 4, 128, 64, 4)], 8192),
    # attention where i % 8 == 4: 4 of 32; Mamba-1 d_inner = 2 × 4096, state 16, conv 4
    "jamba-v0.1": ([attention(4, 8, 4096 // 32)], [mamba1(28, 2 * 4096, 16, 4)], 262144),
    # head_dim absent: Gemma3TextConfig's 256 (not 3840 / 16 = 240); every 6th of 48 layers global
    "gemma-3-12b-it": ([attention(40, 8, 256, 1024), attention(8, 8, 256)], [], 131072),
    # text_config gives no sizes: LlamaConfig's 4096 wide, 32 heads, 32 layers, KV heads = heads
    "llava-1.5-7b-hf": ([attention(32, 32, 4096 // 32)], [], 4096),
    # layer_types alternate sliding (128) and full; head_dim 64 is not 2880 / 64
    "gpt-oss-20b": ([attention(12, 8, 64, 128), attention(12, 8, 64)], [], 131072),
    # head_dim 128, not 2048 / 32 = 64; max_position_embeddings not published here: Qwen3MoeConfig's 32768
    "qwen3-30b-a3b": ([attention(48, 4, 128)], [], 32768),
    # a window on every layer (sliding_window 2047), 32 KV heads of 3072 / 32
    "phi-3-mini-4k-instruct": ([attention(32, 32, 3072 // 32, 2047)], [], 4096),
    "mixtral-8x7b-v0.1": ([attention(32, 8, 4096 // 32)], [], 32768),
    # MLA with a low-rank query (q_lora_rank 1536): one latent of 512 + one RoPE key of 64 per token per
    # layer, shared by every head, so every GPU holds all of it; fp8 has one scale per layer (the latent)
    "deepseek-v3": ([("mla", 61, 512 + 64)], [], 163840),
}  # fmt: skip


def by_hand(model, seq_len, tp, element_bytes):
    caching, mambas, _ = MODELS[model]
    if caching[0][0] == "mla":
        _, n, per_token = caching[0]
        return n * per_token * seq_len * element_bytes, 0, n * 1 * 4 if element_bytes == 1 else None
    data = sum(n * 2 * max(1, kv // tp) * hd * (seq_len if cap is None else min(seq_len, cap)) * element_bytes
               for n, kv, hd, cap in caching)  # fmt: skip
    state = sum(n * state_bytes(tp) for n, state_bytes in mambas)  # the same whatever the KV dtype
    scales = sum(n for n, *_ in caching) * 2 * 4 if element_bytes == 1 else None
    return data, state, scales


CASES = [(m, L, tp, dt) for m in MODELS for L in (INSIDE, BEYOND) for tp in (1, 8) for dt in ("bfloat16", "fp8")]


@pytest.mark.parametrize("model,seq_len,tp,dtype", CASES, ids=lambda x: str(x))
def test_published_configs_sized_by_hand(cli, model, seq_len, tp, dtype):
    r = cli("kv-memory", "--hf-config", FIXTURES / model, "-s", str(seq_len), "--tp", str(tp), "--dtype", dtype,
            "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    row = r.rows()[-1]
    data, state, scales = by_hand(model, seq_len, tp, 2 if dtype == "bfloat16" else 1)
    assert row["kv_cache_bytes"] == data + state
    assert row["ssm_state_bytes"] == (state if MODELS[model][1] else None)
    assert row["kv_scale_bytes"] == scales
    assert row["beyond_max_position"] is (seq_len > MODELS[model][2])


def test_the_silently_wrong_figures_of_before():
    """What the issue saw: Nemotron-Super 13× too high (one KV head per query head on all 80
    layers), Llama 4 Scout 3.4× too high at 131,072 tokens (all full), a Gemma 3 at 0.94×."""
    super_, _, _ = by_hand("llama-3.3-nemotron-super-49b", 131072, 1, 2)
    assert round(80 * 2 * 64 * 128 * 131072 * 2 / super_, 2) == 13.06
    scout, _, _ = by_hand("llama-4-scout-17b-16e", 131072, 1, 2)
    assert round(48 * 2 * 8 * 128 * 131072 * 2 / scout, 1) == 3.4
    gemma = hfconfig.load(FIXTURES / "gemma-3-12b-it")
    assert gemma.head_dim == 256 and round(240 / 256, 2) == 0.94


def test_per_layer_rows_show_each_kind_with_its_count(cli):
    rows = cli("kv-memory", "--hf-config", FIXTURES / "nvidia-nemotron-nano-9b-v2", "-s", "1000", "--per-layer",
               "--json", "-").rows()  # fmt: skip
    assert [(r["layer_kind"], r["layers"]) for r in rows] == [
        ("mamba", 27), ("none", 25), ("full", 4), ("27 mamba + 25 none + 4 full", 56)]  # fmt: skip
    assert rows[0]["ssm_state_bytes"] == rows[-1]["ssm_state_bytes"] and rows[1]["kv_cache_bytes"] == 0
    assert sum(r["kv_cache_bytes"] for r in rows[:-1]) == rows[-1]["kv_cache_bytes"]
    scout = cli("kv-memory", "--hf-config", FIXTURES / "llama-4-scout-17b-16e", "-s", "20000", "--per-layer",
                "--json", "-").rows()  # fmt: skip
    assert [(r["layer_kind"], r["layers"], r["cache_tokens"]) for r in scout[:2]] == [("chunked", 36, 8192), ("full", 12, 20000)]


def test_beyond_max_position_is_flagged_with_and_without_budget(cli):
    for extra in ([], ["--budget", "80GiB"]):
        rows = cli("kv-memory", "--hf-config", FIXTURES / "llama-3.1-8b", "-s", "131072,262144", *extra,
                   "--json", "-").rows()  # fmt: skip
        assert [(r["seq_len"], r["max_position"], r["beyond_max_position"]) for r in rows] == [
            (131072, 131072, False), (262144, 131072, True)]  # fmt: skip
    r = cli("kv-memory", "--hf-config", FIXTURES / "llama-3.1-8b", "-s", "262144")
    assert "BEYOND" in r.out


def test_what_cannot_be_counted_is_refused_naming_the_field(cli):
    for model, field in (("llama-3.3-nemotron-super-49b", "block_configs: per-layer FFN widths"),
                         ("jamba-v0.1", "mamba layers"), ("nemotron-h-8b-base-8k", "mamba layers")):  # fmt: skip
        r = cli("kv-memory", "--hf-config", FIXTURES / model, "--include-weights")
        assert r.code == 2 and r.err.count("\n") == 1 and field in r.err, r.err
    r = cli("flops", "--hf-config", FIXTURES / "llama-4-scout-17b-16e")
    assert r.code == 2 and "does not price chunked layers" in r.err, r.err


def test_a_snapshot_folder_is_named_after_the_model(tmp_path):
    text = (FIXTURES / "llava-1.5-7b-hf" / "config.json").read_text()
    cache = tmp_path / "models--llava-hf--llava-1.5-7b-hf" / "snapshots" / ("a" * 40)
    cache.mkdir(parents=True)
    (cache / "config.json").write_text(text)
    assert hfconfig.load(cache).name == "llava-hf/llava-1.5-7b-hf"  # the cache's repository folder
    bare = tmp_path / ("0123456789abcdef" * 4)[:40]
    bare.mkdir()
    (bare / "config.json").write_text(text)
    assert hfconfig.load(bare).name == "llava-hf/llava-1.5-7b-hf"  # _name_or_path
    (bare / "config.json").write_text((FIXTURES / "gpt-oss-20b" / "config.json").read_text())
    assert hfconfig.load(bare).name == "GptOssForCausalLM"  # no _name_or_path: the architecture
    assert hfconfig.load(FIXTURES / "gpt-oss-20b").name == "gpt-oss-20b"  # a named folder keeps its name


def test_ffn_flops_count_three_matrices_for_a_gated_mlp(cli):
    """Llama 3.1 8B, 4,096 tokens, batch 1, all 32 layers: 3 × 2 × 4096 × 4096 × 14336 × 32 = 46.2 TFLOP."""
    row = cli("flops", "--hf-config", FIXTURES / "llama-3.1-8b", "-s", "4096", "--json", "-").rows()[0]
    assert row["ffn_flops"] == 3 * 2 * 4096 * 4096 * 14336 * 32 and round(row["ffn_flops"] / 1e12, 1) == 46.2
    assert row["ffn_kind"] == "gated" and row["attn_share"] == row["flops"] / (row["flops"] + row["ffn_flops"])
    small = cli("flops", "mha", "-p", "small", "-s", "128", "--layers", "1", "--json", "-").rows()[0]
    assert small["ffn_flops"] == 2 * 2 * 128 * 512 * 2048 and small["ffn_kind"] is None  # the seed's 2 × 4·d_model


def test_moe_ffn_flops_count_only_the_active_experts(cli):
    n = 1000
    # Mixtral: top-2 of 8 experts of 14336, gated, plus the router's 4096 × 8 matmul, every layer
    row = cli("flops", "--hf-config", FIXTURES / "mixtral-8x7b-v0.1", "-s", str(n), "--json", "-").rows()[0]
    assert row["ffn_flops"] == 32 * (3 * 2 * n * 4096 * 2 * 14336 + 2 * n * 4096 * 8)
    assert row["ffn_kind"] == "moe 2/8"
    # DeepSeek-V3: 3 dense layers of 18432, then 58 MoE layers of top-8 of 256 × 2048 + 1 shared expert of 2048
    rows = cli("flops", "--hf-config", FIXTURES / "deepseek-v3", "-s", str(n), "--json", "-").rows()
    dense, moe = 3 * 2 * n * 7168 * 18432, 3 * 2 * n * 7168 * (8 + 1) * 2048 + 2 * n * 7168 * 256
    assert {r["ffn_flops"] for r in rows} == {3 * dense + 58 * moe} and rows[0]["ffn_kind"] == "moe 8/256 +1 shared"
