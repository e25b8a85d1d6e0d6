"""SmolLM3 (transformers' models/smollm3): Llama-shaped `{q,k,v,o}_proj` (biases under
`attention_bias`) where some layers have no RoPE: `no_rope_layers[i]` is 1 for a layer that
rotates and 0 for one that does not (default: every `no_rope_layer_interval`-th layer, 4, has
none); with `use_sliding_window`, the layers without RoPE slide over `sliding_window`
(SmolLM3Config's layer_types rule) unless `layer_types` says otherwise. default_theta 2e6.
"""

from __future__ import annotations

import dataclasses

from ..errors import InputError
from .llama import QKVO, gqa_config
from .reader import Fields, LayerAttn, ModelConfig, Reader, layer_types, register


class SmolLM3Reader(Reader):
    model_types = ("smollm3",)
    features = "layers without RoPE (no_rope_layers)"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "smollm3", where)
        c = gqa_config(f, biases=QKVO if f.flag("attention_bias") else ())
        n = c.n_layers
        interval = f.int("no_rope_layer_interval", fallback=4)
        rotates = f.get("no_rope_layers")
        if rotates is None:
            rotates = [int((i + 1) % interval != 0) for i in range(n)]
        if not isinstance(rotates, list) or len(rotates) != n or any(r not in (0, 1) for r in rotates):
            raise InputError(where, f"no_rope_layers: must list 0 or 1 for each of the {n} layers")
        window = f.int("sliding_window", required=False)
        sliding = f.flag("use_sliding_window") and window is not None
        kinds = layer_types(f, n, lambda i: "sliding_attention" if sliding and not rotates[i] else "full_attention")
        slide = window if f.flag("use_sliding_window") else None  # SmolLM3Attention: only under use_sliding_window
        layers = tuple(LayerAttn(slide if k == "sliding_attention" else None, c.rope if rotates[i] else None)
                       for i, k in enumerate(kinds))  # fmt: skip
        return dataclasses.replace(c, layers=layers)


register(SmolLM3Reader())
