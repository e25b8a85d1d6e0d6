"""Tiny random Hugging Face checkpoints and the reference outputs of their attention modules.

`transformers` is a test-only dependency (the `dev` extra): test modules that import this one call
`pytest.importorskip("transformers", ...)` first, so they skip cleanly without it. Everything is
built offline from configs and written with `save_pretrained`; nothing is downloaded.
"""

from __future__ import annotations

import copy
import inspect

import torch

VOCAB, HIDDEN = 96, 64


def _randomise(model, seed: int) -> None:
    """transformers initialises biases to zero and norm weights to one: make every parameter
    random so that biases and norms are really exercised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            p.copy_(1.0 + 0.1 * noise if name.endswith("norm.weight") else 0.1 * noise)


def llama_config(**overrides):
    from transformers import LlamaConfig

    fields = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    return LlamaConfig(**{**fields, **overrides})


def qwen2_config(**overrides):
    from transformers import Qwen2Config

    fields = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=1,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    return Qwen2Config(**{**fields, **overrides})


def deepseek_v3_config(**overrides):
    from transformers import DeepseekV3Config

    fields = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=96, moe_intermediate_size=16,
                  num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=16,
                  q_lora_rank=24, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8, n_routed_experts=2,
                  num_experts_per_tok=1, n_group=1, topk_group=1, first_k_dense_replace=1,
                  max_position_embeddings=256)  # fmt: skip
    return DeepseekV3Config(**{**fields, **overrides})


def deepseek_v2_config(**overrides):
    from transformers import DeepseekV2Config

    fields = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=96, moe_intermediate_size=16,
                  num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=16,
                  q_lora_rank=None, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8, n_routed_experts=2,
                  num_experts_per_tok=1, first_k_dense_replace=1, max_position_embeddings=256)  # fmt: skip
    return DeepseekV2Config(**{**fields, **overrides})


def mistral_config(**overrides):
    from transformers import MistralConfig

    fields = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=1,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    return MistralConfig(**{**fields, **overrides})


def qwen2_moe_config(**overrides):
    from transformers import Qwen2MoeConfig

    fields = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=96, moe_intermediate_size=16,
                  shared_expert_intermediate_size=16, num_experts=2, num_experts_per_tok=1, num_hidden_layers=1,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    return Qwen2MoeConfig(**{**fields, **overrides})


CONFIGS = {"llama": llama_config, "qwen2": qwen2_config, "deepseek_v3": deepseek_v3_config,
           "deepseek_v2": deepseek_v2_config, "mistral": mistral_config, "qwen2_moe": qwen2_moe_config}  # fmt: skip


def edit_config(folder, **changes) -> dict:
    """Rewrite `folder`/config.json with `changes` (a value of None removes the key), as a user
    editing a downloaded config would; returns the new mapping."""
    import json

    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))
    return config


def reload(folder):
    """transformers' own reading of the checkpoint in `folder` (float32, eval, SDPA)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa").eval()


def build(kind: str, folder, seed: int = 0, edit=None, save_kw=None, **overrides):
    """A random model of `kind`, optionally edited (`edit(model)`), saved to `folder`; returns
    the model (float32, eval, SDPA attention)."""
    from transformers import AutoModelForCausalLM

    config = CONFIGS[kind](**overrides)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    _randomise(model, seed)
    if edit is not None:
        edit(model)
    model.save_pretrained(folder, **(save_kw or {}))
    return model


def float64_norms(model) -> None:
    """transformers' RMSNorm computes in float32 whatever the input dtype; for the float64
    comparison run the same formula, w · x / sqrt(mean(x²) + eps), in the input's dtype."""
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            eps = module.variance_epsilon

            def forward(x, m=module, eps=eps):
                return m.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

            module.forward = forward


def position_embeddings(model, x, rope=None):
    """What the model feeds its attention modules for positions 0..T-1. float32: the model's own
    rotary module. float64: cos/sin from `rope`'s frequencies and attention factor (attncli's,
    which the caller first checks against the model's rotary buffer), in float64, laid out as the
    model's rotary module lays them out."""
    B, T, _ = x.shape
    rotary = model.model.rotary_emb
    pos = torch.arange(T)[None].expand(B, T)
    if x.dtype == torch.float32:
        return rotary(x, pos)
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), rope.inv_freq)  # (T, dim/2)
    if type(rotary).__name__.startswith("DeepseekV2"):
        return torch.polar(torch.ones_like(freqs), freqs)[None].expand(B, T, -1) * rope.attention_factor
    emb = torch.cat([freqs, freqs], dim=-1)[None].expand(B, T, -1)  # (B, T, dim)
    return emb.cos() * rope.attention_factor, emb.sin() * rope.attention_factor


