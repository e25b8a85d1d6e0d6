"""Output error against a float64 reference (DESIGN.md): max |y − y_ref|, mean |y − y_ref| and the
relative L2 error ‖y − y_ref‖ / ‖y_ref‖, all computed in float64 on the CPU."""

from __future__ import annotations

import torch


def error_metrics(y: torch.Tensor, y_ref: torch.Tensor) -> dict | None:
    """None when y holds NaN or Inf (such a row is flagged, never averaged into a number)."""
    y = y.detach().to("cpu", torch.float64)
    y_ref = y_ref.detach().to("cpu", torch.float64)
    if not torch.isfinite(y).all():
        return None
    diff = (y - y_ref).abs()
    ref_norm = torch.linalg.vector_norm(y_ref).item()
    return {
        "max_abs": diff.max().item(),
        "mean_abs": diff.mean().item(),
        "rel_l2": torch.linalg.vector_norm(diff).item() / ref_norm if ref_norm else float("inf"),
    }


HEALTHY_FACTOR = 2.0  # FlashAttention's tests: fused error ≤ 2 × a same-dtype PyTorch implementation's
GRADED_DTYPES = ("float16", "bfloat16")


def is_healthy(fast: dict | None, math: dict | None, factor: float = HEALTHY_FACTOR) -> bool | None:
    """The fast path is healthy when its max |y − y_ref| is at most `factor` times the plain-math
    path's in the same dtype: the criterion of FlashAttention's tests (Dao-AILab/flash-attention,
    tests/test_flash_attn.py: `(out - out_ref).abs().max() <= 2 * (out_pt - out_ref).abs().max()`).
    False when the fast path gave NaN/Inf; None when the plain-math path did (nothing to grade against)."""
    if fast is None:
        return False
    if math is None:
        return None
    return fast["max_abs"] <= factor * math["max_abs"]
