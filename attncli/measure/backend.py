"""Attention backends. The SDPA ones (`math`, `flash`, `efficient`, `cudnn`) map to
torch.nn.attention.sdpa_kernel, and a probe call tells which backend each
scaled_dot_product_attention call really got. `flex` routes the fast path through FlexAttention
(variants/flex.py), and `flash_attn`, `flashinfer`, `xformers` through those libraries when they
are installed (variants/external.py): no SDPA call may happen under them. A backend the device cannot run for these
inputs is an InputError (exit 2), never a silent fallback."""

from __future__ import annotations

import contextlib
import re
import warnings

from ..errors import InputError, did_you_mean

BACKENDS = ("auto", "math", "flash", "efficient", "cudnn", "flex", "flash_attn", "flashinfer", "xformers")
EXTERNAL = ("flash_attn", "flashinfer", "xformers")  # optional libraries (variants/external.py)
_SDP_NAMES = {"math": "MATH", "flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
              "cudnn": "CUDNN_ATTENTION"}  # fmt: skip
_USED_NAMES = {"MATH": "math", "FLASH_ATTENTION": "flash", "EFFICIENT_ATTENTION": "efficient",
               "CUDNN_ATTENTION": "cudnn", "OVERRIDEABLE": "overrideable"}  # fmt: skip


def check_backend_name(name: str) -> str:
    """Syntax only (no torch): one of BACKENDS."""
    key = str(name).strip().lower()
    if key not in BACKENDS:
        raise InputError("--backend", f"unknown backend '{name}'", did_you_mean(key, BACKENDS))
    return key


def sdpa_context(name: str):
    """The context that restricts SDPA to the requested backend (auto: torch's own choice)."""
    if name == "auto":
        return contextlib.nullcontext()
    if name == "flex":
        from ..variants import flex

        return flex.use_flex()
    if name in EXTERNAL:
        from ..variants import external

        return external.use(name)
    return _named_sdpa(name)


@contextlib.contextmanager
def _named_sdpa(name: str):
    """SDPA restricted to one kernel; CPU decode runs through it too, not the gemv path."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from ..variants.common import sdpa_only

    with sdpa_only(), sdpa_kernel([getattr(SDPBackend, _SDP_NAMES[name])]):
        yield


class _Unavailable(Exception):
    pass


def _one_line(text: str, limit: int = 240) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def probe(call, backend: str, what: str) -> str | None:
    """Run call() once (inside the caller's sdpa_context) and return the backend its SDPA calls
    used: asked of `torch._fused_sdp_choice`, the selector SDPA itself runs, on each call's own
    arguments. Distinct backends are joined with '+'; 'none' means no SDPA call was made; None
    means torch could not say. `what` describes the work for the error message."""
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    used: list[str | None] = []

    class Spy(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is not F.scaled_dot_product_attention:
                return func(*args, **kwargs)
            if backend == "flex" or backend in EXTERNAL:  # SDPA under these would be a fallback
                raise _Unavailable(f"its fast path has no {backend} form (it calls SDPA)")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    out = func(*args, **kwargs)
                except RuntimeError as e:
                    if backend == "auto":
                        raise
                    # torch warns why each kernel was refused (CUDA); its error itself is generic.
                    reasons = [str(w.message) for w in caught if "sdp" in str(w.message).lower()
                               or "attention" in str(w.message).lower()]  # fmt: skip
                    first = str(e).split(". ")[0].strip().rstrip(".")
                    raise _Unavailable("; ".join(reasons) or f"torch: {first}") from None
            try:
                choice = torch._fused_sdp_choice(*args, **kwargs)
                from torch.nn.attention import SDPBackend

                used.append(_USED_NAMES.get(SDPBackend(choice).name))
            except Exception:  # noqa: BLE001 - a device without a selector: the backend is unknown
                used.append(None)
            return out

    from ..variants import cdecode, external, flex
    from ..variants.common import decode_calls

    flex_calls, external_calls, gemv_calls, kernel_calls = flex.calls(), external.calls(), decode_calls(), cdecode.calls()
    try:
        with Spy():
            call()
    except _Unavailable as e:
        raise InputError("--backend", f"{backend} cannot run {what} ({_one_line(e)})",
                         "use --backend auto, or math (runs everywhere)") from None  # fmt: skip
    except Exception as e:  # noqa: BLE001 - inductor fails in many ways (no compiler, unsupported op)
        if backend != "flex":
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError("--backend", f"flex cannot run {what} (torch: {_one_line(first, 200)})",
                         "use --backend auto, or math (runs everywhere)") from None  # fmt: skip
    if decode_calls() > gemv_calls:  # the CPU decode path (variants/common.decode_attention)
        used.insert(0, "gemv")
    if cdecode.calls() > kernel_calls:  # its C kernel (variants/cdecode.py)
        used.insert(0, "avx2")
    if flex.calls() > flex_calls:
        used.insert(0, "flex")
    if external.calls() > external_calls:
        used.insert(0, backend)
    if not used:
        return "none"
    if None in used:
        return None
    return "+".join(dict.fromkeys(used))


def check_flex_available(device) -> None:
    """`--backend flex` needs FlexAttention in this torch and, on the CPU, a C++ compiler for
    inductor: say so before any row runs (exit 2)."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError as e:
        raise InputError("--backend", f"flex needs torch.nn.attention.flex_attention (torch >= 2.5): {e}") from None
    from ..variants import flex

    if getattr(device, "type", str(device)) == "cpu":
        problem = flex.compiler_problem()
        if problem:
            raise InputError("--backend", f"flex cannot compile on the cpu: {problem}", "set CXX, or use --backend auto")


def check_available(name: str, device) -> None:
    """Before any row: flex's compiler, or an optional library's import and device (exit 2)."""
    if name == "flex":
        check_flex_available(device)
    elif name in EXTERNAL:
        from ..variants import external

        external.check(name, device)
