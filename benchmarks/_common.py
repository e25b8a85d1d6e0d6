"""Shared by the benchmark scripts: run attncli in this process and read its rows back; run the
sides of a comparison in interleaved rounds and report the median with its p25–p75."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout: measure this checkout's attncli
    sys.path.insert(0, str(ROOT))


def private_cache() -> str:
    """Point the peak cache at a fresh temporary folder (the user's cache is left alone)."""
    folder = tempfile.mkdtemp(prefix="attncli-bench-cache-")
    os.environ["XDG_CACHE_HOME"] = folder
    return folder


def attncli(*args: str, show: bool = False) -> list[dict]:
    """Run `attncli ARGS --json FILE` in this process; return its rows (tables hidden unless `show`)."""
    from attncli.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.json")
        sink = contextlib.nullcontext() if show else contextlib.redirect_stdout(io.StringIO())
        with sink:
            code = main([*args, "--json", path])
        if code != 0:
            raise SystemExit(f"attncli {' '.join(args)} exited {code}")
        with open(path, encoding="utf-8") as f:
            return json.load(f)


# ------------------------------------------------------------------------------------------------
# Interleaved rounds and their spread (DESIGN.md, "Latency": compare in rounds, A B A B …, take
# each ratio per round, report the median and its p25–p75). Shared by every benchmark script.


@dataclass(frozen=True)
class Spread:
    """The median and the interquartile range (p25–p75, linear interpolation) of n values."""

    median: float
    p25: float
    p75: float
    n: int
    low: float  # the smallest value
    high: float  # the largest

    def show(self, fmt: str = ".3f", unit: str = "") -> str:
        """`0.812 (p25–p75 0.801–0.825, n=10)`."""
        return (f"{self.median:{fmt}}{unit} (p25–p75 {self.p25:{fmt}}–{self.p75:{fmt}}{unit}, n={self.n})")

    @property
    def iqr_fraction(self) -> float:
        """(p75 − p25) / median: above 0.10 the figure is quoted with a caveat (timing.NOISY_IQR_FRACTION)."""
        return (self.p75 - self.p25) / self.median if self.median else float("inf")


def spread(values) -> Spread:
    from attncli.measure.timing import percentile

    s = sorted(values)
    if not s:
        raise ValueError("no values")
    return Spread(percentile(s, 50), percentile(s, 25), percentile(s, 75), len(s), s[0], s[-1])


def interleaved(sides: dict, rounds: int, on_round=None) -> dict[str, list]:
    """Call each of `sides` (name → function returning a number or a row) once per round, in
    alternating order (A B C, then C B A, …: ABBA over the rounds, so that a machine slowing down
    or speeding up within a round favours no side), and return each side's values per round.
    `on_round(i, values)` is called after each round with that round's {name: value}."""
    names = list(sides)
    out: dict[str, list] = {n: [] for n in names}
    for i in range(rounds):
        order = names if i % 2 == 0 else names[::-1]
        got = {n: sides[n]() for n in order}
        for n in names:
            out[n].append(got[n])
        if on_round is not None:
            on_round(i, {n: got[n] for n in names})
    return out


def per_round(a: list[float], b: list[float]) -> list[float]:
    """The ratios a[i] / b[i], round by round (never a ratio of medians)."""
    return [x / y for x, y in zip(a, b)]


def print_header(what: str) -> None:
    """The machine line, then `torch X · N threads · what`."""
    import torch

    print(machine_line())
    print(f"torch {torch.__version__} · {torch.get_num_threads()} threads · {what}")


def print_sides(got: dict[str, list[float]], nbytes: int, ms: str = ".3f") -> None:
    """Each side's seconds per round as ms and as GB/s of `nbytes`, median with p25–p75."""
    width = max(map(len, got)) + 1
    for name, ts in got.items():
        print(f"  {name:{width}s}{spread([t * 1e3 for t in ts]).show(ms, ' ms')}  "
              f"{spread([nbytes / t / 1e9 for t in ts]).show('.1f', ' GB/s')}")  # fmt: skip


def print_ratio(what: str, a: list[float], b: list[float]) -> None:
    """`what`: the per-round ratios a / b, median with p25–p75."""
    print(f"  {what}: {spread(per_round(a, b)).show()}")


def machine_line() -> str:
    """Which machine and how busy it was: the load average against the cores (Unix)."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return f"{cores} cores"
    busy = " — BUSY: other work shares the cores, figures are noisy" if load > 0.5 * cores else ""
    return f"{cores} cores, 1-min load average {load:.1f}{busy}"


def decode_kernels_missing(threads: int | None) -> int | None:
    """Set torch's thread count (when given) and check that attncli's C decode kernels
    (variants/cdecode.py) run here: None when they do, else 3 after saying why."""
    import torch

    from attncli.variants import cdecode

    if threads:
        torch.set_num_threads(threads)
    why = cdecode.unavailable()
    if why is None:
        return None
    print(f"the decode kernels are not available here ({why}): nothing to measure")
    return 3


def timed(fn, before=None):
    """A side for `interleaved`: a call of fn that returns its seconds (`before` runs untimed first)."""
    import time

    def go():
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return go
