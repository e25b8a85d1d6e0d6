"""The config.json normaliser: which field gives the KV heads, head_dim, windows, MLA, hybrid
layers, and one-line exit-2 errors for configs it cannot read or that contradict themselves."""

import json
from pathlib import Path

import pytest

from attncli import hfconfig
from attncli.errors import InputError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf"
BASE = {"model_type": "llama", "hidden_size": 512, "num_attention_heads": 8, "num_hidden_layers": 4, "vocab_size": 1000}


def normalise(**fields):
    data = {k: v for k, v in {**BASE, **fields}.items() if v is not None}
    return hfconfig.normalise(data, "config.json", "t")


def kv(preset):
    return preset.variants.get("gqa", {}).get("n_kv_heads") or {"mha": preset.n_heads, "mqa": 1}.get(preset.model.attention)


@pytest.mark.parametrize("fields,heads,source", [
    ({}, 8, "num_attention_heads (no KV head field; LlamaConfig's default: one KV head per query head)"),
    ({"model_type": "mistral"}, 8, "num_key_value_heads (MistralConfig's default)"),  # MistralConfig: 8
    ({"num_key_value_heads": 2}, 2, "num_key_value_heads"),
    ({"num_kv_heads": 4}, 4, "num_kv_heads"),
    ({"n_head_kv": 1}, 1, "n_head_kv"),
    ({"multi_query_group_num": 2}, 2, "multi_query_group_num"),  # ChatGLM
    ({"num_key_value_heads": 2, "num_kv_heads": 2}, 2, "num_kv_heads"),  # aliases that agree
    ({"multi_query": True}, 1, "multi_query"),  # GPT-BigCode, Falcon-7B
    ({"model_type": "gpt_bigcode"}, 1, "multi_query"),  # GPTBigCodeConfig's default: multi_query true
    ({"model_type": "falcon", "multi_query": True, "num_kv_heads": 8}, 1,
     "multi_query (num_kv_heads ignored, as in transformers)"),
    ({"model_type": "falcon", "multi_query": True, "new_decoder_architecture": True, "num_kv_heads": 4}, 4, "num_kv_heads"),
])  # fmt: skip
def test_kv_heads_fields_in_vllm_order(fields, heads, source):
    p = normalise(**fields)
    assert (kv(p), p.model.kv_heads_from) == (heads, source)
    assert p.model.attention == {8: "mha", 1: "mqa"}.get(heads, "gqa")


def test_falcon_fixtures():
    seven, forty = hfconfig.load(FIXTURES / "falcon-7b"), hfconfig.load(FIXTURES / "falcon-40b")
    assert (seven.model.attention, seven.model.kv_heads_from, seven.n_heads, seven.d_model // seven.n_heads) == (
        "mqa", "multi_query", 71, 64)  # fmt: skip
    assert (forty.model.attention, forty.variants["gqa"]["n_kv_heads"], forty.model.kv_heads_from) == ("gqa", 8, "num_kv_heads")
    assert seven.model.mlp == "plain" and seven.model.dense_d_ff == 4 * 4544  # Falcon's 4·d GELU MLP


def test_explicit_head_dim_wins():
    assert normalise(head_dim=128).head_dim == 128  # not 512 / 8 = 64
    assert normalise().head_dim is None  # derived later as 512 / 8
    assert hfconfig.load(FIXTURES / "gemma-2-9b").head_dim == 256  # not 3584 / 16 = 224


def test_sliding_windows_only_where_enabled():
    assert normalise(sliding_window=256).model.layer_types == ("sliding",) * 4  # Mistral-style: every layer
    assert normalise(sliding_window=None).model.describe() == "4 full"
    qwen = hfconfig.load(FIXTURES / "qwen2-7b")  # use_sliding_window: false
    assert qwen.model.describe() == "28 full" and qwen.model.window is None
    on = normalise(model_type="qwen2", num_key_value_heads=2, sliding_window=64, use_sliding_window=True, max_window_layers=3)
    assert on.model.layer_types == ("full", "full", "full", "sliding")  # layers from max_window_layers on slide
    default_off = normalise(model_type="qwen2", num_key_value_heads=2, sliding_window=64, max_window_layers=1)  # transformers' default: off
    assert default_off.model.describe() == "4 full"


