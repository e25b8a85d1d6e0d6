"""Memory pre-flight: refuse a measured row that cannot fit before building any tensor.

The float64 reference always runs on the CPU, so a row needs room for the run-dtype copy on its
device and for the float64 copy on the host (both on the host when the device is the CPU).
"""

from __future__ import annotations

import os

from . import registry
from .cost import run_memory_bytes
from .errors import ResourceError
from .spec import DTYPE_BYTES, AttentionSpec, Shape


def row_bytes(spec: AttentionSpec, shape: Shape, dtype: str) -> tuple[int, int]:
    """(bytes on the run device, bytes of the float64 reference on the host)."""
    family = registry.get(spec.family)
    per_token, params = family.kv_elements_per_token(spec), family.params(spec)
    return (run_memory_bytes(spec, shape, per_token, params, DTYPE_BYTES[dtype]),
            run_memory_bytes(spec, shape, per_token, params, DTYPE_BYTES["float64"]))  # fmt: skip


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
    hint = "use a shorter --seq-len or a smaller --batch, or --force to try anyway"
    if host_free is None:
        host_free = host_available_bytes()
    if host_free is not None and host_need > host_free:
        raise ResourceError(what, f"needs about {_gib(host_need)} of host memory (weights, activations, scores, "
                            f"KV cache; float64 reference included) but {_gib(host_free)} is available", hint)  # fmt: skip
    if device_type != "cpu" and device_free is not None and on_device > device_free:
        raise ResourceError(what, f"needs about {_gib(on_device)} on {device_type} but {_gib(device_free)} is free", hint)
