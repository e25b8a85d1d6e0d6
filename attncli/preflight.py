"""Memory pre-flight: refuse a measured row that cannot fit before building any tensor.

The float64 reference always runs on the CPU, so a row needs room for the run-dtype copy on its
device and for the float64 copy on the host (both on the host when the device is the CPU).
"""

from __future__ import annotations

import os

from . import registry
from .cost import MATH_MAX_SCORE_BYTES, math_query_block, run_memory_bytes
from .errors import ResourceError
from .spec import DTYPE_BYTES, AttentionSpec, Shape


def row_bytes(spec: AttentionSpec, shape: Shape, dtype: str) -> tuple[int, int]:
    """(bytes on the run device, bytes of the float64 reference on the host)."""
    return (estimate_bytes(spec, shape, DTYPE_BYTES[dtype], fast_path=True),
            estimate_bytes(spec, shape, DTYPE_BYTES["float64"], fast_path=False))  # fmt: skip


def estimate_bytes(spec: AttentionSpec, shape: Shape, b: int, fast_path: bool = True) -> int:
    """Peak bytes one measured row holds at element size `b`: the generic terms of
    cost.run_memory_bytes (weights, activations, the plain-math path's score block, the cache and
    the keys and values spread over every query head), with what each family adds or saves:
    - cross: keys and values come from an encoder memory of memory_len tokens (the memory itself,
      its projections — the cache — and scores over M keys), whatever the decoder length;
    - sliding window: the math path's score blocks span about block + W keys, not every key;
    - linear: one score block (no softmax copy) and no token cache; a decode row builds its state
      from the prefix's projected queries, keys and values;
    - sliding window (and any family): the cache holds the tokens its family says (a ring of W);
    - MLA: the math path up-projects the latent of every key to per-head K/V (kv_b_proj's output
      beside the keys and values it is split into); the absorbed fast path (run dtype only, not the
      float64 reference: `fast_path`) scores the latent queries against every key at once (SDPA's
      math fallback, unblocked) and up-projects the prefix once more.
    Terms are counted per family so that the estimate stays within about 1.1–2× of the measured
    peak (tests/test_reliability_preflight.py measures each family on two shapes)."""
    from .spec import CrossSpec, LinearSpec, MLASpec

    family = registry.get(spec.family)
    per_token, params = family.kv_elements_per_token(spec), family.params(spec)
    B = shape.batch
    n = shape.n_query
    keys = shape.seq_len + 1 if shape.mode == "decode" else shape.seq_len
    window = getattr(spec, "window", None)
    if isinstance(spec, CrossSpec):
        keys = spec.memory_len
    total = run_memory_bytes(spec, shape, per_token, params, b)
    cache_tokens = family.cache_tokens(spec, shape.cache_tokens)
    total += 3 * per_token * (cache_tokens - shape.cache_tokens) * B * b  # the generic term counted every token
    generic_scores = 2 * min(MATH_MAX_SCORE_BYTES, B * spec.n_heads * n * (shape.seq_len + 1 if shape.mode == "decode"
                                                                          else shape.seq_len) * b)  # fmt: skip
    total -= generic_scores  # replaced below by the family's own score blocks
    block = min(n, math_query_block(B, spec.n_heads, keys, b, window))
    span = keys if window is None else min(keys, block + window)
    score_block = B * spec.n_heads * block * span * b
    total += (1 if isinstance(spec, LinearSpec) else 2) * score_block
    if isinstance(spec, CrossSpec):
        M = spec.memory_len
        generic_kv = 2 * B * (shape.seq_len + 1 if shape.mode == "decode" else shape.seq_len) * spec.q_dim * b
        total -= generic_kv + per_token * M * B * b  # the memory's K/V are projected once: not 3× but 2×
        total += B * M * spec.d_model * b  # the encoder memory handed to the layer
        total += 2 * B * M * spec.q_dim * b  # spread over every query head by the math path
    if isinstance(spec, LinearSpec) and shape.mode == "decode":
        total += 3 * B * keys * spec.q_dim * b  # the prefix's φ(q), φ(k), v that build the state
    if isinstance(spec, MLASpec):
        nope, rope, v = spec.qk_nope_head_dim, spec.qk_rope_head_dim, spec.v_head_dim
        total += B * keys * spec.n_heads * (nope + v) * b  # kv_b_proj's output
        if fast_path and spec.absorb:
            total += 2 * B * spec.n_heads * n * keys * b  # latent scores and their softmax, unblocked
            total += B * keys * spec.n_heads * (2 * nope + rope + v) * b  # the prefix up-projected again
    return total