def test_alternating_local_and_global_layers():
    gemma = hfconfig.load(FIXTURES / "gemma-2-9b")
    assert gemma.model.layer_types[:4] == ("sliding", "full", "sliding", "full")
    assert gemma.model.describe() == "21 sliding(4096) + 21 full"
    g3 = normalise(model_type="gemma3_text", num_hidden_layers=12, sliding_window=1024)
    assert g3.model.layer_types == ("sliding",) * 5 + ("full",) + ("sliding",) * 5 + ("full",)
    explicit = normalise(model_type="gemma2", sliding_window=32,
                         layer_types=["full_attention", "full_attention", "sliding_attention", "full_attention"])  # fmt: skip
    assert explicit.model.layer_types == ("full", "full", "sliding", "full")  # an explicit list wins


def test_mla_configs_map_to_the_mla_family():
    v3, lite = hfconfig.load(FIXTURES / "deepseek-v3"), hfconfig.load(FIXTURES / "deepseek-v2-lite")
    assert v3.model.attention == "mla" and v3.variants["mla"]["kv_lora_rank"] == 512
    assert v3.variants["mla"]["q_lora_rank"] == 1536 and lite.variants["mla"]["q_lora_rank"] is None
    assert v3.model.moe.first_dense == 3 and v3.model.moe.experts == 256
    assert v3.model.kv_heads_from.startswith("kv_lora_rank")  # num_key_value_heads: 128 does not size the cache


def test_hybrid_linear_softmax_stacks():
    mm = hfconfig.load(FIXTURES / "minimax-text-01")
    assert mm.model.layer_types[:8] == ("linear",) * 7 + ("full",) and mm.model.describe() == "70 linear + 10 full"
    assert mm.model.linear.state_elements() == 64 * 128 * 128
    qn = hfconfig.load(FIXTURES / "qwen3-next-80b-a3b")
    assert qn.model.describe() == "36 linear + 12 full" and qn.model.attn_output_gate
    conv = (2 * 16 * 128 + 32 * 128) * (4 - 1)  # q, k, v channels × (kernel − 1) past inputs
    assert qn.model.linear.state_elements() == 32 * 128 * 128 + conv
    assert qn.model.linear.state_elements(tp=2) == (32 * 128 * 128 + conv) // 2


def test_text_config_of_a_multimodal_wrapper():
    p = hfconfig.normalise({"model_type": "wrapper", "tie_word_embeddings": False,
                            "text_config": {**BASE, "num_key_value_heads": 2}}, "config.json", "t")  # fmt: skip
    assert kv(p) == 2 and p.model.tie_embeddings is False


def test_absent_fields_take_their_model_types_defaults():
    """Each expected value is the config class's declared default (transformers 5), not hidden/heads."""
    bare = {"hidden_size": 512, "num_attention_heads": 8, "num_hidden_layers": 4}
    qwen3 = hfconfig.normalise({**bare, "model_type": "qwen3", "num_key_value_heads": 2}, "c", "t")
    assert qwen3.head_dim == 128  # Qwen3Config.head_dim = 128, not 512 / 8 = 64
    gemma3 = hfconfig.normalise({"model_type": "gemma3", "text_config": {**bare, "num_key_value_heads": 4}}, "c", "t")
    assert gemma3.head_dim == 256  # Gemma3TextConfig.head_dim = 256
    assert gemma3.model.describe() == "4 sliding(4096)"  # sliding_window 4096, every 6th layer global
    # Qwen2Config.num_key_value_heads = 32: with 8 heads that is refused, as transformers' check would
    with pytest.raises(InputError, match=r"num_key_value_heads: 32 KV heads \(Qwen2Config's default; the config gives none\) exceed the 8"):
        hfconfig.normalise({**bare, "model_type": "qwen2"}, "c", "t")
    mistral = hfconfig.normalise({**bare, "model_type": "mistral", "num_key_value_heads": 2}, "c", "t")
    assert mistral.model.describe() == "4 sliding(4096)"  # MistralConfig.sliding_window = 4096
    explicit_null = hfconfig.normalise({**bare, "model_type": "mistral", "sliding_window": None}, "c", "t")
    assert explicit_null.model.describe() == "4 full"  # an explicit null is kept, as transformers keeps it
    llava = hfconfig.normalise({"model_type": "llava", "text_config": {"model_type": "llama"}}, "c", "t")
    # LlamaConfig's defaults throughout: 4096 wide, 32 heads and layers, KV heads = heads, head_dim 128
    assert (llava.d_model, llava.n_heads, llava.n_layers, llava.model.attention) == (4096, 32, 32, "mha")


