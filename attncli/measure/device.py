"""Device names: validated without torch (bad input, exit 2), resolved with torch (exit 3 if absent)."""

from __future__ import annotations

import platform
import re

from ..errors import DeviceError, InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def check_device_name(name: str) -> str:
    """Syntax only: auto, cpu, cuda, cuda:N or mps. No torch import."""
    key = name.strip().lower()
    if key in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", key):
        return key
    raise InputError("--device", f"unknown device '{name}'", f"choices: {', '.join(DEVICE_CHOICES)}")


def resolve_device(name: str):
    """A torch.device that exists here. auto: cuda if available, else mps if available, else cpu."""
    import torch

    key = check_device_name(name)
    mps_ok = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if key == "auto":
        key = "cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu"
    if key.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("--device", f"{key} is not available on this machine (no CUDA device or no CUDA build of torch)",
                              "use --device cpu")  # fmt: skip
        index = int(key.split(":")[1]) if ":" in key else 0
        if index >= torch.cuda.device_count():
            raise DeviceError("--device", f"{key} does not exist ({torch.cuda.device_count()} CUDA devices)")
    if key == "mps" and not mps_ok:
        raise DeviceError("--device", "mps is not available on this machine", "use --device cpu")
    return torch.device(key)


def device_name(device) -> str:
    """The hardware's own name: the GPU's, or the CPU model from /proc/cpuinfo."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def synchronizer(device):
    """A function that waits for all queued work on the device (a no-op on the CPU)."""
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None
