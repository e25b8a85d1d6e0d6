"""Parameter counts of whole models from their ModelSpec: dense, MoE, hybrid. Pure Python.

Counted: the embedding (and a separate output projection unless tied), every layer's attention
projections (the registry's per-layer count: GQA W_q, W_k, W_v, W_o; MLA with its RMSNorms),
Q/K/V biases where the config has them, Qwen3-Next's output gate, linear-attention layers, the
MLPs (dense: 3 matrices of d_model × d_ff when gated, 2 when plain; MoE: every routed and shared
expert plus the router), two RMSNorm weight vectors per layer and the final norm. Left out, each
below 0.01% of the models shipped: extra norms (Gemma-2's post-norms, LayerNorm biases, QK-norms),
router biases, multi-token-prediction modules (DeepSeek-V3's `num_nextn_predict_layers`, which
the 671B figure also leaves out).
"""

from __future__ import annotations

from . import registry
from .errors import InputError
from .spec import AttentionSpec, LinearLayerSpec, ModelSpec, PresetSpec


def model_params(spec: AttentionSpec, preset: PresetSpec) -> int:
    """Parameters of the preset's whole model, with `spec` as the attention of its softmax layers."""
    model = preset.model
    where = preset.path or preset.name
    if model is None:
        raise InputError("--include-weights", f"preset '{preset.name}' describes one layer, not a model",
                         "use --hf-config PATH or a model preset (attncli presets) for parameter counts")  # fmt: skip
    if model.vocab_size is None:
        raise InputError(where, "vocab_size: missing, and parameter counts need it")
    check_sized(model, where, "parameter counts")
    d = preset.d_model
    total = d * model.vocab_size * (1 if model.tie_embeddings else 2) + d  # embedding (+ output projection), final norm
    softmax = softmax_layer_params(spec, model)
    for i, kind in enumerate(model.layer_types):
        total += 2 * d  # the pre-attention and pre-MLP RMSNorm weights
        total += linear_layer_params(model.linear, d) if kind == "linear" else softmax
        total += mlp_params(model, d, i, where)
    return total


def check_sized(model: ModelSpec, where: str, what: str) -> None:
    """Refuse, naming the field, a count that needs a part of the model its config does not give
    (ModelSpec.unsized: the normaliser records these instead of failing kv-memory over them)."""
    if model.unsized:
        field, reason = model.unsized[0]
        reason = reason if reason.startswith(field) else f"{field}: {reason}"
        raise InputError(where, f"{reason}, and {what} need it" if "missing" in reason else f"{reason}; {what} refused")


def softmax_layer_params(spec: AttentionSpec, model: ModelSpec) -> int:
    """One softmax (full or sliding) attention layer: the family's projections, plus Q/K/V biases
    and Qwen3-Next's output gate (a d_model → n_heads·head_dim projection) where present."""
    params = registry.get(spec.family).params(spec)
    kv = getattr(spec, "n_kv_heads", None)
    if model.qkv_bias and kv is not None:
        params += spec.head_dim * (spec.n_heads + 2 * kv)
    if model.attn_output_gate:
        params += spec.d_model * spec.q_dim
    return params


def linear_layer_params(lin: LinearLayerSpec, d: int) -> int:
    """One linear-attention layer.
    lightning (MiniMax-01): qkv (d → 3·h·dk), output gate (d → h·dv), output (h·dv → d), norm (h·dv).
    gated_deltanet (Qwen3-Next): in_proj_qkvz (d → 2·nk·dk + 2·nv·dv), in_proj_ba (d → 2·nv), a
    depthwise convolution (conv_channels × kernel), A_log and dt_bias (nv each), a gated norm (dv),
    out_proj (nv·dv → d)."""
    if lin.kind == "lightning":
        q = lin.heads * lin.key_dim
        v = lin.heads * lin.value_dim
        return d * (2 * q + v) + d * v + v * d + v
    nk, nv = lin.key_heads or lin.heads, lin.heads
    keys, values = nk * lin.key_dim, nv * lin.value_dim
    return (d * (2 * keys + 2 * values) + d * 2 * nv + lin.conv_channels * lin.conv_kernel + 2 * nv
            + lin.value_dim + values * d)  # fmt: skip


def mlp_params(model: ModelSpec, d: int, index: int, where: str) -> int:
    """Layer `index`'s MLP: dense, or all the experts of an MoE layer plus its router."""
    matrices = 3 if model.mlp == "gated" else 2
    moe = model.moe
    if moe is not None and moe.is_moe_layer(index):
        shared = moe.shared_experts * matrices * d * (moe.shared_d_ff or moe.d_ff)
        return moe.experts * matrices * d * moe.d_ff + shared + d * moe.experts
    if model.dense_d_ff is None:
        raise InputError(where, "intermediate_size: missing, and parameter counts need the MLP width")
    return matrices * d * model.dense_d_ff
