"""Layer kinds from config.json for the hybrid families without a fixture here: each count and
byte figure is by hand from the config fields and the rules of transformers' config class and
vLLM's state shapes (spec.MambaLayerSpec); the TP cases cover vLLM's group replication."""

import pytest

from attncli import hfconfig, serving
from attncli.errors import InputError
from attncli.presets import build_spec

BF16 = 2


def size(config, seq_len, tp=1):
    p = hfconfig.normalise(config, "config.json", "t")
    spec = build_spec(p.model.attention, p, {}, p.name)
    groups = serving.layer_groups(spec, p.model, p.n_layers, tp)
    return p, serving.cache_bytes(groups, serving.Storage.of("bfloat16"), seq_len, 1)


def test_zamba2_hybrid_layers_hold_attention_beside_mamba():
    # Zamba2: attention head_dim = 2·hidden / heads (its shared block reads [hidden, embedding]);
    # Mamba-2 on every layer: d_inner = 2 × 1024, n_mamba_heads 8 → head_dim 256, 1 group, state 64
    config = {"model_type": "zamba2", "hidden_size": 1024, "num_attention_heads": 16, "num_hidden_layers": 6,
              "layers_block_type": ["mamba", "hybrid"] * 3}  # fmt: skip
    p, b = size(config, 1000)
    assert p.model.describe() == "3 mamba + 3 full + 3 mamba beside attention"
    assert b.data == 3 * 2 * 16 * (2 * 1024 // 16) * 1000 * BF16  # KV heads = heads (Zamba2Config)
    assert b.state == 6 * ((2048 + 2 * 1 * 64) * 3 + 8 * 256 * 64) * BF16
    _, b2 = size(config, 1000, tp=2)  # 1 group on 2 ranks: replicated to 2 (vLLM extra_groups_for_head_shards)
    assert b2.state == 6 * ((2048 + 2 * 2 * 64) // 2 * 3 + 4 * 256 * 64) * BF16


def test_falcon_h1_runs_attention_and_mamba_in_every_layer():
    config = {"model_type": "falcon_h1", "hidden_size": 2048, "num_attention_heads": 8, "num_key_value_heads": 2,
              "num_hidden_layers": 24, "head_dim": 128, "mamba_d_ssm": 3072, "mamba_n_heads": 48,
              "mamba_d_head": 64, "mamba_n_groups": 1, "mamba_d_state": 256, "mamba_d_conv": 4}  # fmt: skip
    p, b = size(config, 5000, tp=2)
    assert p.model.describe() == "24 full + 24 mamba beside attention"
    assert b.data == 24 * 2 * 1 * 128 * 5000 * BF16
    assert b.state == 24 * ((3072 + 2 * 2 * 256) // 2 * 3 + 24 * 64 * 256) * BF16


def test_granite_4_h_lists_mamba_and_attention_layers():
    config = {"model_type": "granitemoehybrid", "hidden_size": 1536, "num_attention_heads": 12,
              "num_key_value_heads": 4, "num_hidden_layers": 4, "mamba_n_heads": 48, "mamba_d_head": "auto",
              "mamba_n_groups": 1, "mamba_d_state": 128, "mamba_d_conv": 4, "mamba_expand": 2,
              "layer_types": ["mamba", "mamba", "attention", "mamba"]}  # fmt: skip
    p, b = size(config, 300)
    assert p.model.describe() == "3 mamba + 1 full"
    assert b.data == 1 * 2 * 4 * 128 * 300 * BF16
    assert b.state == 3 * ((3072 + 2 * 128) * 3 + 48 * (3072 // 48) * 128) * BF16  # head_dim auto = 3072 / 48
    bare = hfconfig.normalise({**config, "layer_types": None}, "c", "t")  # GraniteMoeHybridConfig: all Mamba
    assert bare.model.describe() == "4 mamba"


def test_nemotron_nas_varying_kv_heads_and_no_op_layers():
    blocks = [{"attention": {"n_heads_in_group": 8}}, {"attention": {"no_op": True}},
              {"attention": {"n_heads_in_group": 4}}, {"attention": {"replace_with_linear": True}}]  # fmt: skip
    config = {"model_type": "nemotron-nas", "hidden_size": 1024, "num_attention_heads": 16, "num_hidden_layers": 4,
              "num_key_value_heads": None, "block_configs": blocks}  # fmt: skip
    p, b = size(config, 1000)
    assert p.model.describe() == "2 full + 2 none" and p.model.layer_kv_heads == (2, None, 4, None)
    assert b.data == (2 + 4) * 2 * 64 * 1000 * BF16  # 16 / 8 and 16 / 4 KV heads of 1024 / 16
    _, b4 = size(config, 1000, tp=4)  # 2 KV heads replicated to 1 per rank, 4 split to 1 each
    assert b4.data == (1 + 1) * 2 * 64 * 1000 * BF16
    with pytest.raises(InputError, match=r"block_configs\[0\].attention.n_heads_in_group: 3 must be a positive divisor"):
        hfconfig.normalise({**config, "block_configs": [{"attention": {"n_heads_in_group": 3}}] * 4}, "c", "t")


def test_a_named_variant_replaces_every_attention_layer_alike():
    blocks = [{"attention": {"n_heads_in_group": 8}}, {"attention": {"n_heads_in_group": 4}}]
    config = {"model_type": "nemotron-nas", "hidden_size": 1024, "num_attention_heads": 16, "num_hidden_layers": 2,
              "block_configs": blocks}  # fmt: skip
    p = hfconfig.normalise(config, "c", "t")
    mqa = build_spec("mqa", p, {}, p.name)
    groups = serving.layer_groups(mqa, p.model, 2)
    assert [(g.count, g.kv_heads_per_gpu) for g in groups] == [(2, 1)]


def test_llama4_rules_for_rope_layers():
    text = {"hidden_size": 1024, "num_attention_heads": 8, "num_key_value_heads": 2, "num_hidden_layers": 4}
    explicit = hfconfig.normalise({"model_type": "llama4", "text_config": {**text, "no_rope_layers": [1, 0, 1, 1]}},
                                  "c", "t")  # fmt: skip
    assert explicit.model.layer_types == ("chunked", "full", "chunked", "chunked") and explicit.model.chunk == 8192
    off = hfconfig.normalise({"model_type": "llama4", "text_config": {**text, "attention_chunk_size": None}}, "c", "t")
    assert off.model.describe() == "4 full"  # no chunk size: every layer attends to every token
    with pytest.raises(InputError, match="nope_layer_interval: 2 disagrees with no_rope_layer_interval 4"):
        hfconfig.normalise({"model_type": "llama4", "text_config": {**text, "nope_layer_interval": 2}}, "c", "t")
