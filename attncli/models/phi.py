"""Phi (transformers' models/phi; Phi-1, 1.5, 2): `{q,k,v}_proj` and `dense` (the output) under
`model.layers.N.self_attn.`, all with biases; half-split RoPE over the first
int(head_dim · partial_rotary_factor) elements (PhiConfig fills in 0.5); a LayerNorm with bias
before attention (eps layer_norm_eps). Refused: `qk_layernorm: true` (a LayerNorm with bias
shared by the heads, which attncli's q/k norms do not have).
"""

from __future__ import annotations

from .llama import gqa_config
from .reader import Fields, ModelConfig, Reader, gqa_heads, register, rope_of

QKVO = ("q_proj", "k_proj", "v_proj", "o_proj")


class PhiReader(Reader):
    model_types = ("phi",)
    norm_kind = "layer"
    features = "dense biases, partial rotary (partial_rotary_factor 0.5), LayerNorm input"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "phi", where)
        f.refuse_if("qk_layernorm", bool, "a q/k LayerNorm with bias shared by the heads is not implemented")
        _, hd = gqa_heads(f, f.int("hidden_size"), f.int("num_attention_heads"))
        c = gqa_config(f, biases=QKVO, rope=rope_of(f, hd, partial_default=0.5))
        import dataclasses

        return dataclasses.replace(c, rms_norm_eps=f.number("layer_norm_eps"))

    def stored(self, c: ModelConfig) -> dict:
        out = super().stored(c)
        return {k.replace("o_proj.", "dense."): v for k, v in out.items()}

    def to_module(self, c: ModelConfig, tensors: dict) -> dict:
        return {k.replace("dense.", "o_proj."): v for k, v in tensors.items()}


register(PhiReader())
