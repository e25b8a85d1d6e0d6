"""Llama, Mistral and Mixtral (transformers' models/llama, mistral, mixtral): `{q,k,v,o}_proj`
under `model.layers.N.self_attn.`, half-split RoPE, an RMSNorm before attention.

Config fields: hidden_size, num_attention_heads, num_key_value_heads, head_dim, num_hidden_layers,
rms_norm_eps, intermediate_size, RoPE (rope_parameters / rope_scaling / rope_theta), and
- llama: attention_bias (biases on q, k, v and o); no window (a stray sliding_window is ignored,
  as LlamaAttention ignores it);
- mistral, mixtral: sliding_window on every layer (MistralConfig's default 4096, Mixtral's none);
  never biases (a stray attention_bias is ignored, as their modules build bias=False).
"""

from __future__ import annotations

from .reader import Fields, ModelConfig, Reader, common_fields, gqa_heads, register, rope_of

QKVO = ("q_proj", "k_proj", "v_proj", "o_proj")


def gqa_config(f: Fields, biases=(), window=None, **extra) -> ModelConfig:
    """The ModelConfig of a Llama-shaped layer from its fields (the other GQA readers use it too)."""
    common = common_fields(f)
    g, hd = gqa_heads(f, common["d_model"], common["n_heads"])
    rope = extra.pop("rope", None) or rope_of(f, hd)
    return ModelConfig(family="gqa", head_dim=hd, n_kv_heads=g, biases=tuple(biases), rope=rope,
                       sliding_window=window, **common, **extra)  # fmt: skip


class LlamaReader(Reader):
    model_types = ("llama", "mistral", "mixtral")
    features = "half-split RoPE (llama3, yarn, linear, dynamic, longrope); Llama: biases under attention_bias; Mistral/Mixtral: sliding_window"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        t = cfg["model_type"]
        f = Fields(cfg, t, where)
        if t == "llama":
            return gqa_config(f, biases=QKVO if f.flag("attention_bias") else ())
        window = f.int("sliding_window", required=False)
        return gqa_config(f, window=window)


register(LlamaReader())