def test_a_type_without_defaults_must_give_what_defaults_would():
    bare = {"hidden_size": 512, "num_attention_heads": 8, "num_hidden_layers": 4}
    with pytest.raises(InputError, match="num_key_value_heads: missing, and model_type 'internlm2' has no defaults"):
        hfconfig.normalise({**bare, "model_type": "internlm2", "head_dim": 64}, "c", "t")
    with pytest.raises(InputError, match="head_dim: missing, and a config without model_type has no defaults"):
        hfconfig.normalise({**bare, "num_key_value_heads": 2}, "c", "t")
    p = hfconfig.normalise({**bare, "model_type": "internlm2", "num_key_value_heads": 2, "head_dim": 64}, "c", "t")
    assert (p.head_dim, kv(p)) == (64, 2)  # everything explicit: sized


def write(tmp_path, text) -> Path:
    path = tmp_path / "config.json"
    path.write_text(text if isinstance(text, str) else json.dumps(text))
    return path


BAD = [
    ({**{k: v for k, v in BASE.items() if k != "num_attention_heads"}, "model_type": "internlm2"},  # no defaults table
     "num_attention_heads: missing: no attention head count field (num_attention_heads, n_head, num_heads, n_heads)"),
    ({**BASE, "num_key_value_heads": -8}, "num_key_value_heads: -8 must be positive"),
    ({**BASE, "hidden_size": -4096}, "hidden_size: -4096 must be positive"),
    ({**BASE, "num_hidden_layers": 0}, "num_hidden_layers: 0 must be positive"),
    ({**BASE, "num_hidden_layers": "32"}, "num_hidden_layers: '32' is not a whole number"),
    ({**BASE, "num_key_value_heads": 3}, "num_key_value_heads: 3 KV heads do not divide the 8 attention heads"),
    ({**BASE, "num_key_value_heads": 16}, "num_key_value_heads: 16 KV heads exceed the 8 attention heads"),
    ({**BASE, "num_key_value_heads": 2, "num_kv_heads": 4}, "num_kv_heads: 4 disagrees with num_key_value_heads = 2"),
    ({**BASE, "n_head": 16}, "num_attention_heads: 8 disagrees with n_head = 16"),
    ({**BASE, "num_attention_heads": 7}, "head_dim: missing, and 7 heads (num_attention_heads) do not divide the hidden size 512"),
    ({**BASE, "sliding_window": -1}, "sliding_window: -1 must be positive"),
    ({**BASE, "layer_types": ["full_attention"] * 3}, "layer_types: must list one kind for each of the 4 layers"),
    ({**BASE, "layer_types": ["full_attention"] * 3 + ["local_attention"]}, "layer_types[3]: unknown layer kind 'local_attention'"),
    ({**BASE, "layer_types": ["full_attention"] * 3 + ["chunked_attention"]},
     "layer_types: lists chunked_attention layers but attention_chunk_size is not set"),
    ({**BASE, "layer_types": ["sliding_attention"] * 4}, "layer_types: lists sliding_attention layers but sliding_window is not set"),
    ({**BASE, "model_type": "qwen2", "num_key_value_heads": 2, "sliding_window": 8, "use_sliding_window": False, "layer_types": ["sliding_attention"] * 4},
     "layer_types: lists sliding_attention layers but use_sliding_window is false"),
    ({**BASE, "layer_types": ["linear_attention"] * 4}, "layer_types: lists linear_attention layers, but model_type 'llama'"),
    ({**BASE, "kv_lora_rank": 64}, "qk_nope_head_dim: missing: kv_lora_rank makes this an MLA config"),
    ({**BASE, "model_type": "jamba", "attn_layer_period": 4, "attn_layer_offset": 4}, "attn_layer_offset: 4 must be below"),
    ({**BASE, "layer_types": ["mamba"] * 4}, "layer_types: lists mamba layers, but model_type 'llama' has no known Mamba"),
    ({**BASE, "model_type": "bamba", "num_key_value_heads": 2, "layers_block_type": ["mamba"] * 4},
     "layers_block_type: is derived by BambaConfig from attn_layer_indices, which it would contradict"),
    ({**BASE, "model_type": "qwen2", "num_key_value_heads": 2, "layers_block_type": ["mamba"] * 4},
     "layers_block_type: Mamba layers of model_type 'qwen2' are not supported; attncli sizes those of nemotron_h"),
    ({**BASE, "attn_layer_period": 8}, "attn_layer_period: Mamba layers of model_type 'llama' are not supported"),
    ({"model_type": "mamba2", "hidden_size": 4096, "num_heads": 100, "num_hidden_layers": 64},
     "num_heads: 100 heads × head_dim 64 is not expand × hidden_size = 8192 (Mamba2Config requires it)"),
    ({**BASE, "is_encoder_decoder": True}, "is_encoder_decoder: encoder-decoder models are not supported"),
    ({**BASE, "text_config": [1, 2]}, "text_config: is not a JSON object of fields"),
    ({**BASE, "multi_query": "yes"}, "multi_query: 'yes' is not true or false"),
    ("{ \"hidden_size\": 512,", "unreadable JSON: Expecting property name enclosed in double quotes (line 1, column 22)"),
    ("[1, 2]", "must hold a JSON object of fields, not a list"),
]  # fmt: skip


