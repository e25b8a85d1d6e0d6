"""Rows: one flat dict per (variant, shape, mode), one schema for every command. Pure Python.

Analytic columns come from `cost.py` through the registry; `measure/` adds the measured columns;
`report.py` prints and exports the same dicts. The README documents every column with its unit.
"""

from __future__ import annotations

import dataclasses

from . import registry
from .cost import ffn_flops, layer_bytes, roofline
from .spec import DTYPE_BYTES, AttentionSpec, PresetSpec, Shape

# The schema, in display order. Commands fill the columns they compute; later work appends.
COLUMNS = (
    # what the row is
    "label", "family", "preset", "mode", "seq_len", "batch", "layers", "cache_tokens", "dtype", "device",
    "d_model", "n_heads", "n_kv_heads", "head_dim", "causal", "position",
    # analytic cost
    "flops", "proj_flops", "attn_flops", "elementwise_flops", "ffn_flops", "attn_share", "params",
    "kv_bytes_per_token", "kv_cache_bytes",
    # measured
    "kv_cache_bytes_measured", "latency_ms_median", "latency_ms_p25", "latency_ms_p75", "n_runs",
    "gflops_per_s", "err_max_abs", "err_mean_abs", "err_rel_l2", "naive_err_max_abs", "naive_err_rel_l2",
    "backend", "device_name", "torch_version", "threads", "seed", "status",
    # compare
    "base_label", "speedup_vs_base", "kv_ratio_vs_base", "flops_ratio_vs_base",
)  # fmt: skip


def identity(spec: AttentionSpec, preset: PresetSpec, mode: str, seq_len: int, batch: int, layers: int,
             cache_tokens: int, dtype: str, device: str | None = None) -> dict:  # fmt: skip
    return {
        "label": spec.label, "family": spec.family, "preset": preset.name, "mode": mode,
        "seq_len": seq_len, "batch": batch, "layers": layers, "cache_tokens": cache_tokens,
        "dtype": dtype, "device": device,
        "d_model": spec.d_model, "n_heads": spec.n_heads, "n_kv_heads": getattr(spec, "n_kv_heads", None),
        "head_dim": spec.head_dim, "causal": spec.causal, "position": spec.position,
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


def byte_columns(spec: AttentionSpec, shape: Shape, dtype: str, layers: int) -> dict:
    """Analytic main-memory traffic (cost.layer_bytes, or the family's own rule) and the arithmetic
    intensity (matmul FLOPs per byte) of `layers` layers doing `shape` in `dtype`."""
    family = registry.get(spec.family)
    b = DTYPE_BYTES[dtype]
    if family.layer_bytes is not None:
        per = family.layer_bytes(spec, shape, b)
    else:
        per = layer_bytes(params=family.params(spec), kv_elements_per_token=family.kv_elements_per_token(spec),
                          d_model=spec.d_model, q_width=spec.q_dim, shape=shape, dtype_bytes=b,
                          o_width=spec.n_heads * getattr(spec, "v_head_dim", spec.head_dim))  # fmt: skip
    flops = family.flops(spec, shape).matmul * shape.batch * layers
    return {
        "bytes_moved": per.total * layers, "bytes_weights": per.weights * layers, "bytes_kv_read": per.kv_read * layers,
        "bytes_kv_write": per.kv_write * layers, "bytes_activations": per.activations * layers,
        "arith_intensity": flops / (per.total * layers),
    }  # fmt: skip


def roofline_columns(row: dict, peak_gflops: float | None, peak_gbps: float | None) -> dict:
    """Achieved rates against the device's measured peaks, and the roofline bound
    max(FLOPs / peak, bytes / bandwidth) with the term that sets it (`bound`). Needs the row's
    `flops`, `bytes_moved` and (for the achieved figures) `latency_ms_median`."""
    latency_s = row.get("latency_ms_median") and row["latency_ms_median"] * 1e-3
    out = {"gbytes_per_s": row["bytes_moved"] / latency_s / 1e9 if latency_s else None,
           "peak_gflops": peak_gflops, "peak_gbps": peak_gbps, "frac_of_peak": None, "frac_of_bw": None,
           "roofline_ms": None, "frac_of_roofline": None, "bound": None}  # fmt: skip
    if not peak_gflops or not peak_gbps:
        return out
    bound_s, bound = roofline(row["flops"], row["bytes_moved"], peak_gflops * 1e9, peak_gbps * 1e9)
    out.update(roofline_ms=bound_s * 1e3, bound=bound)
    if latency_s:
        out.update(frac_of_peak=row["flops"] / latency_s / 1e9 / peak_gflops, frac_of_bw=out["gbytes_per_s"] / peak_gbps,
                   frac_of_roofline=bound_s / latency_s)  # fmt: skip
    return out


def math_path_flops(spec: AttentionSpec, shape: Shape, layers: int = 1) -> int:
    """Matmul FLOPs the plain-math path performs (what FlopCounterMode counts there): it scores
    the full n×n matrix and masks it, so a causal prefill costs as much as a bidirectional one."""
    family = registry.get(spec.family)
    if family.math_flops is not None:
        per_layer = family.math_flops(spec, shape)
    else:
        full = dataclasses.replace(spec, causal=False) if shape.mode == "prefill" else spec
        per_layer = family.flops(full, shape)
    return per_layer.matmul * shape.batch * layers


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


# Measurement columns (issue 6), placed between the measured and the compare columns: timing
# stability, the SDPA backend, dtype grading and the FLOP cross-check; the roofline against the
# device's measured peaks; and the `peak` command's own columns.
QUALITY_COLUMNS = ("noisy", "backend_used", "compiled", "healthy", "flops_counted", "flops_math_path", "flops_match")
ROOFLINE_COLUMNS = (
    "bytes_moved", "bytes_weights", "bytes_kv_read", "bytes_kv_write", "bytes_activations", "arith_intensity",
    "gbytes_per_s", "peak_gflops", "peak_gbps", "frac_of_peak", "frac_of_bw", "roofline_ms", "frac_of_roofline",
    "bound", "peak_source",
)  # fmt: skip
PEAK_COLUMNS = ("ridge_flops_per_byte", "matmul_n", "copy_bytes", "measured_at", "peak_method")
_before_compare = COLUMNS.index("base_label")
COLUMNS = COLUMNS[:_before_compare] + QUALITY_COLUMNS + ROOFLINE_COLUMNS + PEAK_COLUMNS + COLUMNS[_before_compare:]
