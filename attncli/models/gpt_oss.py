"""GPT-OSS (transformers' models/gpt_oss): `{q,k,v,o}_proj` with biases (attention_bias, default
true) and one learned sink logit per head (`sinks`, joining every softmax); layers alternate a
128-token sliding window and full attention (`layer_types`, default: even layers slide);
YaRN RoPE (GptOssConfig's default when config.json has none: factor 32, original 4096, beta
32/1, truncate false; default_theta 150000), cos/sin on the two halves of each head.
"""

from __future__ import annotations

import dataclasses

from .llama import QKVO, gqa_config
from .reader import Fields, LayerAttn, ModelConfig, Reader, gqa_heads, layer_types, register, rope_of

DEFAULT_ROPE = {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                "original_max_position_embeddings": 4096}  # GptOssConfig.__post_init__  # fmt: skip


class GptOssReader(Reader):
    model_types = ("gpt_oss",)
    features = "attention sinks, alternating 128-token window, biases, YaRN"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "gpt_oss", where)
        _, hd = gqa_heads(f, f.int("hidden_size"), f.int("num_attention_heads"))
        config = cfg if cfg.get("rope_parameters") or cfg.get("rope_scaling") else {**cfg, "rope_parameters": DEFAULT_ROPE}
        rope = rope_of(f, hd, config=config)
        c = gqa_config(f, biases=QKVO if f.flag("attention_bias", True) else (), sinks=True, rope=rope)
        window = f.int("sliding_window", required=False)
        kinds = layer_types(f, c.n_layers, lambda i: "sliding_attention" if (i + 1) % 2 else "full_attention")
        return dataclasses.replace(c, layers=tuple(LayerAttn(window if k == "sliding_attention" else None, rope)
                                                   for k in kinds))  # fmt: skip


register(GptOssReader())
