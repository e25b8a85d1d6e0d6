"""Every architecture attncli reads (issue 14, acceptance 1): a tiny random checkpoint that
transformers wrote, read by attncli, gives the output of transformers' own attention module
(eager) on the same input, in a prefill and in one cached decode step (transformers through a
DynamicCache, attncli through its own cache), on attncli's fast and plain-math paths: relative L2
≤ 1e-5 in float32 and ≤ 1e-10 in float64 (transformers' model cast to float64, its norms computed
in float64, its RoPE tables from attncli's float64 frequencies after they are checked against the
model's own buffer). Each checkpoint is built once for the module; shapes are tiny (hidden 64,
2 layers, 4 heads)."""

import inspect

import pytest

pytest.importorskip("transformers", minversion="5",
                    reason="the real-weights tests build checkpoints with transformers >= 5 (pip install -e '.[dev]')")
pytest.importorskip("safetensors", reason="attncli reads checkpoints with safetensors")

import torch  # noqa: E402

import hf_tiny  # noqa: E402
from attncli.weights import Checkpoint  # noqa: E402

MOE = dict(num_experts=2, num_experts_per_tok=1, moe_intermediate_size=16)
GEMMA = dict(head_dim=16, query_pre_attn_scalar=24, sliding_window=4)
# build: (model_type, config overrides); every field that changes the layer is set away from the
# plain default (a window shorter than the input, a soft-cap that bends the scores, ...)
BUILDS = {
    "qwen3": ("qwen3", dict(head_dim=16, use_sliding_window=True, sliding_window=4, max_window_layers=1)),
    # dynamic NTK past max_position_embeddings 8: the prefill (11 tokens) and the decode step's
    # prefix (10) and new token (11) each rotate with the base of their own length
    "llama-dynamic": ("llama", dict(max_position_embeddings=8, rope_parameters={"rope_type": "dynamic", "factor": 2.0,
                                                                              "rope_theta": 1e4})),
    "qwen3_moe": ("qwen3_moe", dict(head_dim=16, **MOE)),
    # Qwen2-MoE's own rule: sliding on even layers below max_window_layers
    "qwen2_moe": ("qwen2_moe", dict(MOE, shared_expert_intermediate_size=16, use_sliding_window=True, sliding_window=4,
                                    max_window_layers=2)),
    "gemma": ("gemma", dict(head_dim=16)),
    "gemma2": ("gemma2", dict(GEMMA, attn_logit_softcapping=0.5)),
    "gemma3": ("gemma3_text", dict(GEMMA, layer_types=["sliding_attention", "full_attention"],
                                   rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
                                                    "full_attention": {"rope_type": "linear", "factor": 2.0,
                                                                       "rope_theta": 1e5}})),
    "gemma3-vision": ("gemma3", dict(sliding_window=4, layer_types=["sliding_attention", "full_attention"])),
    "phi3": ("phi3", dict(partial_rotary_factor=0.5, original_max_position_embeddings=8, max_position_embeddings=32,
                          rope_parameters={"rope_type": "longrope", "rope_theta": 1e4, "short_factor": [1.0, 1.1, 1.3, 2.0],
                                           "long_factor": [1.0, 1.5, 3.0, 6.0]})),
    "olmo2": ("olmo2", {}),
    "gpt_oss": ("gpt_oss", dict(head_dim=16, sliding_window=4, num_local_experts=2, num_experts_per_tok=1)),
    "granite": ("granite", dict(attention_multiplier=0.3, embedding_multiplier=2.0, attention_bias=True)),
    "starcoder2": ("starcoder2", dict(sliding_window=4)),
    "smollm3": ("smollm3", dict(no_rope_layers=[1, 0])),
    "gpt_neox": ("gpt_neox", dict(rotary_pct=0.5, rotary_emb_base=5000)),
    "phi": ("phi", {}),
    "stablelm": ("stablelm", dict(qk_layernorm=True, use_qkv_bias=True)),
    "cohere": ("cohere", dict(use_qk_norm=True, attention_bias=True)),
    "glm4": ("glm4", dict(head_dim=16)),
    "falcon-new": ("falcon", dict(new_decoder_architecture=True, num_kv_heads=2, bias=True)),
    "falcon-mqa": ("falcon", dict(multi_query=True)),
    "falcon-mha": ("falcon", dict(multi_query=False, bias=True)),
}
# case: (build, layer)
ARCHS = {
    "llama-dynamic-ntk": ("llama-dynamic", 1), "qwen3-L0-full": ("qwen3", 0), "qwen3-L1-sliding": ("qwen3", 1), "qwen3_moe": ("qwen3_moe", 1),
    "qwen2_moe-L0-sliding": ("qwen2_moe", 0),
    "gemma": ("gemma", 1), "gemma2-L0-sliding-softcap": ("gemma2", 0), "gemma2-L1-full": ("gemma2", 1),
    "gemma3-L0-sliding-local": ("gemma3", 0), "gemma3-L1-full-global": ("gemma3", 1),
    "gemma3-vision-language-model": ("gemma3-vision", 1), "phi3-longrope-partial": ("phi3", 1), "olmo2": ("olmo2", 1),
    "gpt_oss-L0-sliding-sinks": ("gpt_oss", 0), "gpt_oss-L1-full": ("gpt_oss", 1),
    "granite": ("granite", 0), "starcoder2-window-bias": ("starcoder2", 1),
    "smollm3-L0-rope": ("smollm3", 0), "smollm3-L1-nope": ("smollm3", 1),
    "gpt_neox": ("gpt_neox", 1), "phi": ("phi", 1), "stablelm-qk_layernorm": ("stablelm", 1),
    "cohere-qk_norm": ("cohere", 1), "glm4": ("glm4", 1),
    "falcon-new-decoder": ("falcon-new", 1), "falcon-multi-query": ("falcon-mqa", 0), "falcon-mha": ("falcon-mha", 1),
}
# Where transformers' own module computes a step in float32 whatever the dtype, its float64 output
# is only that exact: Gemma 2 needs eager attention (SDPA cannot soft-cap), whose softmax is
# float32; Cohere's apply_rotary_pos_emb rotates q and k in float32.
F32_STEP = {"gemma2": 1e-6, "cohere": 1e-6}
EAGER_ONLY = {"gemma2"}
EAGER64 = {"gpt_oss"}  # SDPA has no sinks; GPT-OSS's own eager softmax keeps the dtype (exact in float64)
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
TOKENS = 11


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """build → (folder, transformers model), each built once, on first use."""
    cache = {}

    def get(name):
        if name not in cache:
            model_type, overrides = BUILDS[name]
            folder = tmp_path_factory.mktemp(name)
            build = hf_tiny.build_gemma3_vision if model_type == "gemma3" else \
                lambda f, **kw: hf_tiny.build_any(model_type, f, **kw)  # fmt: skip
            cache[name] = (folder, build(folder, seed=list(BUILDS).index(name), **overrides))
            if "layer_types" not in overrides and model_type != "gemma3":
                # save_pretrained writes out the layer_types the class derived; released configs
                # mostly leave them out, so drop them: attncli must derive them by the class's rule
                hf_tiny.edit_config(folder, layer_types=None)
        return cache[name]

    return get


