"""Device peaks: the matmul rate (GFLOP/s) and the memory bandwidth (GB/s) this machine really
reaches, measured with the same timing function as every row, and cached per (device name,
dtype, torch version, threads) so `bench` and `compare` can put their rows against them.

Method (printed by `attncli peak`):
- matmul: `torch.mm` of two random n×n matrices in the dtype, 2·n³ FLOPs per call; n grows by
  doubling (CPU 256…4096, GPU 1024…8192) until one call takes over 50 ms on the CPU; the peak is
  the best median rate over the sizes tried. On CUDA float32 the figure follows torch's TF32
  setting (`torch.backends.cuda.matmul.allow_tf32`), as the measured rows do.
- bandwidth: `dst.copy_(src)` of a buffer well beyond the last-level cache, counting every byte
  read and every byte written (2 × the buffer per copy), the convention of STREAM's Copy kernel
  (McCalpin 1995); write-allocate traffic a CPU may add is not counted.

The cache file is JSON in `$XDG_CACHE_HOME/attncli/peaks.json` (default `~/.cache/attncli/`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CACHE_FILE = "peaks.json"
CACHE_FORMAT = 1  # bump when the method changes, so old figures are measured again
CPU_SIZES = (256, 512, 1024, 2048, 4096)
GPU_SIZES = (1024, 2048, 4096, 8192)
CPU_STOP_SECONDS = 0.05  # stop growing n once one matmul call takes longer than this (CPU/MPS)
CPU_COPY_BYTES = 256 * 2**20  # 8× a 32 MiB L3; large enough for any CPU cache we know
GPU_COPY_BYTES = 2**30  # 20× an H100's 50 MiB L2 (capped at a quarter of the free memory)


def cache_dir() -> Path:
    """XDG base directory spec: $XDG_CACHE_HOME if set to an absolute path, else ~/.cache. A HOME
    that is empty, relative or the filesystem root does not count (the cache would land in / or
    the current folder): the account's home from the password database is used, else the
    system's temporary folder."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if base and os.path.isabs(base):
        return Path(base) / "attncli"
    return _home() / ".cache" / "attncli"


def _home() -> Path:
    candidates = [os.environ.get("HOME", "")]
    try:
        import pwd

        candidates.append(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError, OSError):
        pass
    for home in candidates:
        if home and os.path.isabs(home) and Path(home).resolve() != Path("/"):
            return Path(home)
    import tempfile

    return Path(tempfile.gettempdir()) / f"attncli-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def peak_key(device_name: str, dtype: str, torch_version: str, threads: int) -> str:
    return f"{device_name} | {dtype} | torch {torch_version} | {threads} threads"


@dataclass(frozen=True)
class Peak:
    device_name: str
    dtype: str
    torch_version: str
    threads: int
    gflops: float  # best median matmul rate over the sizes tried, GFLOP/s (1e9 FLOP/s)
    gbps: float  # median copy bandwidth, GB/s (1e9 bytes/s), read + write bytes counted
    matmul_n: int  # the matrix size that reached `gflops`
    copy_bytes: int  # bytes of the buffer copied (each copy moves twice this)
    measured_at: str  # local time of the measurement, ISO 8601
    tf32: bool | None = None  # CUDA float32 only: whether TF32 tensor cores were allowed
    noisy: bool = False  # either timing's IQR exceeded 10% of its median: measured under load?

    @property
    def key(self) -> str:
        return peak_key(self.device_name, self.dtype, self.torch_version, self.threads)

    @property
    def ridge(self) -> float:
        """The roofline's ridge point (FLOP per byte): below it a kernel is memory-bound."""
        return self.gflops / self.gbps

    def method(self) -> str:
        tf32 = "" if self.tf32 is None else f", TF32 {'on' if self.tf32 else 'off'}"
        return (f"matmul: median of synchronised torch.mm on n×n {self.dtype} matrices (2n³ FLOPs), best n = "
                f"{self.matmul_n}{tf32}; bandwidth: median of dst.copy_(src) on {self.copy_bytes / 2**20:.0f} MiB, "
                f"read + write counted (2 × {self.copy_bytes / 2**20:.0f} MiB per copy, STREAM Copy convention)")  # fmt: skip


# ------------------------------------------------------------------------------------------------
# the cache (no torch)


def _read_cache(path: Path) -> dict:
    """The cache's entries, or {} when the file is missing, unreadable, corrupt or of another format."""
    from ..errors import read_text

    try:
        data = json.loads(read_text(path))  # a regular file of bounded size only (a FIFO would block)
    except (OSError, ValueError, RecursionError):  # InputError is a ValueError
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("peaks"), dict):
        return {}
    return data["peaks"]


def load_cached(key: str) -> Peak | None:
    """The cached peak for `key`, or None. An entry whose values are not what `peak` writes (a
    hand-edited or damaged file) is ignored with a one-line warning, never used in a row."""
    entry = _read_cache(cache_path()).get(key)
    if not isinstance(entry, dict):
        return None
    try:
        peak = Peak(**entry)
    except TypeError:  # fields renamed since it was written
        return None
    problem = _invalid(peak)
    if problem:
        import sys

        sys.stderr.write(f"attncli: warning: ignoring the cached peak in {cache_path()} ({problem}); "
                         "`attncli peak --refresh` measures it again\n")  # fmt: skip
        return None
    return peak


