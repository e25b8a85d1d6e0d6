"""Qwen2, Qwen2-MoE, Qwen3 and Qwen3-MoE (transformers' models/qwen2, qwen2_moe, qwen3,
qwen3_moe): Llama-shaped layers with

- qwen2: biases on q, k, v always (not o);
- qwen2_moe: biases on q, k, v under `qkv_bias` (Qwen2MoeConfig default true);
- qwen3, qwen3_moe: per-head RMSNorm of queries and keys before RoPE (`q_norm`, `k_norm`, weights
  of head_dim, eps rms_norm_eps), biases on all four under `attention_bias`.

Windows (`use_sliding_window`, default false, then `sliding_window`): Qwen2 and Qwen3 slide on
layers i ≥ max_window_layers unless `layer_types` says otherwise; Qwen2-MoE on the even layers
i < max_window_layers; Qwen3-MoE on every layer (each config class's own rule).
"""

from __future__ import annotations

from .llama import QKVO, gqa_config
from .reader import Fields, LayerAttn, ModelConfig, Reader, layer_types, register


def _layers(f: Fields, c: ModelConfig) -> tuple[LayerAttn, ...]:
    t, n = c.model_type, c.n_layers
    window = f.int("sliding_window", required=False) if f.flag("use_sliding_window") else None
    if window is None:
        return tuple(LayerAttn(None, c.rope) for _ in range(n))
    if t == "qwen3_moe":
        return tuple(LayerAttn(window, c.rope) for _ in range(n))
    first = f.int("max_window_layers", required=False, fallback=28)
    if t == "qwen2_moe":  # Qwen2MoeConfig: sliding when (i + 1) % 2 and i < max_window_layers
        rule = lambda i: "sliding_attention" if (i + 1) % 2 and i < first else "full_attention"  # noqa: E731
    else:  # Qwen2Config, Qwen3Config: sliding from layer max_window_layers on
        rule = lambda i: "sliding_attention" if i >= first else "full_attention"  # noqa: E731
    kinds = layer_types(f, n, rule)
    return tuple(LayerAttn(window if k == "sliding_attention" else None, c.rope) for k in kinds)


class QwenReader(Reader):
    model_types = ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe")
    features = "Qwen2: q/k/v biases; Qwen2-MoE: under qkv_bias; Qwen3: per-head q/k RMSNorm; windows by layer (use_sliding_window)"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        t = cfg["model_type"]
        f = Fields(cfg, t, where)
        qkv = QKVO[:3]
        if t == "qwen2":
            c = gqa_config(f, biases=qkv)
        elif t == "qwen2_moe":
            c = gqa_config(f, biases=qkv if f.flag("qkv_bias", True) else ())
        else:
            eps = f.number("rms_norm_eps")
            c = gqa_config(f, biases=QKVO if f.flag("attention_bias") else (), qk_norm=True, norm_eps=eps)
        return _replace(c, layers=_layers(f, c))


def _replace(c: ModelConfig, **changes) -> ModelConfig:
    import dataclasses

    return dataclasses.replace(c, **changes)


register(QwenReader())
