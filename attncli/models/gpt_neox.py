"""GPT-NeoX (transformers' models/gpt_neox; Pythia): MHA with one fused `query_key_value` under
`gpt_neox.layers.N.attention.` whose rows are per head [q; k; v] (h × 3 × head_dim), and `dense`
(the output), with biases under `attention_bias` (default true); head_dim = hidden_size /
num_attention_heads. RoPE rotates the first int(head_dim · rotary_pct) elements (half-split);
GPTNeoXConfig reads the RoPE mapping's own `rope_theta` and `partial_rotary_factor`, else
`rotary_emb_base` (default 10000) and `rotary_pct` (default 0.25) — a top-level rope_theta or
partial_rotary_factor is not read. LayerNorm (with bias, eps layer_norm_eps) before attention;
embeddings `gpt_neox.embed_in`.
"""

from __future__ import annotations

from .. import rope_scaling
from .reader import Fields, ModelConfig, Reader, common_fields, register


class GPTNeoXReader(Reader):
    model_types = ("gpt_neox",)
    attention_name = "attention"
    embed_name = "embed_in"
    norm_kind = "layer"
    features = "fused per-head query_key_value, dense, biases, partial rotary (rotary_pct), LayerNorm input"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "gpt_neox", where)
        common = common_fields(f, eps_key="layer_norm_eps")
        d, h = common["d_model"], common["n_heads"]
        hd = d // h
        name, raw = rope_scaling.source(cfg)
        raw = dict(raw) if isinstance(raw, dict) else raw
        if isinstance(raw, dict):
            raw.setdefault("rope_theta", cfg.get("rotary_emb_base", 10000.0))
            raw.setdefault("partial_rotary_factor", cfg.get("rotary_pct", 0.25))
        one = {"rope_parameters": raw, "max_position_embeddings": f.get("max_position_embeddings")}
        rope = rope_scaling.parse(one, hd, where)
        biases = ("q_proj", "k_proj", "v_proj", "o_proj") if f.flag("attention_bias", True) else ()
        return ModelConfig(family="gqa", head_dim=hd, n_kv_heads=h, biases=biases, rope=rope, **common)

    def stored(self, c: ModelConfig) -> dict:
        d, h, hd = c.d_model, c.n_heads, c.head_dim
        out = {"query_key_value.weight": ((3 * d, d), f"3 × hidden_size {d}, hidden_size {d}"),
               "dense.weight": ((d, d), f"hidden_size {d}, hidden_size {d}")}  # fmt: skip
        if c.biases:
            out["query_key_value.bias"] = ((3 * d,), f"3 × hidden_size {d}")
            out["dense.bias"] = ((d,), f"hidden_size {d}")
        return out

    def to_module(self, c: ModelConfig, tensors: dict) -> dict:
        h, hd = c.n_heads, c.head_dim
        out = {"o_proj.weight": tensors["dense.weight"]}
        w = tensors["query_key_value.weight"].reshape(h, 3, hd, -1)  # rows per head: [q; k; v]
        for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[f"{name}.weight"] = w[:, i].reshape(h * hd, -1)
        if c.biases:
            b = tensors["query_key_value.bias"].reshape(h, 3, hd)
            for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
                out[f"{name}.bias"] = b[:, i].reshape(h * hd)
            out["o_proj.bias"] = tensors["dense.bias"]
        return out

    def ignored(self, rel: str) -> bool:
        # old GPT-NeoX files saved the causal-mask and RoPE buffers
        return rel in ("bias", "masked_bias") or rel.endswith("rotary_emb.inv_freq")


register(GPTNeoXReader())