def _invalid(peak: Peak) -> str | None:
    """What is wrong with a cached entry's values, or None."""
    import math

    for name in ("gflops", "gbps"):
        v = getattr(peak, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            return f"{name} {v!r} is not a positive number"
    for name in ("threads", "matmul_n", "copy_bytes"):
        v = getattr(peak, name)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            return f"{name} {v!r} is not a positive integer"
    for name in ("device_name", "dtype", "torch_version", "measured_at"):
        if not isinstance(getattr(peak, name), str):
            return f"{name} {getattr(peak, name)!r} is not text"
    if not isinstance(peak.noisy, bool) or not (peak.tf32 is None or isinstance(peak.tf32, bool)):
        return "noisy/tf32 are not true or false"
    return None


def save(peak: Peak) -> str | None:
    """Store `peak` in the cache (replacing any entry with its key). Returns None when stored, or
    why it could not be (the measurement is still good; the caller says so)."""
    from ..errors import AttncliError
    from ..output import write

    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        peaks = _read_cache(path)
        peaks[peak.key] = asdict(peak)
        write(str(path), json.dumps({"format": CACHE_FORMAT, "peaks": peaks}, indent=2) + "\n", "cache")
    except OSError as e:
        return f"could not write {path}: {e.strerror or e}"
    except AttncliError as e:
        return f"could not write {path}: {e.what}"
    return None


# ------------------------------------------------------------------------------------------------
# measuring (torch)


def current_key(device, dtype: str) -> str:
    """The cache key for `device` and `dtype` with the current torch and thread count."""
    import torch

    from .device import device_name

    return peak_key(device_name(device), dtype, torch.__version__, torch.get_num_threads())


def measure_matmul(device, dtype: str, sizes=None, min_run_time: float = 0.25) -> tuple[float, int, bool]:
    """Best median GFLOP/s of torch.mm over growing n×n sizes, the n that reached it, and whether
    that timing was noisy."""
    import torch

    from .timing import time_fn

    gpu = device.type == "cuda"
    sizes = sizes or (GPU_SIZES if gpu else CPU_SIZES)
    best, best_n, noisy = 0.0, sizes[0], False
    dt = getattr(torch, dtype)
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dt)  # random values: a GPU's clock depends on the bits
        b = torch.randn(n, n, device=device, dtype=dt)
        c = torch.empty_like(a)
        t = time_fn(lambda: torch.mm(a, b, out=c), device, min_run_time=min_run_time, warmup_time=0.05)
        rate = 2 * n**3 / (t.median_ms * 1e-3) / 1e9
        if rate > best:
            best, best_n, noisy = rate, n, t.noisy
        del a, b, c
        if not gpu and t.median_ms * 1e-3 > CPU_STOP_SECONDS:
            break
    return best, best_n, noisy


def copy_bytes_for(device) -> int:
    """The buffer size for the bandwidth copy: far beyond the caches, within a quarter of free memory."""
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return max(64 * 2**20, min(GPU_COPY_BYTES, free // 4))
    return CPU_COPY_BYTES


def measure_bandwidth(device, dtype: str, nbytes: int | None = None,
                      min_run_time: float = 0.3) -> tuple[float, int, bool]:  # fmt: skip
    """Median GB/s of dst.copy_(src), counting read + write (2 × nbytes per copy); the buffer's
    bytes; whether the timing was noisy."""
    import torch

    from .timing import time_fn

    nbytes = nbytes or copy_bytes_for(device)
    dt = getattr(torch, dtype)
    n = nbytes // torch.empty((), dtype=dt).element_size()
    src = torch.empty(n, dtype=dt, device=device).fill_(1.0)  # touch every page before timing
    dst = torch.empty_like(src).fill_(0.0)
    t = time_fn(lambda: dst.copy_(src), device, min_run_time=min_run_time, warmup_time=0.05)
    moved = 2 * src.nbytes
    del src, dst
    return moved / (t.median_ms * 1e-3) / 1e9, n * dt.itemsize, t.noisy


def measure_peak(device, dtype: str) -> Peak:
    import torch

    from .device import device_name

    gflops, n, noisy_mm = measure_matmul(device, dtype)
    gbps, nbytes, noisy_bw = measure_bandwidth(device, dtype)
    tf32 = bool(torch.backends.cuda.matmul.allow_tf32) if device.type == "cuda" and dtype == "float32" else None
    return Peak(device_name=device_name(device), dtype=dtype, torch_version=torch.__version__,
                threads=torch.get_num_threads(), gflops=gflops, gbps=gbps, matmul_n=n, copy_bytes=nbytes,
                measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"), tf32=tf32, noisy=noisy_mm or noisy_bw)  # fmt: skip


def get_peak(device, dtype: str, refresh: bool = False) -> tuple[Peak, str]:
    """The peak for (device, dtype, torch, threads): cached unless `refresh` or absent.
    Returns it and where it came from: 'cache', 'measured', or 'measured (not cached: why)'."""
    if not refresh:
        cached = load_cached(current_key(device, dtype))
        if cached is not None:
            return cached, "cache"
    peak = measure_peak(device, dtype)
    problem = save(peak)
    return peak, "measured" if problem is None else f"measured (not cached: {problem})"
