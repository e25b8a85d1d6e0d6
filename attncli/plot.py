"""Log-log plots of rows against sequence length (matplotlib, an optional extra)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .errors import InputError, ResourceError

SUFFIXES = (".png", ".svg", ".pdf")
PANEL_WIDTH_IN, PANEL_HEIGHT_IN, DPI = 5.0, 4.0, 100  # one 500 × 400 px panel per quantity
PANELS = (  # column, y-axis label with units
    ("kv_cache_bytes", "KV cache (bytes)"),
    ("flops", "FLOPs (matmul)"),
    ("latency_ms_median", "latency, median (ms)"),
)
INSTALL_HINT = "install the plot extra: pip install 'attncli[plot]' (in a checkout: .venv/bin/pip install -e '.[plot]')"


def check_plot_path(path: str) -> None:
    """Fail before any work: a usable suffix, a writable target (output.check_path), matplotlib importable."""
    from .output import check_path

    target = Path(path)
    if target.suffix.lower() not in SUFFIXES:
        raise InputError("--plot", f"'{path}' has no image suffix", f"use one of {', '.join(SUFFIXES)}")
    check_path("--plot", path)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ResourceError("--plot", "matplotlib is not installed", INSTALL_HINT) from None


def plot_rows(rows: list[dict], path: str, group_by: list[str] | None = None) -> tuple[int, int]:
    """One log-log panel per quantity the rows hold, a line per group, x = seq_len, written to
    `path` by the one writer (output.write). Returns the image size in pixels (raster formats)."""
    from .output import write

    data, size = render(rows, path, group_by)
    write(path, data, "--plot")
    return size


def render(rows: list[dict], path: str, group_by: list[str] | None = None) -> tuple[bytes, tuple[int, int]]:
    """The image's bytes (format from `path`'s suffix) and its size in pixels."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(c, name) for c, name in PANELS if any(_positive(r.get(c)) for r in rows)]
    if not panels:
        raise InputError("--plot", "the rows hold none of kv_cache_bytes, flops, latency_ms_median")
    keys = group_by or _default_groups(rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(PANEL_WIDTH_IN * len(panels), PANEL_HEIGHT_IN), dpi=DPI,
                             layout="constrained", squeeze=False)  # fmt: skip
    for ax, (column, name) in zip(axes[0], panels):
        lines = defaultdict(list)
        for r in rows:
            if _positive(r.get(column)) and _positive(r.get("seq_len")):
                lines[" ".join(str(r.get(k)) for k in keys)].append((r["seq_len"], r[column]))
        for label, points in lines.items():
            xs, ys = zip(*sorted(points))
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (tokens)")
        ax.set_ylabel(name)
        ax.set_title(name.split(" (")[0])
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format=Path(path).suffix.lower().lstrip("."))
    plt.close(fig)
    return buf.getvalue(), (round(PANEL_WIDTH_IN * len(panels) * DPI), round(PANEL_HEIGHT_IN * DPI))


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _default_groups(rows: list[dict]) -> list[str]:
    """The label, plus mode and batch when the rows hold more than one of them."""
    keys = ["label"]
    for k in ("mode", "batch", "dtype", "preset"):
        if len({r.get(k) for r in rows}) > 1:
            keys.append(k)
    return keys
