"""Cohere (transformers' models/cohere; Command-R): `{q,k,v,o}_proj` (biases under
`attention_bias`), interleaved RoPE over the whole head (pairs (2i, 2i+1), CohereRotaryEmbedding's
repeat_interleave; default_theta 500000), optional per-head LayerNorms of queries and keys
(`use_qk_norm`: `q_norm.weight` of (heads, head_dim), no bias, eps layer_norm_eps), and a
LayerNorm without bias before attention (the block runs attention and MLP in parallel on it).
"""

from __future__ import annotations

import dataclasses

from .llama import QKVO, gqa_config
from .reader import Fields, ModelConfig, Reader, gqa_heads, register, rope_of


class CohereReader(Reader):
    model_types = ("cohere",)
    norm_kind = "layer"
    features = "interleaved RoPE, optional per-head q/k LayerNorm (use_qk_norm), LayerNorm input without bias"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "cohere", where)
        _, hd = gqa_heads(f, f.int("hidden_size"), f.int("num_attention_heads"))
        eps = f.number("layer_norm_eps")
        c = gqa_config(f, biases=QKVO if f.flag("attention_bias") else (), rope=rope_of(f, hd, interleave=True),
                       qk_norm=f.flag("use_qk_norm"), qk_norm_type="layer", norm_eps=eps)  # fmt: skip
        return dataclasses.replace(c, rms_norm_eps=eps)


register(CohereReader())
