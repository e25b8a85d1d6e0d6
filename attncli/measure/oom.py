"""Out-of-memory on one combination becomes a row with status `oom`; the rest of the work goes on."""

from __future__ import annotations

import gc

import torch

from ..rows import MEASURED_COLUMNS, QUALITY_COLUMNS, ROOFLINE_COLUMNS, analytic_row
from . import bench
from .device import device_name


def is_oom(error: BaseException) -> bool:
    """CUDA/MPS out-of-memory errors, and the CPU allocator's refusal."""
    if isinstance(error, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(error).lower()
    return isinstance(error, (RuntimeError, MemoryError)) and (
        isinstance(error, MemoryError) or "out of memory" in text or "can't allocate memory" in text
    )


def measure_or_oom(spec, preset, shape, settings, source=None) -> dict:
    """`bench.measure_row`, or its analytic columns with status `oom` when memory runs out."""
    try:
        # `source` only when given: fakes and wrappers of measure_row keep the four-argument call
        return bench.measure_row(spec, preset, shape, settings, **({"source": source} if source is not None else {}))
    except Exception as error:  # noqa: BLE001 - anything else is re-raised below
        if not is_oom(error):
            raise
    gc.collect()
    if settings.device.type == "cuda":
        torch.cuda.empty_cache()
    return oom_row(spec, preset, shape, settings, source)


def oom_row(spec, preset, shape, settings, source=None) -> dict:
    """The analytic columns of a row that did not (or would not) fit, with status `oom`."""
    row = analytic_row(spec, preset, shape, layers=1, dtype=settings.dtype, device=str(settings.device))
    if source is not None:
        row.update(source.columns(settings.seed))
    row.update(dict.fromkeys(MEASURED_COLUMNS + QUALITY_COLUMNS + ROOFLINE_COLUMNS))  # the measured columns exist, empty
    row.update(device_name=device_name(settings.device), torch_version=torch.__version__,
               threads=torch.get_num_threads(), seed=settings.seed, status="oom")  # fmt: skip
    return row
