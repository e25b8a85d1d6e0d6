"""Tiny random Hugging Face checkpoints and the reference outputs of their attention modules.

`transformers` is a test-only dependency (the `dev` extra): test modules that import this one call
`pytest.importorskip("transformers", ...)` first, so they skip cleanly without it. Everything is
built offline from configs and written with `save_pretrained`; nothing is downloaded.
"""

from __future__ import annotations

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
