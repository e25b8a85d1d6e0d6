"""Rows: one flat dict per (variant, shape, mode), one schema for every command. Pure Python.

Analytic columns come from `cost.py` through the registry; `measure/` adds the measured columns;
`report.py` prints and exports the same dicts. The README documents every column with its unit.
"""

from __future__ import annotations

from . import registry
from .cost import ffn_flops
from .spec import DTYPE_BYTES, AttentionSpec, PresetSpec, Shape

# Fields of one family's spec that rows carry as columns, only on that family's rows (MLA's).
SPEC_COLUMNS = ("kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "absorb")

# The schema, in display order. Commands fill the columns they compute; later work appends.
IDENTITY_COLUMNS = (
    "label", "family", "preset", "mode", "seq_len", "batch", "layers", "cache_tokens", "dtype", "device",
    "d_model", "n_heads", "n_kv_heads", "head_dim", "causal", "position",
    *SPEC_COLUMNS,
)  # fmt: skip
ANALYTIC_COLUMNS = (
    "flops", "proj_flops", "attn_flops", "elementwise_flops", "ffn_flops", "attn_share", "params",
    "kv_bytes_per_token", "kv_cache_bytes",
)  # fmt: skip
MEASURED_COLUMNS = (
    "kv_cache_bytes_measured", "latency_ms_median", "latency_ms_p25", "latency_ms_p75", "n_runs",
    "gflops_per_s", "err_max_abs", "err_mean_abs", "err_rel_l2", "naive_err_max_abs", "naive_err_rel_l2",
    "backend", "device_name", "torch_version", "threads", "seed", "status",
)  # fmt: skip
COMPARE_COLUMNS = ("base_label", "speedup_vs_base", "kv_ratio_vs_base", "flops_ratio_vs_base")
# Real weights (`bench`/`compare --weights`, `convert`): where the layer and its inputs came from.
WEIGHTS_COLUMNS = ("weights", "layer", "inputs", "rope_scaling")
# `convert`: the converted layer against the original one on the same inputs.
CONVERT_COLUMNS = (
    "method", "kv_dtype", "kv_bytes_per_token_before", "params_before",
    "conv_err_max_abs", "conv_err_rel_l2", "conv_err_cos",
)  # fmt: skip
COLUMNS = IDENTITY_COLUMNS + ANALYTIC_COLUMNS + MEASURED_COLUMNS + COMPARE_COLUMNS + WEIGHTS_COLUMNS + CONVERT_COLUMNS


def identity(spec: AttentionSpec, preset: PresetSpec, mode: str, seq_len: int, batch: int, layers: int,
             cache_tokens: int, dtype: str, device: str | None = None) -> dict:  # fmt: skip
    return {
        "label": spec.label, "family": spec.family, "preset": preset.name, "mode": mode,
        "seq_len": seq_len, "batch": batch, "layers": layers, "cache_tokens": cache_tokens,
        "dtype": dtype, "device": device,
        "d_model": spec.d_model, "n_heads": spec.n_heads, "n_kv_heads": getattr(spec, "n_kv_heads", None),
        "head_dim": spec.head_dim, "causal": spec.causal, "position": spec.position,
        **{c: getattr(spec, c) for c in SPEC_COLUMNS if hasattr(spec, c)},
    }  # fmt: skip


def kv_columns(spec: AttentionSpec, dtype: str, layers: int, cache_tokens: int, batch: int) -> dict:
    """KV bytes per token (all layers, one sequence) and for the whole cache."""
    per_token = registry.get(spec.family).kv_elements_per_token(spec) * DTYPE_BYTES[dtype] * layers
    return {"kv_bytes_per_token": per_token, "kv_cache_bytes": per_token * cache_tokens * batch}


def flop_columns(spec: AttentionSpec, preset: PresetSpec, shape: Shape, layers: int) -> dict:
    """Matmul FLOPs split into projections and attention, elementwise FLOPs, the block's FFN."""
    family = registry.get(spec.family)
    per_layer = family.flops(spec, shape)
    scale = layers * shape.batch
    d_ff = preset.d_ff or 4 * spec.d_model
    ffn = ffn_flops(spec.d_model, d_ff, shape.n_query) * scale
    flops = per_layer.matmul * scale
    return {
        "flops": flops, "proj_flops": per_layer.proj * scale, "attn_flops": per_layer.attn * scale,
        "elementwise_flops": per_layer.elementwise * scale, "ffn_flops": ffn,
        "attn_share": flops / (flops + ffn), "params": family.params(spec) * layers,
    }  # fmt: skip


def analytic_row(spec: AttentionSpec, preset: PresetSpec, shape: Shape, layers: int, dtype: str,
                 device: str | None = None) -> dict:  # fmt: skip
    """FLOPs and KV bytes for `layers` layers of `spec` doing `shape` (the `flops` and `bench` rows)."""
    row = identity(spec, preset, shape.mode, shape.seq_len, shape.batch, layers, shape.cache_tokens, dtype, device)
    row.update(flop_columns(spec, preset, shape, layers))
    row.update(kv_columns(spec, dtype, layers, shape.cache_tokens, shape.batch))
    return row


def kv_row(spec: AttentionSpec, preset: PresetSpec, seq_len: int, batch: int, layers: int, dtype: str) -> dict:
    """A cache holding seq_len tokens per sequence (the `kv-memory` rows, mode `cache`)."""
    row = identity(spec, preset, "cache", seq_len, batch, layers, seq_len, dtype)
    row.update(kv_columns(spec, dtype, layers, seq_len, batch))
    return row


def add_ratios(rows: list[dict]) -> list[dict]:
    """Ratio columns against the first variant's row of the same mode, seq_len and batch."""
    base: dict[tuple, dict] = {}
    for row in rows:
        key = (row["mode"], row["seq_len"], row["batch"])
        first = base.setdefault(key, row)
        row["base_label"] = first["label"]
        row["speedup_vs_base"] = _ratio(first.get("latency_ms_median"), row.get("latency_ms_median"))
        row["kv_ratio_vs_base"] = _ratio(row.get("kv_cache_bytes"), first.get("kv_cache_bytes"))
        row["flops_ratio_vs_base"] = _ratio(row.get("flops"), first.get("flops"))
    return rows


def _ratio(num, den):
    if num is None or den is None or den == 0:
        return None
    return num / den
