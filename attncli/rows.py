"""Rows: one flat dict per (variant, shape, mode), one schema for every command. Pure Python.

Analytic columns come from `cost.py` through the registry; `measure/` adds the measured columns;
`report.py` prints and exports the same dicts. docs/columns.md documents every column with its unit.
"""

from __future__ import annotations

from . import registry
from .cost import ffn_flops, layer_bytes, model_ffn_flops, roofline
from .errors import InputError
from .spec import DTYPE_BYTES, AttentionSpec, HybridSpec, PresetSpec, Shape

# Fields of one family's spec that rows carry as columns, only on that family's rows (MLA's).
SPEC_COLUMNS = ("kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "absorb")

# What real layers add to the GQA family (issue 14): q/k norms, logit cap, sinks, partial rotary, scale.
LAYER_COLUMNS = ("qk_norm", "softcap", "sinks", "rotary_dim", "scale")

# The schema, in display order. Commands fill the columns they compute; later work appends.
IDENTITY_COLUMNS = (
    "label", "family", "preset", "mode", "seq_len", "batch", "layers", "cache_tokens", "dtype", "device",
    "d_model", "n_heads", "n_kv_heads", "head_dim", "causal", "position",
    *SPEC_COLUMNS,
    "window", "memory_len", "stack", "layer_of",  # sliding window, cross memory, layer stacks
    "stack_missing",  # layer kinds of a stack's pattern that a model shorter than its period lacks
    *LAYER_COLUMNS,
)  # fmt: skip
ANALYTIC_COLUMNS = (
    "flops", "proj_flops", "attn_flops", "elementwise_flops", "ffn_flops", "attn_share", "params",
    "kv_bytes_per_token", "kv_cache_bytes",
    "memory_proj_flops",  # cross-attention's one-off K/V projection of the encoder memory
    "ffn_kind",  # the FFN the ffn_flops count: plain (2 matrices), gated (3), or MoE with its active experts
)  # fmt: skip
MEASURED_COLUMNS = (
    "kv_cache_bytes_measured", "latency_ms_median", "latency_ms_p25", "latency_ms_p75", "n_runs",
    "gflops_per_s", "err_max_abs", "err_mean_abs", "err_rel_l2", "naive_err_max_abs", "naive_err_rel_l2",
    "backend", "device_name", "torch_version", "threads", "seed", "status",
    "latency_basis",  # how a multi-layer latency was obtained from one-layer measurements
    # interleaved timing and the machine's load while timing (measure/timing.py, measure/load.py)
    "n_rounds", "load_avg", "others_cores", "free_cores",
    "threads_default", "free_cores_start",  # set when attncli lowered torch's thread count to the free cores
)  # fmt: skip
# Measurement columns: timing stability, the SDPA backend, dtype grading and the FLOP cross-check;
# the roofline against the device's measured peaks; and the `peak` command's own columns.
QUALITY_COLUMNS = (
    "noisy", "backend_used", "compiled", "healthy", "flops_counted", "flops_math_path", "flops_match",
    # --verify-flops per layer (one layer of the row's kind) and for the row's `layers` (as `flops`)
    "flops_counted_layer", "flops_math_path_layer", "flops_counted_model", "flops_math_path_model",
    "compile_s",  # seconds compiling before the timing (--backend flex, --compile)
    "decode_kernel_off",  # why a grouped float32 CPU decode row ran the BLAS gemv, not the C kernel
)  # fmt: skip
ROOFLINE_COLUMNS = (
    "bytes_moved", "bytes_weights", "bytes_kv_read", "bytes_kv_write", "bytes_activations", "arith_intensity",
    "gbytes_per_s", "peak_gflops", "peak_gbps", "frac_of_peak", "frac_of_bw", "roofline_ms", "frac_of_roofline",
    "bound", "peak_source",
)  # fmt: skip
PEAK_COLUMNS = ("ridge_flops_per_byte", "matmul_n", "copy_bytes", "measured_at", "peak_method")
COMPARE_COLUMNS = ("base_label", "speedup_vs_base", "kv_ratio_vs_base", "flops_ratio_vs_base",
                   "speedup_vs_base_p25", "speedup_vs_base_p75")  # the per-round speed-ups' spread
# Real models and serving (kv-memory): where the KV heads came from, the layer kinds, per-GPU
# sizing under tensor parallelism, quantisation scales, and --budget answers.
SERVING_COLUMNS = (
    "kv_heads_from", "layer_kind", "tp", "kv_heads_per_gpu", "kv_scales", "kv_scale_bytes",
    "linear_state_bytes", "model_params", "weight_bytes", "budget_bytes", "fits", "max_seq_len", "max_batch",
    "ssm_state_bytes", "max_position", "beyond_max_position",  # Mamba layers' state; the model's context limit
)  # fmt: skip
# Real weights (`bench`/`compare --weights`, `convert`): where the layer and its inputs came from.
WEIGHTS_COLUMNS = ("weights", "layer", "inputs", "rope_scaling")
# `convert`: the converted layer against the original one on the same inputs.
CONVERT_COLUMNS = (
    "method", "kv_dtype", "kv_bytes_per_token_before", "params_before",
    "conv_err_max_abs", "conv_err_rel_l2", "conv_err_cos",
)  # fmt: skip
# Tensor-parallel measurement (`bench`/`compare`/`sweep --measure --tp T`, measure/tp.py); `tp` and
# `kv_heads_per_gpu` are the serving columns of the same names.
TP_COLUMNS = (
    "tp_backend", "tp_launcher", "tp_slowest_rank", "kv_cache_bytes_per_rank", "allreduce_ms", "allreduce_bytes",
    "tp_err_rel_l2",
)  # fmt: skip
COLUMNS = (IDENTITY_COLUMNS + ANALYTIC_COLUMNS + MEASURED_COLUMNS + QUALITY_COLUMNS + ROOFLINE_COLUMNS + PEAK_COLUMNS
           + COMPARE_COLUMNS + SERVING_COLUMNS + WEIGHTS_COLUMNS + CONVERT_COLUMNS + TP_COLUMNS)  # fmt: skip


def identity(spec: AttentionSpec, preset: PresetSpec, mode: str, seq_len: int, batch: int, layers: int,
             cache_tokens: int, dtype: str, device: str | None = None) -> dict:  # fmt: skip
    return {
        "label": spec.label, "family": spec.family, "preset": preset.name, "mode": mode,
        "seq_len": seq_len, "batch": batch, "layers": layers, "cache_tokens": cache_tokens,
        "dtype": dtype, "device": device,
        "d_model": spec.d_model, "n_heads": spec.n_heads, "n_kv_heads": getattr(spec, "n_kv_heads", None),
        "head_dim": spec.head_dim, "causal": spec.causal, "position": spec.position,
        **{c: getattr(spec, c) for c in SPEC_COLUMNS if hasattr(spec, c)},
        "window": getattr(spec, "window", None), "memory_len": getattr(spec, "memory_len", None),
        **layer_columns(spec),
    }  # fmt: skip


def layer_columns(spec: AttentionSpec) -> dict:
    """The GQA family's real-layer fields (None on other families' rows): `qk_norm` names the
    norm (`rms`, `rms_proj`, `layer`) or is false; `rotary_dim` is the rotated width when RoPE
    rotates part of each head; `scale` the softmax scale when it is not 1/sqrt(head_dim)."""
    if not hasattr(spec, "qk_norm"):
        return dict.fromkeys(LAYER_COLUMNS)
    norm = False if not spec.qk_norm else spec.qk_norm_type + ("_proj" if spec.qk_norm_over == "proj" else "")
    return {"qk_norm": norm, "softcap": spec.softcap, "sinks": spec.sinks, "rotary_dim": spec.rotary_dim,
            "scale": spec.scale}  # fmt: skip


def kv_columns(spec: AttentionSpec, dtype: str, layers: int, cache_tokens: int, batch: int) -> dict:
    """KV bytes per cached token (all layers, one sequence) and for the whole cache, once
    `cache_tokens` tokens have been seen: a window caps the tokens held, cross-attention holds its
    memory whatever the length, a recurrent layer holds a fixed state."""
    family, size = registry.get(spec.family), DTYPE_BYTES[dtype]
    per_token = family.kv_elements_per_token(spec) * size * layers
    held = per_token * family.cache_tokens(spec, cache_tokens) + family.state_elements(spec) * size * layers
    return {"kv_bytes_per_token": per_token, "kv_cache_bytes": held * batch}


def flop_columns(spec: AttentionSpec, preset: PresetSpec, shape: Shape, layers: int) -> dict:
    """Matmul FLOPs split into projections and attention, elementwise FLOPs, the block's FFN."""
    family = registry.get(spec.family)
    per_layer = family.flops(spec, shape)
    scale = layers * shape.batch
    ffn, ffn_kind = ffn_columns(spec, preset, shape, layers)
    flops = per_layer.matmul * scale
    memory = family.memory_proj_flops(spec) * scale if family.memory_proj_flops else None
    return {
        "flops": flops, "proj_flops": per_layer.proj * scale, "attn_flops": per_layer.attn * scale,
        "elementwise_flops": per_layer.elementwise * scale, "ffn_flops": ffn, "ffn_kind": ffn_kind,
        "attn_share": flops / (flops + ffn), "params": family.params(spec) * layers,
        "memory_proj_flops": memory,
    }  # fmt: skip


def ffn_columns(spec: AttentionSpec, preset: PresetSpec, shape: Shape, layers: int) -> tuple[int, str]:
    """(FFN FLOPs of `layers` layers for the batch, the FFN kind). A size preset keeps the seed's
    plain two-matrix MLP of d_ff (4·d_model unless set), with no kind (it is no model's MLP). A whole model (a model preset,
    --hf-config) counts its own MLP: three matrices when gated, only the active experts on MoE
    layers (cost.model_ffn_flops), layer by layer; a part of it the config lacks is refused."""
    model = preset.model
    if model is None:  # the seed's scale figure, no model's MLP: no ffn_kind
        return ffn_flops(spec.d_model, preset.d_ff or 4 * spec.d_model, shape.n_query) * layers * shape.batch, None
    from .params import check_sized

    check_sized(model, preset.path or preset.name, "FLOP counts")
    n, d = shape.n_query, preset.d_model
    per = [model_ffn_flops(model, d, i, n) for i in range(model.n_layers)]
    if len(set(per)) == 1:
        total = per[0] * layers
    elif len(model.kinds()) == 1 and layers <= model.n_layers:
        total = sum(per[:layers])  # the first `layers` layers (DeepSeek's dense ones first)
    else:
        raise InputError(preset.path or preset.name, f"flops: FFN widths vary by layer in a model with "
                         f"{model.describe()} layers, and a per-kind row cannot say which it holds")  # fmt: skip
    moe = model.moe
    kind = model.mlp if moe is None else (  # `moe 8/256 +1 shared`: top-k of the routed experts, shared ones
        f"moe {moe.experts_per_token}/{moe.experts}" + (f" +{moe.shared_experts} shared" if moe.shared_experts else ""))
    return total * shape.batch, kind


# ------------------------------------------------------------------------------------------------
# model-level stacks: a hybrid is expanded into its distinct layer kinds; its row is their sum

ADDITIVE = ("flops", "proj_flops", "attn_flops", "elementwise_flops", "ffn_flops", "params", "kv_bytes_per_token",
            "kv_cache_bytes", "memory_proj_flops")  # fmt: skip


def layer_kinds(spec: AttentionSpec, layers: int) -> list[tuple[AttentionSpec, int]]:
    """(layer spec, how many of the `layers` layers it fills): one entry for a plain variant."""
    return spec.kinds(layers) if isinstance(spec, HybridSpec) else [(spec, layers)]


def _single_cache_tokens(spec: AttentionSpec, tokens: int) -> int:
    return registry.get(spec.family).cache_tokens(spec, tokens)


def combine(spec: HybridSpec, preset: PresetSpec, parts: list[tuple[dict, int]], layers: int) -> dict:
    """The model row of a stack from its per-kind rows (each already totalled over its count)."""
    first = parts[0][0]
    row = identity(spec, preset, first["mode"], first["seq_len"], first["batch"], layers, None, first["dtype"],
                   first["device"])  # fmt: skip
    for key in ("causal", "position", "cache_tokens"):
        values = list(dict.fromkeys(part[key] for part, _ in parts))
        row[key] = values[0] if len(values) == 1 else ("/".join(map(str, values)) if key == "position" else None)
    row["stack"] = " + ".join(f"{count}×{part['label']}" for part, count in parts)
    if first.get("ffn_kind") is not None:
        row["ffn_kind"] = first["ffn_kind"]
    # A model shorter than one period of the pattern lacks some of its layers (hybrid on micro's 4
    # layers: 4×linear, no softmax layer); say which, so the table does not imply they are there.
    held = {part["label"] for part, _ in parts}
    missing = [layer.label for layer in dict.fromkeys(spec.layers) if layer.label not in held]
    row["stack_missing"] = ", ".join(missing) or None
    for key in ADDITIVE:
        values = [part.get(key) for part, _ in parts if part.get(key) is not None]
        row[key] = sum(values) if values else None
    if row.get("flops") is not None and row.get("ffn_flops") is not None:
        row["attn_share"] = row["flops"] / (row["flops"] + row["ffn_flops"])
    return row


def _stacked(make, spec: AttentionSpec, preset: PresetSpec, layers: int, per_layer: bool) -> list[dict]:
    kinds = layer_kinds(spec, layers)
    parts = [(make(kind, count), count) for kind, count in kinds]
    if not isinstance(spec, HybridSpec):
        return [parts[0][0]]
    total = combine(spec, preset, parts, layers)
    if not per_layer:
        return [total]
    for part, _ in parts:
        part["layer_of"] = spec.label
    return [part for part, _ in parts] + [total]


def analytic_rows(spec: AttentionSpec, preset: PresetSpec, shape: Shape, layers: int, dtype: str,
                  device: str | None = None, per_layer: bool = False) -> list[dict]:  # fmt: skip
    """The model row (and with per_layer, first one row per distinct layer kind with its count)."""

    def make(kind, count):
        row = identity(kind, preset, shape.mode, shape.seq_len, shape.batch, count,
                       _single_cache_tokens(kind, shape.cache_tokens), dtype, device)  # fmt: skip
        row.update(flop_columns(kind, preset, shape, count))
        row.update(kv_columns(kind, dtype, count, shape.cache_tokens, shape.batch))
        return row

    return _stacked(make, spec, preset, layers, per_layer)


def analytic_row(spec: AttentionSpec, preset: PresetSpec, shape: Shape, layers: int, dtype: str,
                 device: str | None = None) -> dict:  # fmt: skip
    """FLOPs and KV bytes for `layers` layers of `spec` doing `shape` (the `flops` and `bench` rows)."""
    return analytic_rows(spec, preset, shape, layers, dtype, device)[-1]


def kv_rows(spec: AttentionSpec, preset: PresetSpec, seq_len: int, batch: int, layers: int, dtype: str,
            per_layer: bool = False) -> list[dict]:  # fmt: skip
    """A cache after seq_len tokens per sequence (the `kv-memory` rows, mode `cache`)."""

    def make(kind, count):
        row = identity(kind, preset, "cache", seq_len, batch, count, _single_cache_tokens(kind, seq_len), dtype)
        row.update(kv_columns(kind, dtype, count, seq_len, batch))
        return row

    return _stacked(make, spec, preset, layers, per_layer)


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


def math_path_flops(spec: AttentionSpec, shape: Shape, layers: int = 1, element_bytes: int = 4) -> int:
    """Matmul FLOPs the plain-math path performs in a run dtype of `element_bytes` (what
    FlopCounterMode counts there): the family's math_flops, which count the query blocks' key
    bands that path scores (cost.math_path_pairs), else the family's own count."""
    family = registry.get(spec.family)
    if family.math_flops is not None:
        per_layer = family.math_flops(spec, shape, element_bytes)
    else:
        per_layer = family.flops(spec, shape)
    return per_layer.matmul * shape.batch * layers


def kv_row(spec: AttentionSpec, preset: PresetSpec, seq_len: int, batch: int, layers: int, dtype: str) -> dict:
    """A cache holding seq_len tokens per sequence (the `kv-memory` rows, mode `cache`)."""
    return kv_rows(spec, preset, seq_len, batch, layers, dtype)[-1]


def add_ratios(rows: list[dict]) -> list[dict]:
    """Ratio columns against the first variant's row of the same mode, seq_len and batch. Rows
    timed in the same rounds (measure/bench.Rounds) get the speed-up round by round: its median
    over the rounds, and the p25–p75 of those per-round ratios; a spread wider than 10% of the
    median flags the row `noisy`. Otherwise (a row without rounds) the ratio of the medians."""
    from .measure.timing import NOISY_IQR_FRACTION, percentile  # torch-free

    base: dict[tuple, dict] = {}
    for row in rows:  # the first model row (not a --per-layer part) of each shape is the base
        if row.get("layer_of") is None:
            base.setdefault((row["mode"], row["seq_len"], row["batch"]), row)
    for row in rows:
        key = (row["mode"], row["seq_len"], row["batch"])
        first = base.get(key, row)
        row["base_label"] = first["label"]
        row["speedup_vs_base"] = _ratio(first.get("latency_ms_median"), row.get("latency_ms_median"))
        row["speedup_vs_base_p25"] = row["speedup_vs_base_p75"] = None
        theirs, ours = first.get("_round_ms") or [], row.get("_round_ms") or []
        if theirs and len(theirs) == len(ours) and all(v > 0 for v in ours):
            per_round = sorted(b / o for b, o in zip(theirs, ours))
            mid = percentile(per_round, 50)
            row.update(speedup_vs_base=mid, speedup_vs_base_p25=percentile(per_round, 25),
                       speedup_vs_base_p75=percentile(per_round, 75))  # fmt: skip
            if row["speedup_vs_base_p75"] - row["speedup_vs_base_p25"] > NOISY_IQR_FRACTION * mid:
                row["noisy"] = True
        row["kv_ratio_vs_base"] = _ratio(row.get("kv_cache_bytes"), first.get("kv_cache_bytes"))
        row["flops_ratio_vs_base"] = _ratio(row.get("flops"), first.get("flops"))
    return rows


def drop_private(rows: list[dict]) -> list[dict]:
    """Remove the working keys measurement leaves on rows (`_round_ms`) before they are shown or written."""
    for row in rows:
        for key in [k for k in row if k.startswith("_")]:
            del row[key]
    return rows


def _ratio(num, den):
    if num is None or den is None or den == 0:
        return None
    return num / den


# ------------------------------------------------------------------------------------------------
# serving: a whole model's cache per GPU (kv-memory)


def context_columns(preset: PresetSpec, seq_len: int) -> dict:
    """`max_position`: the context the model was built for (max_position_embeddings), and
    `beyond_max_position`: whether this row's seq_len exceeds it (None when the model gives none)."""
    limit = preset.model.max_position_embeddings if preset.model is not None else None
    return {"max_position": limit, "beyond_max_position": None if limit is None else seq_len > limit}


def serving_rows(spec: AttentionSpec, preset: PresetSpec, seq_len: int, batch: int, layers: int,
                 plan, per_layer: bool = False, kv_heads_from: str | None = None) -> list[dict]:  # fmt: skip
    """The kv-memory rows of `spec`, per GPU under `plan` (serving.Plan): over a stack's own
    layers (hybrid), the preset's model layers (`spec` as its softmax attention), or `layers`
    layers of `spec`. With per_layer, first one row per layer kind (its count in `layers`,
    `layer_of` naming the model row), then the model's row. `kv_heads_from` names the config
    field behind the KV heads."""
    from . import serving

    storage = plan.storage
    groups = serving.layer_groups(spec, preset.model, layers, plan.tp)
    common = {"tp": plan.tp, "kv_scales": storage.scales, "kv_heads_from": kv_heads_from}
    parts = []
    for g in groups:
        tokens = g.tokens(seq_len)
        if g.spec is not None:
            row = identity(g.spec, preset, "cache", seq_len, batch, g.count, tokens, storage.dtype)
        else:  # a model's linear, mamba or no-attention layers: described by its ModelSpec, not a registry family
            row = identity(spec, preset, "cache", seq_len, batch, g.count, tokens, storage.dtype)
            head_dim = preset.model.linear.key_dim if g.kind == "linear" else None
            row.update({"family": g.kind, "n_kv_heads": None, "head_dim": head_dim, "position": "none",
                        "window": None, **{c: None for c in SPEC_COLUMNS if c in row}})  # fmt: skip
        b = serving.group_bytes(g, storage, seq_len, batch)
        row.update(common)
        row.update({
            "label": g.label, "layer_kind": g.kind, "window": g.window, "kv_heads_per_gpu": g.kv_heads_per_gpu,
            "kv_bytes_per_token": serving.bytes_per_token([g], storage), "kv_cache_bytes": b.data + b.state,
            "kv_scale_bytes": b.scales if storage.scales else None,
            "linear_state_bytes": b.state if g.kind == "linear" else None,
            "ssm_state_bytes": b.state if g.kind == "mamba" else None,
        })  # fmt: skip
        row.update(context_columns(preset, seq_len))
        parts.append(row)
    b = serving.cache_bytes(groups, storage, seq_len, batch)
    total_layers = sum(g.count for g in groups)
    if isinstance(spec, HybridSpec):
        row = combine(spec, preset, [(part, g.count) for part, g in zip(parts, groups)], total_layers)
    else:
        held = list(dict.fromkeys(part["cache_tokens"] for part in parts))
        row = identity(spec, preset, "cache", seq_len, batch, total_layers, held[0] if len(held) == 1 else None,
                       storage.dtype)  # fmt: skip
        row["window"] = preset.model.window if preset.model is not None else row["window"]
    row.update(common)
    heads = list(dict.fromkeys(g.kv_heads_per_gpu for g in groups if g.spec is not None))
    row.update({
        "layer_kind": serving.describe(groups),
        "kv_heads_per_gpu": heads[0] if len(heads) == 1 else None,  # none where layers differ (Nemotron-NAS)
        "kv_bytes_per_token": serving.bytes_per_token(groups, storage),
        "kv_cache_bytes": b.data + b.state, "kv_scale_bytes": b.scales if storage.scales else None,
        "linear_state_bytes": serving.state_bytes(groups, storage, batch, "linear"),
        "ssm_state_bytes": serving.state_bytes(groups, storage, batch, "mamba"),
    })  # fmt: skip
    row.update(context_columns(preset, seq_len))
    row.update(plan.budget_columns(spec, preset, groups, seq_len, batch, b))
    if not per_layer or (len(groups) == 1 and not isinstance(spec, HybridSpec)):
        return [row]
    for part in parts:  # the stack's label, or the model a preset or config describes
        part["layer_of"] = row["label"] if isinstance(spec, HybridSpec) or preset.model is None else preset.name
    return parts + [row]


def sweep_plans(preset: PresetSpec, dtype: str, degrees: list[int] | None, scales: str | None) -> dict | None:
    """An analytic sweep's serving plans by TP degree (serving.Plan), or None when the sweep is the
    seed's plain analytic one: a size preset, no --tp, a float cache. With no --tp a model's rows
    are at TP 1 (their `tp` key says so)."""
    from . import serving

    storage = serving.Storage.of(dtype, scales)
    if preset.model is None and degrees is None and storage.scales is None:
        return None
    return {t: serving.Plan(storage=storage, tp=t) for t in degrees or [1]}


def sweep_row(spec: AttentionSpec, preset: PresetSpec, shape: Shape, layers: int, plan) -> dict:
    """An analytic sweep row sized as kv-memory sizes it (layer kinds, TP, scales, recurrent state;
    after prefill the cache holds seq_len tokens, after a decode step seq_len + 1), with the FLOP
    columns where the model's layers are all full attention, its MLP is known and TP is 1 (the
    FLOP columns are a whole model's; the byte columns are per GPU)."""
    row = serving_rows(spec, preset, shape.cache_tokens, shape.batch, layers, plan)[-1]
    row.update(mode=shape.mode, seq_len=shape.seq_len)
    model = preset.model
    plain = model is None or (set(model.layer_types) == {"full"} and not model.unsized and model.layer_kv_heads is None)
    if plain and plan.tp == 1:
        flops = flop_columns(spec, preset, shape, layers)
        flops.pop("kv_cache_bytes", None)
        row.update(flops)
    return row
