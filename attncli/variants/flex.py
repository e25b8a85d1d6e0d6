"""FlexAttention (`torch.nn.attention.flex_attention`) as a fast path: the mask says which blocks
of the score matrix exist, so a sliding window pays for its band and not for the whole triangle.

Masks are block masks built from mask functions (attention-gym's naming: each factory's name says
what it keeps): causal, a sliding window, chunked local attention (Llama 4) and documents packed
in one sequence. Score modifiers add ALiBi's bias and Gemma 2's soft-capping; attention sinks
(gpt-oss) rescale the output by the sink's share of the softmax denominator, from the
log-sum-exp flex returns. Positions follow `common.math_attention`: query t sits at
`q_offset + t`, key j at j (or `key_pos[j]`, a ring-buffer cache).

The kernel is `torch.compile(flex_attention)` (inductor generates the fused kernel on the CPU and
CUDA); it compiles once per shape and mask, and the seconds each compilation took are added to
`compile_seconds` so a row can report them apart from its timing. Block masks are cached per
(mask, query length, key length, device): built once, as a model builds one per batch for all its
layers. `eager=True` (tests) runs flex's unfused reference implementation instead: the same
masks and score modifiers, no compiler needed.

Modules route here while `use_flex()` is active (measure/backend.py sets it for `--backend flex`).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings

import torch

# -- which path the modules take ---------------------------------------------------------------

_state = {"on": False, "eager": False, "compile_seconds": 0.0, "calls": 0}


@contextlib.contextmanager
def use_flex(on: bool = True, eager: bool = False):
    """While active, the GQA family's fast path calls `attend` (FlexAttention) instead of SDPA.
    Dynamo may not quietly run flex uncompiled once it has compiled too many shapes: that is an
    error here (measure_row also starts every row with fresh caches)."""
    saved = dict(_state)
    _state.update(on=on, eager=eager)
    try:
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            yield
    finally:
        _state.update(on=saved["on"], eager=saved["eager"])


def calls() -> int:
    """How many times `attend` ran in this process (the backend probe counts them)."""
    return _state["calls"]


def active() -> bool:
    return _state["on"]


def compile_seconds() -> float:
    """Seconds spent compiling flex kernels in this process so far (a row takes the difference)."""
    return _state["compile_seconds"]


def compiler_problem() -> str | None:
    """Why flex cannot be compiled on the CPU here (no C++ compiler for inductor), or None."""
    import shutil

    from torch._inductor import config

    cxx = config.cpp.cxx[0] if isinstance(config.cpp.cxx, tuple) else config.cpp.cxx
    candidates = [c for c in (cxx, "g++", "clang++", "c++") if c]
    import os

    if os.environ.get("CXX"):
        candidates.insert(0, os.environ["CXX"])
    if any(shutil.which(c) for c in candidates):
        return None
    return f"no C++ compiler for inductor (tried {', '.join(dict.fromkeys(candidates))})"


# -- mask and score functions (named after what they keep) ----------------------------------------


def _positions(q_offset: int, key_pos):
    if key_pos is None:
        return (lambda q_idx: q_idx + q_offset), (lambda kv_idx: kv_idx)
    return (lambda q_idx: q_idx + q_offset), (lambda kv_idx: key_pos[kv_idx])


def mask_function(*, causal: bool, q_offset: int = 0, window: int | None = None, chunk: int | None = None,
                  doc_ids=None, key_pos=None):  # fmt: skip
    """The mask_mod (b, h, q_idx, kv_idx) -> keep, or None when every pair is kept.

    causal: key position ≤ query position; window W: fewer than W positions apart (either side when
    not causal); chunk C: query and key in the same C-token chunk (Llama 4's chunked local
    attention); doc_ids (S,): query and key in the same document (sequences packed in one row)."""
    qp, kp = _positions(q_offset, key_pos)
    parts, names = [], []
    if causal:
        parts.append(lambda b, h, q, k: qp(q) >= kp(k))
        names.append("causal")
    if window is not None:
        if causal:
            parts.append(lambda b, h, q, k: qp(q) - kp(k) < window)
        else:
            parts.append(lambda b, h, q, k: (qp(q) - kp(k)).abs() < window)
        names.append(f"sliding_window_{window}")
    if chunk is not None:
        parts.append(lambda b, h, q, k: qp(q) // chunk == kp(k) // chunk)
        names.append(f"chunked_{chunk}")
    if doc_ids is not None:
        parts.append(lambda b, h, q, k: doc_ids[qp(q)] == doc_ids[kp(k)])
        names.append("document")
    if not parts:
        return None

    def keep(b, h, q_idx, kv_idx):
        out = parts[0](b, h, q_idx, kv_idx)
        for p in parts[1:]:
            out = out & p(b, h, q_idx, kv_idx)
        return out

    keep.__name__ = "_".join(names)
    return keep


def score_function(*, q_offset: int = 0, alibi=None, softcap: float | None = None, key_pos=None):
    """The score_mod (score, b, h, q_idx, kv_idx) -> score, or None. `score` is already scaled.
    softcap c: c·tanh(score / c) (Gemma 2), applied first; alibi (h,) slopes: − slope·|i − j|."""
    if alibi is None and softcap is None:
        return None
    qp, kp = _positions(q_offset, key_pos)

    def modify(score, b, h, q_idx, kv_idx):
        if softcap is not None:
            score = softcap * torch.tanh(score / softcap)
        if alibi is not None:
            score = score - alibi[h] * (qp(q_idx) - kp(kv_idx)).abs()
        return score

    modify.__name__ = "_".join(n for n, on in (("softcap", softcap is not None), ("alibi", alibi is not None)) if on)
    return modify


# -- block masks and the compiled kernel --------------------------------------------------------

_block_masks: dict = {}
_compiled = {}
_seen: set = set()


def block_mask(mask_mod, key, q_len: int, kv_len: int, device):
    """The BlockMask of `mask_mod` for these lengths, built once per `key` (the mask's parameters)."""
    from torch.nn.attention.flex_attention import create_block_mask

    full = (key, q_len, kv_len, str(device))
    if full not in _block_masks:
        if len(_block_masks) > 64:
            _block_masks.clear()
        _block_masks[full] = create_block_mask(mask_mod, None, None, q_len, kv_len, device=device)
    return _block_masks[full]


def _kernel(eager: bool):
    from torch.nn.attention.flex_attention import flex_attention

    if eager:
        return flex_attention
    if "fn" not in _compiled:
        _compiled["fn"] = torch.compile(flex_attention, dynamic=False)
    return _compiled["fn"]


def _aux_lse():
    from torch.nn.attention.flex_attention import AuxRequest

    return AuxRequest(lse=True)


def reset() -> None:
    """Forget cached block masks and compiled shapes (after torch._dynamo.reset())."""
    _block_masks.clear()
    _compiled.clear()
    _seen.clear()


def attend(q, k, v, causal: bool, q_offset: int = 0, scale: float | None = None, *, window: int | None = None,
           alibi=None, key_pos=None, chunk: int | None = None, doc_ids=None, softcap: float | None = None,
           sinks=None, eager: bool | None = None):  # fmt: skip
    """FlexAttention with the masks and score modifiers of `math_attention` (same arguments), plus
    chunk, doc_ids, softcap and sinks (h,) logits. q: (B, h, T, dk); k: (B, g, S, dk); v: (B, g, S, dv)
    with g dividing h. Returns (B, h, T, dv)."""
    eager = _state["eager"] if eager is None else eager
    _state["calls"] += 1
    B, h, T, dk = q.shape
    g, S = k.shape[1], k.shape[2]
    if T == 1 and key_pos is not None and not causal:
        window = None  # one decode query over a ring cache: every slot it holds is within the window
    scale = 1.0 / math.sqrt(dk) if scale is None else scale
    mask_mod = mask_function(causal=causal, q_offset=q_offset, window=window, chunk=chunk, doc_ids=doc_ids,
                             key_pos=key_pos)  # fmt: skip
    score_mod = score_function(q_offset=q_offset, alibi=alibi, softcap=softcap, key_pos=key_pos)
    bm = None
    if mask_mod is not None:
        # Tensors a mask reads (ring positions, document ids) change its blocks: key them by value.
        tensors = tuple(None if t is None else hash(t.cpu().numpy().tobytes()) for t in (key_pos, doc_ids))
        bm = block_mask(mask_mod, (mask_mod.__name__, q_offset, tensors), T, S, q.device)
    extra = {"enable_gqa": True} if g != h else {}
    want_lse = sinks is not None
    kernel = _kernel(eager)
    seen = (eager, tuple(q.shape), tuple(k.shape), q.dtype, str(q.device), mask_mod and mask_mod.__name__,
            score_mod and score_mod.__name__, want_lse)  # fmt: skip
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        if want_lse:
            extra["return_aux"] = _aux_lse()
        out = kernel(q, k, v, score_mod=score_mod, block_mask=bm, scale=scale, **extra)
    if seen not in _seen:
        _seen.add(seen)
        if not eager:
            if q.device.type == "cuda":
                torch.cuda.synchronize(q.device)
            _state["compile_seconds"] += time.perf_counter() - t0
    if not want_lse:
        return out  # (B, h, T, dv)
    out, aux = out
    lse = aux.lse  # (B, h, T): natural-log log-sum-exp of the kept scores
    # A sink is one more logit in every softmax denominator with no value: o · Z / (Z + e^sink).
    share = torch.sigmoid(lse - sinks.to(lse.dtype).view(1, h, 1))  # (B, h, T)
    return out * share.unsqueeze(-1).to(out.dtype)