def host_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages; None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def device_available_bytes(device) -> int | None:
    """Free memory on a CUDA device (torch.cuda.mem_get_info); None for MPS (unified memory)."""
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def check(spec: AttentionSpec, shape: Shape, dtype: str, device_type: str, device_free: int | None = None,
          host_free: int | None = None) -> None:  # fmt: skip
    """Raise ResourceError (exit 3) naming both figures when the row will not fit."""
    on_device, reference = row_bytes(spec, shape, dtype)
    host_need = reference + (on_device if device_type == "cpu" else 0)
    what = f"{spec.label} {shape.mode} seq_len={shape.seq_len:,} batch={shape.batch}"
    hint = f"{knob(spec, shape, dtype)}, or --force to try anyway"
    if host_free is None:
        host_free = host_available_bytes()
    if host_free is not None and host_need > host_free:
        raise ResourceError(what, f"needs about {_gib(host_need)} of host memory (weights, activations, scores, "
                            f"KV cache; float64 reference included) but {_gib(host_free)} is available", hint)  # fmt: skip
    if device_type != "cpu" and device_free is not None and on_device > device_free:
        raise ResourceError(what, f"needs about {_gib(on_device)} on {device_type} but {_gib(device_free)} is free", hint)


def knob(spec: AttentionSpec, shape: Shape, dtype: str) -> str:
    """What to shrink: the option or field whose halving saves the most of the estimate (a cross
    layer's memory_len, not --seq-len, when the encoder memory is what does not fit)."""
    import dataclasses

    from .spec import CrossSpec

    def need(s, sh):
        return sum(row_bytes(s, sh, dtype))

    full = need(spec, shape)
    saved = {"a shorter --seq-len": full - need(spec, dataclasses.replace(shape, seq_len=max(1, shape.seq_len // 2))),
             "a smaller --batch": full - need(spec, dataclasses.replace(shape, batch=max(1, shape.batch // 2)))}  # fmt: skip
    if isinstance(spec, CrossSpec):
        shorter = dataclasses.replace(spec, memory_len=max(1, spec.memory_len // 2))
        saved[f"a shorter memory_len (the encoder memory, now {spec.memory_len:,} tokens)"] = full - need(shorter, shape)
    best = max(saved, key=saved.get)
    others = [k for k in saved if k != best]
    return f"use {best}" + (f" (or {', '.join(others)})" if others else "")


def check_convert(spec: AttentionSpec, shape: Shape, dtype: str, host_free: int | None = None) -> None:
    """`convert`: the original and the converted layer each run the plain-math path on the same
    inputs in `dtype`, on the host. Refuse (exit 3) before torch loads when both cannot fit."""
    need = 2 * estimate_bytes(spec, shape, DTYPE_BYTES[dtype], fast_path=False)
    if host_free is None:
        host_free = host_available_bytes()
    if host_free is not None and need > host_free:
        raise ResourceError(f"convert seq_len={shape.seq_len:,} batch={shape.batch}",
                            f"needs about {_gib(need)} of host memory (the original and the converted layer, "
                            f"{dtype}) but {_gib(host_free)} is available", "use a shorter --seq-len or a smaller --batch")  # fmt: skip

