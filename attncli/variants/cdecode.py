"""The CPU decode kernels in C (decode_kernel.c), for the CPU in float32 with AVX2/FMA: GQA's
grouped query heads over one pass of the KV cache (`attention`), the few-row projections of a
decode step (`linear`, which common.Projection calls), and a GQA layer's whole decode step in one
call (`gqa_step`, which GQAAttention.step calls: none of torch's per-op dispatch between them).

It is built on first use with the system C compiler ($CC, else `cc`, `gcc` or `clang`) into the
cache folder (measure.peak.cache_dir()/kernels, or $ATTNCLI_KERNEL_DIR), named by a hash of its
source and flags, and loaded with ctypes; later runs load the built file. The build writes a
temporary file beside the target and renames it into place, so runs sharing the folder never load
a half-written library. A build that fails, a CPU without AVX2/FMA, a system other than Linux on
x86-64 or `ATTNCLI_DECODE_KERNEL=0` leave decode on the BLAS path (backend_used `gemv`);
`unavailable()` says why. Before its first use in a process the library is checked against a
float64 reference on a small case with ragged block ends; one that disagrees is not used.

Measured on the 2-core EPYC (docs/backends.md, "GQA decode: one pass in C"): on the decode
bandwidth benchmark's shape (4 KV heads × 4 query rows, 8,193 keys, batch 4) the attention takes
0.45× the time of the BLAS's 4-row products it replaces, at 0.97-0.99 of the read-only rate
(the host's noise moves the fraction more than the ratio); the whole step in one call takes 0.82×
the time of the same step op by op.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

SOURCE = Path(__file__).with_name("decode_kernel.c")
FLAGS = ("-O3", "-mavx2", "-mfma", "-fopenmp", "-shared", "-fPIC")
BUILD_SECONDS = 120  # one compile of a 250-line file; a compiler that hangs longer is not used
MIN_ROWS = 2  # one query row per KV head (MHA) streams at memory speed through the BLAS already
# linear: 3-8 rows took 0.79-0.84x the time of the BLAS's W·xᵀ (5 rows 0.97x) with the weights in
# DRAM; 2 rows fill half a tile and measured even (0.97-1.04x), so they stay on the BLAS
# (benchmarks/decode_projection.py; docs/backends.md)
LINEAR_ROWS = range(3, 9)
# gqa_step: 1-8 sequences (the few-row products above; more rows are a matrix product the BLAS wins)
STEP_ROWS = range(1, 9)
_state: dict = {"lib": None, "why": None, "tried": False, "calls": 0, "linear_calls": 0, "step_calls": 0}


def kernel_dir() -> Path:
    """Where built kernels live: $ATTNCLI_KERNEL_DIR if set, else the attncli cache folder's kernels/."""
    if os.environ.get("ATTNCLI_KERNEL_DIR"):
        return Path(os.environ["ATTNCLI_KERNEL_DIR"])
    from ..measure.peak import cache_dir

    return cache_dir() / "kernels"


def _compiler() -> str | None:
    named = os.environ.get("CC")
    if named:
        return shutil.which(named) or (named if os.path.isabs(named) and os.access(named, os.X_OK) else None)
    return next((found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))), None)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def _why_not_here() -> str | None:
    if os.environ.get("ATTNCLI_DECODE_KERNEL", "1") == "0":
        return "ATTNCLI_DECODE_KERNEL=0"
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"built for Linux on x86-64 only, this is {platform.system()} on {platform.machine()}"
    missing = {"avx2", "fma"} - _cpu_flags()
    if missing:
        return f"this CPU lacks {', '.join(sorted(missing))}"
    return None


