"""Starcoder2 (transformers' models/starcoder2): `{q,k,v,o}_proj` with biases under `use_bias`
(default true), `sliding_window` on every layer (default none), and a LayerNorm with bias before
attention (eps norm_epsilon, default 1e-5).
"""

from __future__ import annotations

from .llama import QKVO, gqa_config
from .reader import Fields, ModelConfig, Reader, register


class Starcoder2Reader(Reader):
    model_types = ("starcoder2",)
    norm_kind = "layer"
    features = "biases (use_bias), sliding_window, LayerNorm input"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "starcoder2", where)
        c = gqa_config(f, biases=QKVO if f.flag("use_bias", True) else (), window=f.int("sliding_window", required=False))
        import dataclasses

        return dataclasses.replace(c, rms_norm_eps=f.number("norm_epsilon"))


register(Starcoder2Reader())
