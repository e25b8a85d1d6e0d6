"""StableLM (transformers' models/stablelm): `{q,k,v,o}_proj` with q/k/v biases under
`use_qkv_bias` (o never), half-split RoPE over the first int(head_dim · partial_rotary_factor)
elements (StableLmConfig fills in 0.25), optional per-head LayerNorms of queries and keys
(`qk_layernorm`: `q_layernorm.norms.{i}`, one LayerNorm without bias per head, eps
layer_norm_eps), and a LayerNorm with bias before attention.
"""

from __future__ import annotations

import dataclasses

from .llama import gqa_config
from .reader import Fields, ModelConfig, Reader, gqa_heads, register, rope_of


class StableLmReader(Reader):
    model_types = ("stablelm",)
    norm_kind = "layer"
    features = "partial rotary (0.25), q/k/v biases (use_qkv_bias), optional per-head q/k LayerNorm, LayerNorm input"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "stablelm", where)
        _, hd = gqa_heads(f, f.int("hidden_size"), f.int("num_attention_heads"))
        eps = f.number("layer_norm_eps")
        c = gqa_config(f, biases=("q_proj", "k_proj", "v_proj") if f.flag("use_qkv_bias") else (),
                       rope=rope_of(f, hd, partial_default=0.25), qk_norm=f.flag("qk_layernorm"),
                       qk_norm_type="layer", norm_eps=eps)  # fmt: skip
        return dataclasses.replace(c, rms_norm_eps=eps)

    def stored(self, c: ModelConfig) -> dict:
        out = {k: v for k, v in super().stored(c).items() if not k.endswith("_norm.weight")}
        if c.qk_norm:
            for prefix, heads in (("q", c.n_heads), ("k", c.n_kv_heads)):
                for i in range(heads):
                    out[f"{prefix}_layernorm.norms.{i}.weight"] = ((c.head_dim,), f"head_dim {c.head_dim}")
        return out

    def to_module(self, c: ModelConfig, tensors: dict) -> dict:
        import torch

        out = {k: v for k, v in tensors.items() if "_layernorm." not in k}
        if c.qk_norm:  # one LayerNorm per head → the (heads, head_dim) weight of attncli's per-head norm
            for prefix, heads in (("q", c.n_heads), ("k", c.n_kv_heads)):
                out[f"{prefix}_norm.weight"] = torch.stack([tensors[f"{prefix}_layernorm.norms.{i}.weight"]
                                                            for i in range(heads)])  # fmt: skip
        return out


register(StableLmReader())