def _build(cc: str) -> Path:
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + "\0".join((cc, *FLAGS)).encode()).hexdigest()[:16]
    folder = kernel_dir()
    target = folder / f"decode-{digest}.so"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        done = subprocess.run([cc, *FLAGS, str(SOURCE), "-o", tmp, "-lm"], capture_output=True, text=True,
                              timeout=BUILD_SECONDS)  # fmt: skip
        if done.returncode != 0:
            first = next((ln for ln in done.stderr.splitlines() if "error" in ln), done.stderr.strip()[:200])
            raise OSError(f"{Path(cc).name} failed: {first.strip()}")
        os.replace(tmp, target)  # atomic: a run sharing the folder sees the whole file or none
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _load() -> ctypes.CDLL | None:
    why = _why_not_here()
    if why is None:
        cc = _compiler()
        if cc is None:
            why = "no C compiler found (set CC)"
    if why is not None:
        _state["why"] = why
        return None
    try:
        built = _build(cc)
    except (OSError, subprocess.SubprocessError) as e:
        _state["why"] = f"not built: {_first_line(e)}"
        return None
    try:
        lib = ctypes.CDLL(str(built))
    except OSError as e:  # e.g. a cache folder mounted noexec
        _state["why"] = f"not loaded: {_first_line(e)}"
        return None
    c = ctypes
    lib.attncli_decode.argtypes = [c.c_void_p] * 4 + [c.c_long, c.c_long, c.c_int, c.c_int, c.c_int, c.c_long] + \
        [c.c_long] * 8 + [c.c_float, c.c_int, c.c_long]  # fmt: skip
    lib.attncli_decode.restype = c.c_int
    lib.attncli_linear.argtypes = [c.c_void_p] * 3 + [c.c_int, c.c_long, c.c_long, c.c_long, c.c_long, c.c_int]
    lib.attncli_linear.restype = c.c_int
    lib.attncli_gqa_step.argtypes = [c.c_void_p, c.c_int, c.c_long, c.c_long] + [c.c_void_p] * 4 + [c.c_long] * 4 + \
        [c.c_void_p] * 4 + [c.c_int] * 3 + [c.c_void_p] * 2 + [c.c_int] * 2 + [c.c_void_p] * 2 + [c.c_long] * 7 + \
        [c.c_float, c.c_void_p, c.c_int, c.c_long]  # fmt: skip
    lib.attncli_gqa_step.restype = c.c_int
    _state["lib"] = lib
    why = _self_check()
    if why is not None:
        _state["lib"], _state["why"] = None, why
        return None
    return lib


def library() -> ctypes.CDLL | None:
    """The loaded kernel, built on first use; None where it cannot be (see `unavailable`)."""
    if not _state["tried"]:
        _state["tried"] = True
        _load()
    return _state["lib"]


def unavailable() -> str | None:
    """Why decode does not use the kernel here, or None when it does (after the first `library()`)."""
    library()
    return _state["why"]


def calls() -> int:
    """How many steps the kernel ran in this process (the backend probe's `avx2`)."""
    return _state["calls"]


def linear_calls() -> int:
    """How many projections `linear` computed in this process."""
    return _state["linear_calls"]


def _fits(q, k, v) -> bool:
    """The strides the kernel reads: the kv_cache_tensor layout (tokens contiguous per head dim),
    each query row dense."""
    return q.shape[2] == 1 and _dense_rows(q) and _cache_layout(k, v)


def _cache_layout(k, v) -> bool:
    """Float32 CPU caches in the kv_cache_tensor layout: each head dim's tokens contiguous. (`is`
    and `is_cpu`: 0.3-0.4 µs a read where `device.type` costs 1.2, in gqa_step's cold path.)"""
    return (k.stride(2) == 1 and v.stride(2) == 1 and k.dtype is torch.float32 and v.dtype is torch.float32
            and k.is_cpu and v.is_cpu)  # fmt: skip


def attention(q, k, v, scale: float, block: int = 0) -> torch.Tensor | None:
    """softmax(q·Kᵀ·scale)·V for one query per sequence, or None where the kernel does not apply.
    q: (B, h, 1, hd); k: (B, g, S, hd) and v: (B, g, S, dv) in the CPU cache layout; h = g·r with
    r ≥ MIN_ROWS. `block`: tokens per online-softmax block, rounded up to 16 (0: the kernel's own,
    as many as 192 KiB of scores hold, so one block up to 12,288 tokens at r = 4; the tests and
    the self-check pass small ones to cross block ends). Returns (B, h, 1, dv)."""
    B, h, _, hd = q.shape
    g, S, dv = k.shape[1], k.shape[2], v.shape[-1]
    r = h // g
    if r < MIN_ROWS or S == 0 or not _fits(q, k, v) or not _eager():
        return None
    lib = library()
    if lib is None:
        return None
    out = q.new_empty(B, h, 1, dv)  # (B, h, 1, dv)
    rc = lib.attncli_decode(q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), B, g, r, hd, dv, S,
                            q.stride(0), q.stride(1), k.stride(0), k.stride(1), k.stride(3), v.stride(0),
                            v.stride(1), v.stride(3), float(scale), torch.get_num_threads(), int(block))  # fmt: skip
    if rc != 0:
        raise MemoryError("the decode kernel could not allocate its scratch or start its threads")
    _state["calls"] += 1
    return out


