"""Phi-3 (transformers' models/phi3): one fused `qkv_proj` ([q; k; v] rows: h·hd, then g·hd twice)
and `o_proj` under `model.layers.N.self_attn.`, no biases, half-split RoPE over the first
int(head_dim · partial_rotary_factor) elements (default 1), `sliding_window` on every layer
(default none). Phi3Config declares `original_max_position_embeddings` (default 4096), which
transformers lets override the one inside a llama3/yarn/longrope mapping; longrope (Phi-3's
128k models) switches from short_factor to long_factor past it.
"""

from __future__ import annotations

from .llama import gqa_config
from .reader import Fields, ModelConfig, Reader, gqa_heads, register, rope_of


class Phi3Reader(Reader):
    model_types = ("phi3",)
    features = "fused qkv_proj, longrope (short/long factors), partial rotary, sliding_window"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "phi3", where)
        _, hd = gqa_heads(f, f.int("hidden_size"), f.int("num_attention_heads"))
        original = f.int("original_max_position_embeddings")  # Phi3Config declares the field
        rope = rope_of(f, hd, original_max=original)
        return gqa_config(f, window=f.int("sliding_window", required=False), rope=rope)

    def stored(self, c: ModelConfig) -> dict:
        d, h, g, hd = c.d_model, c.n_heads, c.n_kv_heads, c.head_dim
        return {"qkv_proj.weight": (((h + 2 * g) * hd, d),
                                    f"(num_attention_heads {h} + 2 × num_key_value_heads {g}) × head_dim {hd}, hidden_size {d}"),
                "o_proj.weight": ((d, h * hd), f"hidden_size {d}, num_attention_heads {h} × head_dim {hd}")}  # fmt: skip

    def to_module(self, c: ModelConfig, tensors: dict) -> dict:
        q, k, v = tensors["qkv_proj.weight"].split([c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim,
                                                     c.n_kv_heads * c.head_dim])  # fmt: skip
        return {"q_proj.weight": q, "k_proj.weight": k, "v_proj.weight": v, "o_proj.weight": tensors["o_proj.weight"]}


register(Phi3Reader())