def attention_output(model, layer: int, x, rope=None):
    """The transformers attention module's output for hidden states x at positions 0..T-1, causal."""
    attn = model.model.layers[layer].self_attn
    with torch.no_grad():
        return attn(hidden_states=x, position_embeddings=position_embeddings(model, x, rope), attention_mask=None)[0]


# ------------------------------------------------------------------------------------------------
# any architecture: a tiny config of any model_type, and its attention module's output, prefill or
# one cached decode step, with the mask and position embeddings the model would give that layer

TINY = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            pad_token_id=None, bos_token_id=None, eos_token_id=None)  # no special ids past the tiny vocabulary  # fmt: skip


def build_gemma3_vision(folder, seed: int = 0, **text):
    """A tiny Gemma 3 vision-language checkpoint (model_type gemma3: a SigLIP tower + gemma3_text)."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    config = Gemma3Config(text_config={**{k: v for k, v in TINY.items()}, "head_dim": 16, **text},
                          vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                             num_attention_heads=2, image_size=28, patch_size=14),
                          mm_tokens_per_image=4, image_token_index=95, boi_token_index=93, eoi_token_index=94)  # fmt: skip
    config._attn_implementation = "eager"
    config.text_config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config).eval()
    _randomise(model, seed)
    model.save_pretrained(folder)
    return model


def build_any(model_type: str, folder, seed: int = 0, attn="eager", **overrides):
    """A random `model_type` model from AutoConfig.for_model(TINY + overrides), saved to `folder`;
    returns it (float32, eval, eager attention: the readable truth, and the only implementation
    that applies Gemma 2's soft-capping and GPT-OSS's sinks)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, **{**TINY, **overrides})
    config._attn_implementation = attn
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    _randomise(model, seed)
    model.save_pretrained(folder)
    return model


def parts(model, layer: int):
    """(attention module, rotary module or None) of a layer."""
    base = model.base_model
    base = getattr(base, "language_model", base)  # a multimodal wrapper's language model (gemma3)
    layers = getattr(base, "layers", None)
    layers = layers if layers is not None else base.h
    block = layers[layer]
    attn = next(getattr(block, n) for n in ("self_attn", "attention", "self_attention") if hasattr(block, n))
    return attn, getattr(base, "rotary_emb", None)


# Models whose mask is sliding over config.sliding_window on every layer (their modeling files:
# `mask_function = create_causal_mask if config.sliding_window is None else create_sliding_window_causal_mask`)
CONFIG_WINDOW = ("mistral", "mixtral", "phi3", "starcoder2", "qwen3_moe")


def window_of(model, layer: int):
    """The sliding window transformers applies to this layer (None: every earlier token): the
    attention module's own `sliding_window` where it keeps one (Qwen2/3, Gemma 2/3, GPT-OSS,
    SmolLM3), else the config's for the models above."""
    attn, _ = parts(model, layer)
    if hasattr(attn, "sliding_window"):
        return attn.sliding_window or None
    config = getattr(model.config, "text_config", model.config)
    return getattr(config, "sliding_window", None) if config.model_type in CONFIG_WINDOW else None


def _rotary(rotary, x, pos, layer_type):
    return rotary(x, pos) if layer_type is None else rotary(x, pos, layer_type)


def _layout(rotary, x, layer_type):
    """Which frequency each cos/sin column holds, found by running the rotary module (a copy) on
    distinct tiny marker frequencies at position 1, where sin(f) ≈ f."""
    probe = copy.deepcopy(rotary).float()
    name = "inv_freq" if layer_type is None else f"{layer_type}_inv_freq"
    inv = getattr(probe, name)
    markers = 1e-4 * (torch.arange(inv.numel(), dtype=torch.float32) + 1)
    inv.copy_(markers)
    if hasattr(probe, "rope_type"):
        probe.rope_type = "default" if layer_type is None else {k: "default" for k in probe.rope_type}
    scale = probe.attention_scaling if layer_type is None else getattr(probe, f"{layer_type}_attention_scaling", 1.0)
    _, sin = _rotary(probe, x.float()[:1, :2], torch.tensor([[1, 1]]), layer_type)
    cols = (sin[0, 0] / scale / 1e-4).round().long() - 1  # (columns,) frequency index per column
    return cols


