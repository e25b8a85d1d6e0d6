"""Granite (transformers' models/granite): Llama-shaped `{q,k,v,o}_proj` (biases under
`attention_bias`) whose softmax scale is `attention_multiplier` (GraniteConfig default 1.0),
not head_dim^-1/2; the embeddings are multiplied by `embedding_multiplier` (default 1.0) before
the first layer (the default inputs do the same).
"""

from __future__ import annotations

from .llama import QKVO, gqa_config
from .reader import Fields, ModelConfig, Reader, register


class GraniteReader(Reader):
    model_types = ("granite",)
    features = "softmax scale attention_multiplier, embedding_multiplier"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "granite", where)
        scale = f.number("attention_multiplier", positive=True)
        embed = f.number("embedding_multiplier", positive=True)
        return gqa_config(f, biases=QKVO if f.flag("attention_bias") else (), scale=scale, embed_scale=embed)


register(GraniteReader())
