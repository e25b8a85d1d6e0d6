"""DeepSeek-V2 and -V3 (transformers' models/deepseek_v2, deepseek_v3): multi-head latent
attention (MLA) under `model.layers.N.self_attn.`.

Tensors: `q_proj` (full-rank query, q_lora_rank null) or `q_a_proj` + `q_a_layernorm` +
`q_b_proj`; `kv_a_proj_with_mqa`, `kv_a_layernorm`, `kv_b_proj`, `o_proj`; biases on q_a, kv_a
and o under `attention_bias`. FP8 block-quantised weights (`weight_scale_inv`, DeepSeek-V3's
release) are dequantised by weights.py.

Config fields: kv_lora_rank, q_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim, RoPE
(YaRN with DeepSeek's softmax scale m(factor, mscale_all_dim)²), and `rope_interleave`, which
V3 reads (default true: pairs (2i, 2i+1)) and V2 ignores: transformers' V2 always rotates
interleaved pairs (a complex product).
"""

from __future__ import annotations

from .. import rope_scaling
from ..errors import InputError
from .reader import Fields, ModelConfig, Reader, common_fields, register, rope_of


class DeepseekReader(Reader):
    model_types = ("deepseek_v2", "deepseek_v3")
    features = "MLA (low-rank or full-rank query), interleaved RoPE (V3: rope_interleave), YaRN softmax scale, FP8 block weights"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        t = cfg["model_type"]
        f = Fields(cfg, t, where)
        common = common_fields(f)
        r, nope = f.int("kv_lora_rank"), f.int("qk_nope_head_dim")
        rope_dim, dv = f.int("qk_rope_head_dim"), f.int("v_head_dim")
        rq = f.int("q_lora_rank", required=False) if "q_lora_rank" in cfg else f.defaults.get("q_lora_rank")
        if rope_dim % 2:
            raise InputError(where, f"qk_rope_head_dim: {rope_dim} must be even")
        interleave = True if t == "deepseek_v2" else f.flag("rope_interleave", True)
        rope = rope_of(f, rope_dim, interleave=bool(interleave), allow_partial=False)
        biases = ()
        if f.flag("attention_bias"):  # transformers' DeepSeek: q_a (with a low-rank query), kv_a and o
            biases = ("q_a_proj",) * (rq is not None) + ("kv_a_proj_with_mqa", "o_proj")
        return ModelConfig(family="mla", head_dim=nope + rope_dim, n_kv_heads=None, biases=biases, rope=rope,
                           softmax_scale_factor=rope_scaling.softmax_scale_factor(rope), kv_lora_rank=r,
                           q_lora_rank=rq, qk_nope_head_dim=nope, qk_rope_head_dim=rope_dim, v_head_dim=dv,
                           **common)  # fmt: skip

    def stored(self, c: ModelConfig) -> dict:
        d, h = c.d_model, c.n_heads
        r, rq, dv = c.kv_lora_rank, c.q_lora_rank, c.v_head_dim
        nope, rope = c.qk_nope_head_dim, c.qk_rope_head_dim
        qk = (h * (nope + rope), f"num_attention_heads {h} × (qk_nope_head_dim {nope} + qk_rope_head_dim {rope})")
        out = {}
        if rq is None:
            out["q_proj.weight"] = ((qk[0], d), f"{qk[1]}, hidden_size {d}")
        else:
            out["q_a_proj.weight"] = ((rq, d), f"q_lora_rank {rq}, hidden_size {d}")
            out["q_a_layernorm.weight"] = ((rq,), f"q_lora_rank {rq}")
            out["q_b_proj.weight"] = ((qk[0], rq), f"{qk[1]}, q_lora_rank {rq}")
        out["kv_a_proj_with_mqa.weight"] = ((r + rope, d),
                                            f"kv_lora_rank {r} + qk_rope_head_dim {rope}, hidden_size {d}")  # fmt: skip
        out["kv_a_layernorm.weight"] = ((r,), f"kv_lora_rank {r}")
        out["kv_b_proj.weight"] = ((h * (nope + dv), r),
                                   f"num_attention_heads {h} × (qk_nope_head_dim {nope} + v_head_dim {dv}), kv_lora_rank {r}")  # fmt: skip
        out["o_proj.weight"] = ((d, h * dv), f"hidden_size {d}, num_attention_heads {h} × v_head_dim {dv}")
        widths = {"q_a_proj": (rq, f"q_lora_rank {rq}"),
                  "kv_a_proj_with_mqa": (r + rope, f"kv_lora_rank {r} + qk_rope_head_dim {rope}"),
                  "o_proj": (d, f"hidden_size {d}")}  # fmt: skip
        for name in c.biases:
            n, why = widths[name]
            out[f"{name}.bias"] = ((n,), why)
        return out


register(DeepseekReader())
