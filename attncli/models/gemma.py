"""Gemma, Gemma 2 and Gemma 3 (transformers' models/gemma, gemma2, gemma3: `gemma3_text`, the
language model of `gemma3` checkpoints): Llama-shaped `{q,k,v,o}_proj` (biases under
`attention_bias`), head_dim 256 by default, RMSNorms that scale by (1 + w), and embeddings
multiplied by sqrt(hidden_size) before the first layer.

- gemma: softmax scale head_dim^-1/2.
- gemma2: scale query_pre_attn_scalar^-1/2; logits soft-capped at attn_logit_softcapping (50);
  `layer_types` (default: every 2nd layer full, the others sliding over `sliding_window`).
- gemma3_text: as Gemma 2 (soft-capping off by default; every 6th layer full), plus per-head
  q/k RMSNorms (1 + w, eps rms_norm_eps) and RoPE per layer type: `rope_parameters` keyed by
  `full_attention` / `sliding_attention`, or the older `rope_theta` (global, default 1e6) +
  `rope_local_base_freq` (local, default 1e4) + `rope_scaling` (merged into the global one), as
  Gemma3TextConfig.convert_rope_params_to_dict reads them.
Refused: `use_bidirectional_attention` (not causal).
"""

from __future__ import annotations

import dataclasses

from .. import rope_scaling
from ..errors import InputError
from .llama import QKVO, gqa_config
from .reader import Fields, LayerAttn, ModelConfig, Reader, layer_types, register


def _gemma3_ropes(f: Fields, head_dim: int) -> dict[str, rope_scaling.RopeSettings]:
    cfg = f.cfg
    nested = cfg.get("rope_parameters")
    if nested is not None and not all(k in ("full_attention", "sliding_attention") for k in nested):
        raise InputError(f.where, "rope_parameters: gemma3 keeps one mapping per layer type",
                         "give {full_attention: {...}, sliding_attention: {...}}")  # fmt: skip
    nested = {k: dict(v) for k, v in (nested or {}).items() if v is not None}
    full = nested.setdefault("full_attention", {"rope_type": "default"})
    if cfg.get("rope_scaling"):
        full.update(cfg["rope_scaling"])  # the legacy rope_scaling updates the global RoPE
    theta = {"full_attention": cfg.get("rope_theta", 1_000_000.0),  # default_theta["global"]
             "sliding_attention": cfg.get("rope_local_base_freq", 10_000.0)}  # default_theta["local"]
    nested.setdefault("sliding_attention", {"rope_type": "default"})
    out = {}
    for kind, params in nested.items():
        params.setdefault("rope_theta", theta[kind])
        one = {"rope_parameters": params, "max_position_embeddings": f.get("max_position_embeddings")}
        out[kind] = rope_scaling.parse(one, head_dim, f"{f.where} ({kind})")
    return out


class GemmaReader(Reader):
    model_types = ("gemma", "gemma2", "gemma3_text")
    norm_kind = "rms1p"
    features = ("embeddings × sqrt(d), (1 + w) norms; Gemma 2: query_pre_attn_scalar, logit soft-capping, "
                "alternating sliding window; Gemma 3: q/k norms, local RoPE base")  # fmt: skip

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        t = cfg["model_type"]
        f = Fields(cfg, t, where)
        if f.flag("use_bidirectional_attention"):
            raise InputError(where, "use_bidirectional_attention: true is not supported", "attncli reads causal layers")
        biases = QKVO if f.flag("attention_bias") else ()
        d = f.int("hidden_size")
        extra = dict(embed_scale=float(d) ** 0.5)
        if t == "gemma":
            return gqa_config(f, biases=biases, **extra)
        hd = f.int("head_dim", required=False) or d // f.int("num_attention_heads")
        scalar = f.number("query_pre_attn_scalar", positive=True)
        extra.update(scale=scalar**-0.5, softcap=f.number("attn_logit_softcapping", positive=True))
        ropes = None
        if t == "gemma3_text":
            ropes = _gemma3_ropes(f, hd)
            extra.update(qk_norm=True, norm_eps=f.number("rms_norm_eps"), rope=ropes["full_attention"])
        c = gqa_config(f, biases=biases, **extra)
        period = f.defaults.get("sliding_window_pattern", 2)
        if t == "gemma3_text":
            period = cfg.get("sliding_window_pattern", period)
        kinds = layer_types(f, c.n_layers, lambda i: "sliding_attention" if (i + 1) % period else "full_attention")
        window = f.int("sliding_window", required=False)
        layers = tuple(LayerAttn(window if k == "sliding_attention" else None, ropes[k] if ropes else c.rope)
                       for k in kinds)  # fmt: skip
        return dataclasses.replace(c, layers=layers)

    def to_module(self, c: ModelConfig, tensors: dict) -> dict:
        out = dict(tensors)
        for name in ("q_norm.weight", "k_norm.weight"):  # Gemma's RMSNorm scales by (1 + w)
            if name in out:
                out[name] = 1.0 + out[name].double()  # exact; rounds to fp32 as transformers sums it
        return out


register(GemmaReader())