def linear(x, weight) -> torch.Tensor | None:
    """x·weightᵀ for x (rows, in) with rows in LINEAR_ROWS, weight (out, in), both float32 on the
    CPU with their last dim dense, where no gradient is asked for; None where the kernel does not
    apply (the caller's BLAS product then). Returns (rows, out), dense."""
    rows, n_in = x.shape
    if rows not in LINEAR_ROWS or weight.shape[1] != n_in or not _dense_rows(x, weight):
        return None
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad) or not _eager():
        return None
    lib = library()
    if lib is None:
        return None
    out = x.new_empty(rows, weight.shape[0])
    lib.attncli_linear(x.data_ptr(), weight.data_ptr(), out.data_ptr(), rows, n_in, weight.shape[0], x.stride(0),
                       weight.stride(0), torch.get_num_threads())  # fmt: skip
    _state["linear_calls"] += 1
    return out


def gqa_step(x, weights, biases, rope, cache_k, cache_v, pos: int, heads: int, scale: float, block: int = 0):
    """A GQA layer's whole decode step in one C call, or None where it does not apply (the layer's
    own step then): q, k, v = x·Wᵀ (+ bias), RoPE on q and k (`rope`: a common.Rope or None), the
    new key and value written to slot `pos` of the caches, attention over slots 0..pos, the output
    projection. x: (B, 1, d_model) with B in STEP_ROWS; weights, biases: the q, k, v and o
    projections' (out, in) weights and (out,) biases or None; cache_k, cache_v: (B, g, slots, hd)
    in the CPU layout (kv_cache_tensor); heads / g ≥ MIN_ROWS; float32 on the CPU, no gradient
    asked for. `block` as in `attention`. Returns (B, 1, d_model).

    Every Python step here runs after a pass over a cache far larger than the CPU's caches, so
    cold (a call doing nothing in C took 0.36 ms of a 5 ms step with modules' attributes read
    twice): each tensor attribute is read once."""
    B, T, d = x.shape
    kshape = cache_k.shape
    _, g, slots, hd = kshape
    if T != 1 or B not in STEP_ROWS or heads // g < MIN_ROWS or pos >= slots or kshape[0] != B:
        return None
    if cache_v.shape != kshape:
        return None
    wq, wk, wv, wo = weights
    if wq.shape != (heads * hd, d) or wk.shape != (g * hd, d) or wv.shape != (g * hd, d) or wo.shape != (d, heads * hd):
        return None  # the C call reads these sizes; anything else is not this layer's step
    if any(b is not None and b.shape != (w.shape[0],) for w, b in zip(weights, biases)):
        return None
    tensors = (x, *weights, *(b for b in biases if b is not None))
    if not _dense_rows(*tensors) or not _cache_layout(cache_k, cache_v):
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors) or not _eager():
        return None
    lib = _state["lib"] if _state["tried"] else library()
    if lib is None:
        return None
    cos = sin = None
    if rope is not None:
        if rope.dim > hd or rope.dim % 2:  # rotates what common.Rope would not (a head's first dim elements)
            return None
        cos_table, sin_table, row = rope.cpu_row(pos, torch.float32)  # (n, rot) each, dense
        cos = cos_table.data_ptr() + 4 * row * rope.dim
        sin = sin_table.data_ptr() + 4 * row * rope.dim
    ks, vs = cache_k.stride(), cache_v.stride()
    y = x.new_empty(B, 1, d)
    rc = lib.attncli_gqa_step(x.data_ptr(), B, d, x.stride(0), wq.data_ptr(), wk.data_ptr(), wv.data_ptr(),
                              wo.data_ptr(), wq.stride(0), wk.stride(0), wv.stride(0), wo.stride(0),
                              *(None if b is None else b.data_ptr() for b in biases), heads, g, hd,
                              cos, sin,
                              0 if rope is None else rope.dim, 0 if rope is None else int(rope.interleave),
                              cache_k.data_ptr(), cache_v.data_ptr(), ks[0], ks[1], ks[3], vs[0], vs[1], vs[3], pos,
                              scale, y.data_ptr(), torch.get_num_threads(), block)  # fmt: skip
    if rc != 0:
        raise MemoryError("the decode kernel could not allocate its scratch or start its threads")
    _state["calls"] += 1
    _state["linear_calls"] += 4
    _state["step_calls"] += 1
    return y


