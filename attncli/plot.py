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

    import matplotlib.pyplot as plt

    fig, n_panels = figure(rows, group_by)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format=Path(path).suffix.lower().lstrip("."))
    plt.close(fig)
    return buf.getvalue(), (round(PANEL_WIDTH_IN * n_panels * DPI), round(PANEL_HEIGHT_IN * DPI))


# Lines that coincide (MLA's naive and absorbed paths hold the same cache) must both stay visible:
# each line gets its own dash pattern and hollow marker, and later lines are drawn thinner on top.
STYLES = (("-", "o", 3.0, 8), ("--", "s", 2.2, 6), (":", "^", 1.8, 7), ("-.", "D", 1.5, 5), ((0, (5, 1)), "v", 1.2, 6),
          ((0, (1, 1)), "x", 1.0, 6))  # fmt: skip
AXIS_FORMAT = {"kv_cache_bytes": "iec", "flops": "si"}


def figure(rows: list[dict], group_by: list[str] | None = None):
    """The matplotlib figure (and its panel count): one log-log panel per quantity the rows hold, a
    line per group (the default line key, plus the `group_by` columns), x = seq_len; the title says
    what every row shares (preset, mode, dtype, layers, batch, device)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from .report import _iec
    from .views import title_piece

    panels = [(c, name) for c, name in PANELS if any(_positive(r.get(c)) for r in rows)]
    if not panels:
        raise InputError("--plot", "the rows hold none of kv_cache_bytes, flops, latency_ms_median")
    keys = list(dict.fromkeys([*_default_groups(rows), *(group_by or [])]))
    fig, axes = plt.subplots(1, len(panels), figsize=(PANEL_WIDTH_IN * len(panels), PANEL_HEIGHT_IN), dpi=DPI,
                             layout="constrained", squeeze=False)  # fmt: skip
    fig.suptitle(plot_title(rows, keys, title_piece), fontsize="medium")
    for ax, (column, name) in zip(axes[0], panels):
        lines = defaultdict(list)
        for r in rows:
            if _positive(r.get(column)) and _positive(r.get("seq_len")):
                lines[" ".join(str(r.get(k)) for k in keys)].append((r["seq_len"], r[column]))
        for i, (label, points) in enumerate(lines.items()):
            xs, ys = zip(*sorted(points))
            dash, marker, width, size = STYLES[i % len(STYLES)]
            ax.plot(xs, ys, linestyle=dash, marker=marker, linewidth=width, markersize=size, markerfacecolor="none",
                    label=label, zorder=2 + i)  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        kind = AXIS_FORMAT.get(column)
        if kind == "iec":  # bytes: ticks at powers of two, labelled KiB/MiB/GiB
            ax.set_yscale("log", base=2)
            ax.yaxis.set_major_locator(LogLocator(base=2, numticks=8))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _iec(int(v)) if v >= 1 else f"{v:g} B"))
        else:
            ax.set_yscale("log")
            if kind == "si":
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _si_tick(v)))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("sequence length (tokens)")
        ax.set_ylabel(name)
        ax.set_title(name.split(" (")[0])
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
    return fig, len(panels)


def _si_tick(v: float) -> str:
    """A tick at a power of ten: 1k, 10M, 100G (FLOPs count in powers of 1000)."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:g}{unit}"
    return f"{v:g}"


def plot_title(rows: list[dict], keys: list[str], piece) -> str:
    """What every row holds alike (the constants a table puts in its title); the line key names the rest."""
    parts = []
    for c in ("preset", "mode", "dtype", "layers", "batch", "device"):
        values = {r.get(c) for r in rows}
        if len(values) == 1 and rows[0].get(c) is not None:
            text = piece(c, rows[0][c])
            if text:
                parts.append(text)
        elif c == "mode" and len(values) > 1:
            parts.append(" and ".join(str(v) for v in dict.fromkeys(r.get(c) for r in rows)))
    return " · ".join(parts) + (f" — lines: {', '.join(keys)}" if keys else "")


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _default_groups(rows: list[dict]) -> list[str]:
    """The label, plus mode, batch, dtype, preset, layers or tp when the rows hold more than one of them."""
    keys = ["label"]
    for k in ("mode", "batch", "dtype", "preset", "layers", "tp"):  # tp: a sweep over --tp 1,2 draws one line per degree
        if len({r.get(k) for r in rows}) > 1:
            keys.append(k)
    return keys
