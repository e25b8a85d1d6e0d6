"""GLM-4 (transformers' models/glm4): `{q,k,v}_proj` with biases under `attention_bias` (default
true) and `o_proj` without; RoPE over the first int(head_dim · partial_rotary_factor) elements
(Glm4Config fills in 0.5) in interleaved pairs (2i, 2i+1) (its apply_rotary_pos_emb repeats the
first half of cos/sin and rotates pairs); an RMSNorm before attention.
"""

from __future__ import annotations

from .llama import gqa_config
from .reader import Fields, ModelConfig, Reader, gqa_heads, register, rope_of


class Glm4Reader(Reader):
    model_types = ("glm4",)
    features = "partial interleaved rotary (0.5), q/k/v biases"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "glm4", where)
        _, hd = gqa_heads(f, f.int("hidden_size"), f.int("num_attention_heads"))
        rope = rope_of(f, hd, interleave=True, partial_default=0.5)
        return gqa_config(f, biases=("q_proj", "k_proj", "v_proj") if f.flag("attention_bias", True) else (), rope=rope)


register(Glm4Reader())
