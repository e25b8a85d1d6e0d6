"""Optional GPU attention libraries as fast-path backends: FlashAttention-2/3 (`flash_attn`),
FlashInfer (`flashinfer`) and xformers. None is a dependency: each is imported when its backend is
asked for, and one that is not installed, or cannot run here (they need CUDA), is a one-line
error (exit 2), never a fallback. Every row they give is graded against the float64 plain-math
path like the rest, so a convention mismatch (a window off by one, another ALiBi slope rule)
shows as an unhealthy row rather than as a fast one.

Positions follow `common.math_attention`: T queries at q_offset..q_offset+T-1 over S keys at
0..S-1. All three libraries align a causal mask to the bottom right (the last query sees the last
key), which is that convention when q_offset = S − T: true of every prefill and decode step here.
A ring-buffer cache (keys out of position order) is taken only when no mask or bias depends on the
positions (one decode query over a ring holds only in-window keys).
"""

from __future__ import annotations

import contextlib
import importlib
import math

from ..errors import InputError

LIBRARIES = {  # backend name -> (module imported, pip package, what it is)
    "flash_attn": ("flash_attn", "flash-attn", "FlashAttention-2/3"),
    "flashinfer": ("flashinfer", "flashinfer-python", "FlashInfer"),
    "xformers": ("xformers.ops", "xformers", "xformers"),
}
_state = {"name": None, "calls": 0, "module": None}


def load(name: str):
    """The library's module, or an InputError saying it is not installed (and how to install it)."""
    module, package, what = LIBRARIES[name]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise InputError("--backend", f"{name} is not installed ({what}: pip install {package}; {e})",
                         "use --backend auto") from None  # fmt: skip


def check(name: str, device) -> None:
    """Before any row: the library imports and the device is a CUDA GPU."""
    load(name)
    kind = getattr(device, "type", str(device))
    if kind != "cuda":
        raise InputError("--backend", f"{name} runs on CUDA GPUs only, not on {kind}", "use --backend auto or flex")


@contextlib.contextmanager
def use(name: str):
    """While active, the GQA family's fast path calls `attend` with this library."""
    saved = dict(_state)
    _state.update(name=name, module=load(name))
    try:
        yield
    finally:
        _state.update(name=saved["name"], module=saved["module"])


def active() -> str | None:
    return _state["name"]


def calls() -> int:
    return _state["calls"]


def _refuse(what: str):
    raise InputError("--backend", f"{_state['name']} cannot run {what} here", "use --backend flex or auto")


def attend(q, k, v, causal: bool, q_offset: int = 0, scale: float | None = None, *, window: int | None = None,
           alibi=None, key_pos=None, softcap: float | None = None, sinks=None):  # fmt: skip
    """The arguments of `common.math_attention`; q (B, h, T, dk), k (B, g, S, dk), v (B, g, S, dv)
    -> (B, h, T, dv)."""
    name = _state["name"]
    _state["calls"] += 1
    T, S = q.shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    if sinks is not None:
        _refuse("attention sinks")
    if key_pos is not None:
        if T != 1 or causal or alibi is not None:
            _refuse("a ring-buffer cache with position-dependent masks or biases")
        window = None  # one decode query over a ring: every slot it holds is within the window
    elif T > 1 and q_offset != S - T:
        _refuse(f"queries at {q_offset}.. over {S} keys (the libraries align masks to the last key)")
    if not causal and T > 1 and window is not None:
        _refuse("a two-sided sliding window")
    if T == 1:
        causal = False  # one query at the last position sees every key: no mask needed
    fn = {"flash_attn": _flash_attn, "flashinfer": _flashinfer, "xformers": _xformers}[name]
    return fn(_state["module"], q, k, v, causal, scale, window, alibi, softcap)


def _flash_attn(lib, q, k, v, causal, scale, window, alibi, softcap):
    # flash_attn_func: (B, S, H, D) tensors; KV heads may divide the query heads (GQA); window_size
    # (left, right) keeps keys i + S_k − S_q − left .. i + S_k − S_q + right; ALiBi (h,) fp32 adds
    # −slope·|i + S_k − S_q − j|: attncli's −slope·|i − j| at these positions.
    if v.shape[-1] != q.shape[-1]:
        _refuse("values narrower than keys")
    kwargs = {"softmax_scale": scale, "causal": causal}
    if window is not None:
        kwargs["window_size"] = (window - 1, 0 if causal else window - 1)
    if alibi is not None:
        kwargs["alibi_slopes"] = alibi.float()
    if softcap is not None:
        kwargs["softcap"] = softcap
    out = lib.flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), **kwargs)  # (B, T, h, d)
    return out.transpose(1, 2)  # (B, h, T, d)


def _flashinfer(lib, q, k, v, causal, scale, window, alibi, softcap):
    # single_prefill_with_kv_cache: one sequence, NHD layout (T, h, d) / (S, g, d); window_left W − 1
    # keeps keys i − (W − 1) .. i; GQA by head count. attncli does not hand ALiBi slopes to it.
    if alibi is not None:
        _refuse("ALiBi (its slopes are FlashInfer's own)")
    kwargs = {"causal": causal, "sm_scale": scale, "kv_layout": "NHD"}
    if window is not None:
        kwargs["window_left"] = window - 1
    if softcap is not None:
        kwargs["logits_soft_cap"] = softcap
    outs = [lib.single_prefill_with_kv_cache(q[b].transpose(0, 1).contiguous(), k[b].transpose(0, 1).contiguous(),
                                             v[b].transpose(0, 1).contiguous(), **kwargs)  # fmt: skip
            for b in range(q.shape[0])]  # each (T, h, dv)
    import torch

    return torch.stack(outs).transpose(1, 2)  # (B, h, T, dv)


def _xformers(lib, q, k, v, causal, scale, window, alibi, softcap):
    # memory_efficient_attention: (B, M, G, H/G, K) for grouped heads, keys broadcast over the group;
    # causal and local masks from the bottom right (fmha.attn_bias).
    if alibi is not None or softcap is not None:
        _refuse("ALiBi or soft-capping")
    B, h, T, d = q.shape
    g, S = k.shape[1], k.shape[2]
    bias_mod = lib.fmha.attn_bias
    bias = None
    if window is not None and causal:
        bias = bias_mod.LowerTriangularFromBottomRightLocalAttentionMask(window)
    elif causal:
        bias = bias_mod.LowerTriangularFromBottomRightMask()
    q5 = q.transpose(1, 2).reshape(B, T, g, h // g, d)  # (B, T, g, h/g, d)
    k5 = k.transpose(1, 2)[:, :, :, None].expand(B, S, g, h // g, d)  # (B, S, g, h/g, d)
    v5 = v.transpose(1, 2)[:, :, :, None].expand(B, S, g, h // g, v.shape[-1])
    out = lib.memory_efficient_attention(q5, k5, v5, attn_bias=bias, scale=scale)  # (B, T, g, h/g, dv)
    return out.reshape(B, T, h, v.shape[-1]).transpose(1, 2)  # (B, h, T, dv)
