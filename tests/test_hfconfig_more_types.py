"""Model types vLLM serves that kv-memory refused before their defaults were in the table (issue 13,
acceptance 3): each sized by hand from a hand-written config.json (the published model's shape
fields, typed in here, not a fetched fixture), with head_dim left out so the type's default rule
decides it (transformers' config class: hidden_size // num_attention_heads unless it declares one).

Per layer that caches tokens: K and V × (KV heads / TP, at least 1) × head_dim × tokens held ×
bytes per element (bfloat16 2, fp8 1)."""

import json

import pytest

TOKENS = 10_000  # beyond every 4,096 window below

# model_type: (config fields, [(layers, KV heads, head_dim, tokens cap)] by hand)
MODELS = {
    # the issue's example: OlmoeConfig has no head_dim field, so 4096 // 32 = 128
    "olmoe": ({"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32},
              [(32, 8, 4096 // 32, None)]),
    # OLMo-7B's shape; OlmoConfig's num_key_value_heads None → one KV head per query head
    "olmo": ({"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32}, [(32, 32, 128, None)]),
    # Olmo3Config.__post_init__: every 4th layer full, the others sliding at sliding_window
    "olmo3": ({"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32, "sliding_window": 4096},
              [(24, 32, 128, 4096), (8, 32, 128, None)]),
    # EXAONE-3.5 spells the layer count num_layers (ExaoneConfig.attribute_map)
    "exaone": ({"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "num_layers": 32},
               [(32, 8, 128, None)]),
    # Exaone4Config: sliding_window_pattern 4 → 48 sliding + 16 full of 64; head_dim given 128
    "exaone4": ({"hidden_size": 5120, "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
                 "num_hidden_layers": 64, "sliding_window": 4096}, [(48, 8, 128, 4096), (16, 8, 128, None)]),
    # InternLM3Config declares head_dim 128 and num_key_value_heads 2: both absent here
    "internlm3": ({"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 48}, [(48, 2, 128, None)]),
    # GLM-4.5-Air: head_dim 128 given (4096 // 96 would be 42)
    "glm4_moe": ({"hidden_size": 4096, "num_attention_heads": 96, "num_key_value_heads": 8, "head_dim": 128,
                  "num_hidden_layers": 46}, [(46, 8, 128, None)]),
    "glm": ({"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 40}, [(40, 2, 128, None)]),
    "phimoe": ({"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32},
               [(32, 8, 128, None)]),
    "granitemoe": ({"hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 8,
                    "num_hidden_layers": 24}, [(24, 8, 1024 // 16, None)]),
    "granitemoeshared": ({"hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 8,
                          "num_hidden_layers": 24}, [(24, 8, 64, None)]),
    # Ernie4_5Config declares head_dim 128 and 2 KV heads (not 1024 // 16 = 64)
    "ernie4_5": ({"hidden_size": 1024, "num_attention_heads": 16, "num_hidden_layers": 18}, [(18, 2, 128, None)]),
    "ernie4_5_moe": ({"hidden_size": 2560, "num_attention_heads": 20, "num_key_value_heads": 4,
                      "num_hidden_layers": 28}, [(28, 4, 2560 // 20, None)]),
    "hunyuan_v1_dense": ({"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
                          "num_hidden_layers": 32}, [(32, 8, 128, None)]),
    "hunyuan_v1_moe": ({"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
                        "num_hidden_layers": 32}, [(32, 8, 128, None)]),
    # SeedOssConfig declares head_dim 128 and 8 KV heads (5120 // 80 would be 64)
    "seed_oss": ({"hidden_size": 5120, "num_attention_heads": 80, "num_hidden_layers": 64}, [(64, 8, 128, None)]),
    "helium": ({"hidden_size": 2560, "num_attention_heads": 20, "num_hidden_layers": 24}, [(24, 20, 128, None)]),
    "apertus": ({"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32},
                [(32, 8, 128, None)]),
    "persimmon": ({"hidden_size": 4096, "num_attention_heads": 64, "num_hidden_layers": 36}, [(36, 64, 64, None)]),
    # OPT-125m: multi-head, 768 // 12 = 64
    "opt": ({"hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12}, [(12, 12, 64, None)]),
    # GPT-J-6B's GPT-2 spellings: n_embd 4096, n_head 16 (256 wide), n_layer 28
    "gptj": ({"n_embd": 4096, "n_head": 16, "n_layer": 28}, [(28, 16, 256, None)]),
    # BLOOM-560m: hidden_size with n_head / n_layer (BloomConfig.attribute_map)
    "bloom": ({"hidden_size": 1024, "n_head": 16, "n_layer": 24}, [(24, 16, 64, None)]),
}  # fmt: skip


def by_hand(caching, tp, element_bytes):
    return sum(n * 2 * max(1, kv // tp) * hd * (TOKENS if cap is None else min(TOKENS, cap)) * element_bytes
               for n, kv, hd, cap in caching)  # fmt: skip


@pytest.mark.parametrize("model_type", MODELS)
@pytest.mark.parametrize("tp,dtype", [(1, "bfloat16"), (4, "fp8")])  # 4 divides every head count here
def test_types_without_head_dim_are_sized_by_hand(cli, tmp_path, model_type, tp, dtype):
    fields, caching = MODELS[model_type]
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": model_type, **fields}))
    r = cli("kv-memory", "--hf-config", path, "-s", str(TOKENS), "--tp", str(tp), "--dtype", dtype, "--json", "-")
    assert r.code == 0, r.err
    assert r.rows()[-1]["kv_cache_bytes"] == by_hand(caching, tp, 2 if dtype == "bfloat16" else 1)


def test_the_issues_olmoe_example(cli, tmp_path):
    """32 layers × K and V × 8 KV heads × 4096 // 32 = 128 × 2 bytes = 131,072 bytes a token: 16 GiB at 131,072."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "olmoe", **MODELS["olmoe"][0]}))
    row = cli("kv-memory", "--hf-config", path, "-s", "131072", "--json", "-").rows()[-1]
    assert row["kv_cache_bytes"] == 32 * 2 * 8 * 128 * 2 * 131072 == 16 * 2**30


@pytest.mark.parametrize("model_type", ["ernie4_5_moe", "hunyuan_v1_moe", "opt", "gptj", "bloom", "persimmon", "apertus"])
def test_unread_mlps_refuse_counts_in_one_line(cli, tmp_path, model_type):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": model_type, **MODELS[model_type][0]}))
    for args in (("kv-memory", "--include-weights"), ("flops",)):
        r = cli(*args, "--hf-config", path)
        assert r.code == 2 and r.err.count("\n") == 1 and f"model_type '{model_type}'" in r.err, r.err


def test_hunyuan_cross_layer_attention_is_refused(cli, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "hunyuan_v1_moe", **MODELS["hunyuan_v1_moe"][0], "use_cla": True}))
    r = cli("kv-memory", "--hf-config", path)
    assert r.code == 2 and r.err.count("\n") == 1 and "use_cla: cross-layer attention" in r.err, r.err
