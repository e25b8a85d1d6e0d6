"""OLMo-2 (transformers' models/olmo2): Llama-shaped `{q,k,v,o}_proj` (biases under
`attention_bias`) with RMSNorms over the whole query and key projections (`q_norm` of h·hd,
`k_norm` of g·hd, eps rms_norm_eps) before the heads are split and rotated. OLMo-2 normalises
after attention (post_attention_layernorm), so the layer sees the residual stream itself: the
default inputs are the embeddings, with no input norm.
"""

from __future__ import annotations

from .llama import QKVO, gqa_config
from .reader import Fields, ModelConfig, Reader, register


class Olmo2Reader(Reader):
    model_types = ("olmo2",)
    input_norm = None
    features = "q/k RMSNorm over the whole projection, post-norm blocks (inputs: the embeddings)"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "olmo2", where)
        eps = f.number("rms_norm_eps")
        return gqa_config(f, biases=QKVO if f.flag("attention_bias") else (), qk_norm=True, qk_norm_over="proj",
                          norm_eps=eps)  # fmt: skip


register(Olmo2Reader())