def position_embeddings_at(model, layer: int, x, positions, inv_freq64=None, layer_type=None):
    """What the model feeds this layer's attention for tokens at `positions`: its own rotary
    module in float32; in float64, cos/sin of attncli's frequencies (checked against the model's
    buffer by the caller), in the rotary module's column layout and attention scaling."""
    _, rotary = parts(model, layer)
    B = x.shape[0]
    pos = torch.as_tensor(positions)[None].expand(B, -1)
    if x.dtype == torch.float32 or rotary is None or inv_freq64 is None:  # (None: the layer has no RoPE)
        return None if rotary is None else _rotary(rotary, x, pos, layer_type)
    cols = _layout(rotary, x, layer_type)
    scale = rotary.attention_scaling if layer_type is None else getattr(rotary, f"{layer_type}_attention_scaling", 1.0)
    if callable(inv_freq64):  # frequencies of a call ending at max(positions) (dynamic NTK, longrope)
        inv_freq64 = torch.as_tensor(inv_freq64(max(positions) + 1), dtype=torch.float64)
    angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * inv_freq64[cols][None]  # (T, columns)
    return (angles.cos() * scale)[None].expand(B, -1, -1), (angles.sin() * scale)[None].expand(B, -1, -1)


def causal_mask(q_positions, k_positions, window, dtype, batch):
    """Additive (B, 1, Tq, Tk) mask: 0 where key k is at most the query's position and, with a
    window W, less than W positions behind it (transformers' sliding_window_overlay)."""
    q = torch.as_tensor(q_positions)[:, None]
    k = torch.as_tensor(k_positions)[None, :]
    ok = k <= q
    if window is not None:
        ok &= (q - k) < window
    mask = torch.zeros(ok.shape, dtype=dtype).masked_fill(~ok, torch.finfo(dtype).min)
    return mask[None, None].expand(batch, 1, -1, -1)


def attention_run(model, layer: int, x, window=None, decode=False, inv_freq64=None, layer_type=None):
    """transformers' attention module of `layer` on x (B, T, d) at positions 0..T-1: the whole
    prefill's output (B, T, d), or (decode) the output of the last token as one cached decode step
    after a prefill of the T − 1 before it (B, 1, d), through a DynamicCache."""
    from transformers import DynamicCache

    attn, _ = parts(model, layer)
    B, T, _ = x.shape

    def call(xs, positions, keys, cache):
        pe = position_embeddings_at(model, layer, x, positions, inv_freq64, layer_type)
        mask = causal_mask(positions, keys, window, x.dtype, B)
        kw = dict(hidden_states=xs, attention_mask=mask, position_embeddings=pe)
        if "alibi" in inspect.signature(attn.forward).parameters:  # Falcon's (RoPE) layers take alibi=None
            kw["alibi"] = None
        if cache is not None:  # the cache argument's name differs: cache (transformers 5), layer_past (GPT-NeoX)
            params = inspect.signature(attn.forward).parameters
            kw[next((n for n in ("cache", "layer_past") if n in params), "past_key_values")] = cache
            kw["cache_position"] = torch.as_tensor(positions)
        with torch.no_grad():
            return attn(**kw)[0]

    _, rotary = parts(model, layer)
    if rotary is not None:  # a fresh generation: one call at position 0 resets a dynamic rotary's grown state
        position_embeddings_at(model, layer, x.float(), [0], layer_type=layer_type)
    if not decode:
        return call(x, list(range(T)), list(range(T)), None)
    cache = DynamicCache()
    call(x[:, : T - 1], list(range(T - 1)), list(range(T - 1)), cache)
    return call(x[:, T - 1 :], [T - 1], list(range(T)), cache)


def float64_model(model, attn: str = "sdpa"):
    """A float64 copy whose norms compute in float64 (transformers' upcast them to float32),
    running `attn` attention: SDPA, because transformers' eager path takes its softmax in float32
    whatever the dtype (eager_attention_forward: softmax(..., dtype=torch.float32))."""
    model = copy.deepcopy(model).double()
    model.config._attn_implementation = attn
    for module in model.modules():
        name = type(module).__name__
        if name.endswith("RMSNorm"):
            eps = getattr(module, "variance_epsilon", getattr(module, "eps", None))
            one = 1.0 if name.startswith("Gemma") else 0.0  # Gemma scales by (1 + w)

            def forward(x, m=module, eps=eps, one=one):
                return (one + m.weight) * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

            module.forward = forward
        elif name == "CohereLayerNorm":

            def forward(x, m=module):
                mean = x.mean(-1, keepdim=True)
                var = (x - mean).pow(2).mean(-1, keepdim=True)
                return m.weight * ((x - mean) * torch.rsqrt(var + m.variance_epsilon))

            module.forward = forward
    return model