def rel(a, b) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def layer_type_of(model, layer):
    """The layer type a per-layer-type rotary module (Gemma 3) takes, else None."""
    _, rotary = hf_tiny.parts(model, layer)
    if rotary is None or "layer_type" not in inspect.signature(rotary.forward).parameters:
        return None
    return getattr(model.config, "text_config", model.config).layer_types[layer]


def attncli_decode(module, x):
    B, T, _ = x.shape
    with torch.no_grad():
        cache = module.allocate_cache(B, T)
        module.fill_cache(cache, x[:, : T - 1])
        return module.step(x[:, T - 1 :], cache, T - 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("name", ARCHS)
def test_prefill_and_decode_equal_transformers(built, name, dtype):
    build, layer = ARCHS[name]
    folder, model = built(build)
    ckpt = Checkpoint(str(folder))
    (spec,) = ckpt.specs(layer)
    module = ckpt.module(spec, layer, dtype=dtype)
    layer_type = layer_type_of(model, layer)
    inv64 = None
    if module.rope is not None:  # attncli's frequencies against the model's own buffer
        _, rotary = hf_tiny.parts(model, layer)
        probe = torch.zeros(1, TOKENS, hf_tiny.HIDDEN)
        hf_tiny.position_embeddings_at(model, layer, probe, list(range(TOKENS)), layer_type=layer_type)  # (dynamic state)
        buffer = rotary.inv_freq if layer_type is None else getattr(rotary, f"{layer_type}_inv_freq")
        at = module.rope.freq_at  # frequencies that depend on the length of the call (longrope, dynamic)
        now = module.rope.inv_freq if at is None else torch.tensor(at(TOKENS), dtype=torch.float64)
        assert torch.allclose(now, buffer.double(), rtol=2e-6, atol=0)
        inv64 = module.rope.inv_freq if at is None else at
    tol = TOL[dtype] if dtype == torch.float32 else F32_STEP.get(build, TOL[dtype])
    reference = model if dtype == torch.float32 else \
        hf_tiny.float64_model(model, attn="eager" if build in EAGER_ONLY or build in EAGER64 else "sdpa")  # fmt: skip
    x = torch.randn(2, TOKENS, hf_tiny.HIDDEN, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(dtype)
    window = hf_tiny.window_of(model, layer)  # transformers' own, not attncli's
    assert spec.window == window, (name, spec.window, window)
    run = dict(window=window, inv_freq64=inv64, layer_type=layer_type)
    y_ref = hf_tiny.attention_run(reference, layer, x, **run)
    with torch.no_grad():
        for math in (False, True):
            assert rel(module(x, math=math)[0], y_ref) <= tol, (name, "prefill", math)
    step_ref = hf_tiny.attention_run(reference, layer, x, decode=True, **run)
    assert rel(attncli_decode(module, x), step_ref) <= tol, (name, "decode")