@pytest.mark.parametrize("content,message", BAD, ids=lambda x: x[:40] if isinstance(x, str) else "")
def test_bad_configs_exit_2_naming_file_and_field(cli, tmp_path, content, message):
    path = write(tmp_path, content)
    r = cli("kv-memory", "--hf-config", path)
    assert r.code == 2, r.out
    assert r.err.count("\n") == 1 and "Traceback" not in r.err
    assert r.err.startswith(f"attncli: {path}: {message}"), r.err


def test_missing_and_unreadable_paths(cli, tmp_path):
    r = cli("kv-memory", "--hf-config", tmp_path / "nowhere")
    assert r.code == 2 and "nowhere: no such file or folder" in r.err
    r = cli("flops", "--hf-config", tmp_path)
    assert r.code == 2 and f"{tmp_path}: folder holds no config.json" in r.err
    binary = tmp_path / "config.json"
    binary.write_bytes(b"\xff\xfe\x00")
    r = cli("bench", "--hf-config", binary)
    assert r.code == 2 and "is not a UTF-8 text file" in r.err
    r = cli("compare", "--hf-config", FIXTURES / "llama-3.1-8b", "-p", "small")
    assert r.code == 2 and "--hf-config: give --preset or --hf-config, not both" in r.err


def test_normaliser_is_pure_standard_library():
    import ast

    source = (Path(hfconfig.__file__)).read_text()
    imported = {n.module if isinstance(n, ast.ImportFrom) else a.name for n in ast.walk(ast.parse(source))
                if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}  # fmt: skip
    assert imported <= {"__future__", "json", "pathlib", "errors", "spec", "models"}, imported


def test_a_preset_model_section_is_strict(tmp_path):
    from attncli import presets

    good = "name: m\nd_model: 64  # w\nn_heads: 4  # h\nn_layers: 2  # l\nmodel:  # m\n  attention: gqa  # a\n"
    path = tmp_path / "m.yaml"
    path.write_text(good + "  layer_patern: [full]  # typo\n")
    with pytest.raises(InputError, match="unknown key 'model.layer_patern'; did you mean 'layer_pattern'"):
        presets.load_preset(str(path))
    path.write_text(good + "  layer_pattern: [sliding]  # no window\n")
    with pytest.raises(InputError, match="model.window: must be set: some layers are sliding"):
        presets.load_preset(str(path))
    path.write_text(good + "  moe: {experts: 4, experts_per_token: 8, d_ff: 16}  # k > n\n")
    with pytest.raises(InputError, match="model.moe.experts_per_token: 8 exceeds moe.experts 4"):
        presets.load_preset(str(path))
    path.write_text(good + "  linear: {heads: 4, key_dim: 8, value_dim: 8}  # no kind\n  layer_pattern: [linear]  # l\n")
    with pytest.raises(InputError, match="missing key 'model.linear.kind'"):
        presets.load_preset(str(path))


def test_kv_memory_reads_only_the_fields_the_cache_needs(cli, tmp_path):
    """An MoE field the config lacks refuses parameter and FLOP counts, naming it, but not kv-memory."""
    path = write(tmp_path, {**BASE, "n_routed_experts": 8, "moe_intermediate_size": 64})
    r = cli("kv-memory", "--hf-config", path, "-s", "100", "--json", "-")
    assert r.code == 0, r.err
    assert r.rows()[0]["kv_cache_bytes"] == 2 * 8 * 64 * 4 * 100 * 2  # K and V · 8 heads · 64 dims · 4 layers · bf16
    for args in (["kv-memory", "--include-weights"], ["flops"]):
        r = cli(*args, "--hf-config", path)
        assert r.code == 2 and r.err.count("\n") == 1, (args, r.err)
        assert "num_experts_per_tok: missing: n_routed_experts makes this a mixture-of-experts model" in r.err, r.err