def step_calls() -> int:
    """How many whole decode steps `gqa_step` ran in this process."""
    return _state["step_calls"]


def _eager() -> bool:
    """No dispatch mode is watching (FlopCounterMode counts the aten ops a product makes, and a C
    call makes none: --verify-flops would miss it) and nothing is being traced or compiled."""
    return not is_in_torch_dispatch_mode() and not torch.compiler.is_compiling()


def _dense_rows(*tensors) -> bool:
    """Float32 CPU tensors whose last dim is dense (the cheap reads, as _cache_layout)."""
    return all(t.dtype is torch.float32 and t.is_cpu and t.stride(-1) == 1 for t in tensors)


def _self_check() -> str | None:
    """Run the kernels on cases with every ragged edge against float64; a reason when one
    disagrees. Attention: blocks of 1,040 tokens with a short last one (so the scores both in
    passes of head dims and in one), a partial 16-key tile, a partial row group, an odd head dim
    and so a partial pass. Linear: two row groups, odd sizes. The whole step: biases, partial
    RoPE, three query heads per KV head, two blocks, and the new token's slot in both caches."""
    gen = torch.Generator().manual_seed(0)
    B, g, r, hd, S = 2, 2, 5, 33, 2 * 1040 + 20
    q = torch.randn(B, g * r, 1, hd, generator=gen)
    k = torch.randn(B, g, hd, S + 3, generator=gen).transpose(2, 3)[:, :, :S]
    v = torch.randn(B, g, hd, S + 3, generator=gen).transpose(2, 3)[:, :, :S]
    x, w = torch.randn(5, 37, generator=gen), torch.randn(7, 37, generator=gen)
    from .common import math_attention  # common imports this module

    with torch.no_grad():
        pairs = [(attention(q, k, v, hd**-0.5, block=1040),
                  math_attention(q.double(), k.double(), v.double(), causal=False, scale=hd**-0.5)),
                 (linear(x, w), x.double() @ w.double().t()), *_step_pairs(gen)]  # fmt: skip
    err = max(((got.double() - want).norm() / want.norm()).item() if got is not None else float("inf")
              for got, want in pairs)  # fmt: skip
    _state["calls"] = _state["linear_calls"] = _state["step_calls"] = 0
    return None if err < 1e-5 else f"self-check failed (relative error {err:.1e} against float64)"


def _step_pairs(gen) -> list:
    """gqa_step's output and the new token's key and value slots, each with its float64 value."""
    from types import SimpleNamespace

    from .common import Rope, math_attention

    B, h, g, hd, d, pos = 3, 6, 2, 10, 37, 1040 + 29  # two blocks of 1,040
    shapes = ((h * hd, d), (g * hd, d), (g * hd, d), (d, h * hd))
    proj = [SimpleNamespace(weight=torch.randn(n, m, generator=gen), bias=torch.randn(n, generator=gen))
            for n, m in shapes]  # fmt: skip
    rope = Rope(6, 10000.0)  # partial: 6 of 10 dims
    k = torch.randn(B, g, hd, pos + 4, generator=gen).transpose(2, 3)  # (B, g, slots, hd), tokens contiguous
    v = torch.randn(B, g, hd, pos + 4, generator=gen).transpose(2, 3)
    x = torch.randn(B, 1, d, generator=gen)
    k64, v64 = k.double(), v.double()
    got = gqa_step(x, [p.weight for p in proj], [p.bias for p in proj], rope, k, v, pos, h, hd**-0.5, block=1040)

    def project(t, p):  # (B, 1, n_in) -> (B, 1, n_out), in float64
        return t @ p.weight.double().t() + p.bias.double()

    x64 = x.double()
    q64 = rope(project(x64, proj[0]).view(B, 1, h, hd).transpose(1, 2), pos)  # (B, h, 1, hd)
    k64[:, :, pos] = rope(project(x64, proj[1]).view(B, 1, g, hd).transpose(1, 2), pos)[:, :, 0]
    v64[:, :, pos] = project(x64, proj[2]).view(B, g, hd)
    o = math_attention(q64, k64[:, :, : pos + 1], v64[:, :, : pos + 1], causal=False, scale=hd**-0.5)
    want = project(o.transpose(1, 2).reshape(B, 1, h * hd), proj[3])
    return [(got, want), (k[:, :, pos], k64[:, :, pos]), (v[:, :, pos], v64[:, :, pos])]
