"""Rows → Rich table, CSV or JSON. The same list of dicts feeds every view, so they never disagree."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from . import output, views
from .errors import InputError, closest
from .rows import COLUMNS


def _sig3(x: float) -> str:
    """Three significant digits, trailing zeros kept (4.30, 42.9, 512); thousands separated above."""
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def _si(x) -> str:
    """An SI prefix and three significant digits: 3.22G (FLOPs and counts are powers of 1000)."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{_sig3(x / scale)}{unit}"
    return _sig3(x) if isinstance(x, float) else str(x)


def _iec(x) -> str:
    """Bytes with a binary prefix: 512 KiB, 2.00 MiB (exact powers print without decimals)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(x) >= scale:
            v = x / scale
            return f"{v:.0f} {unit}" if v == int(v) else f"{_sig3(v)} {unit}"
    return f"{x} B"


_fixed3 = _sig3


FORMAT = {
    **dict.fromkeys(("flops", "proj_flops", "attn_flops", "elementwise_flops", "ffn_flops", "params", "params_before"), _si),
    "memory_proj_flops": _si,
    **dict.fromkeys(("kv_bytes_per_token", "kv_cache_bytes", "kv_cache_bytes_measured", "kv_scale_bytes",
                     "linear_state_bytes", "weight_bytes", "budget_bytes", "kv_bytes_per_token_before",
                     "ssm_state_bytes"), _iec),
    "model_params": _si,
    **dict.fromkeys(("max_seq_len", "max_batch", "window", "cache_tokens"), lambda x: f"{x:,}"),
    **dict.fromkeys(("conv_err_max_abs", "conv_err_rel_l2"), lambda x: f"{x:.2e}"),
    "conv_err_cos": lambda x: f"{x:.6f}",
    **dict.fromkeys(("latency_ms_median", "latency_ms_p25", "latency_ms_p75", "gflops_per_s"), _fixed3),
    **dict.fromkeys(("err_max_abs", "err_mean_abs", "err_rel_l2", "naive_err_max_abs", "naive_err_rel_l2"),
                    lambda x: f"{x:.1e}"),  # fmt: skip
    **dict.fromkeys(("speedup_vs_base", "kv_ratio_vs_base", "flops_ratio_vs_base"), lambda x: f"{_sig3(x)}×"),
    "attn_share": lambda x: f"{100 * x:.0f}%",
    "seq_len": lambda x: f"{x:,}",
}

HEADER = {
    "label": "variant", "seq_len": "seq len", "cache_tokens": "cached tokens",
    "flops": "FLOPs", "proj_flops": "proj FLOPs", "attn_flops": "attn FLOPs",
    "elementwise_flops": "elementwise FLOPs", "ffn_flops": "FFN FLOPs", "attn_share": "attn share of block",
    "kv_bytes_per_token": "KV / token", "kv_cache_bytes": "KV cache", "kv_cache_bytes_measured": "KV measured",
    "latency_ms_median": "latency ms", "latency_ms_p25": "p25 ms", "latency_ms_p75": "p75 ms",
    "gflops_per_s": "GFLOP/s", "err_rel_l2": "rel L2 err", "naive_err_rel_l2": "math rel L2",
    "err_max_abs": "max abs err", "speedup_vs_base": "speed-up", "kv_ratio_vs_base": "KV ratio",
    "flops_ratio_vs_base": "FLOP ratio", "n_layers": "layers", "gqa_n_kv_heads": "gqa KV heads",
    "stack": "stack", "layer_of": "layer of", "memory_proj_flops": "memory K/V FLOPs (once)",
    "latency_basis": "latency basis",
    "layer_kind": "layer kinds", "tp": "TP", "kv_heads_per_gpu": "KV heads / GPU", "kv_scale_bytes": "KV scales",
    "linear_state_bytes": "linear state", "ssm_state_bytes": "SSM state", "max_position": "max position",
    "beyond_max_position": "past max pos", "ffn_kind": "FFN", "model_params": "params", "weight_bytes": "weights / GPU",
    "max_seq_len": "max seq len", "max_batch": "max batch", "kv_heads_from": "KV heads from",
    "n_kv_heads": "KV heads", "kv_lora_rank": "latent r", "qk_rope_head_dim": "RoPE dims",
    "kv_bytes_per_token_before": "KV / token before", "params_before": "params before",
    "conv_err_rel_l2": "rel L2 vs orig", "conv_err_max_abs": "max abs vs orig", "conv_err_cos": "cosine vs orig",
}  # fmt: skip

# Measurement columns (issue 6): the FLOP cross-check, the roofline, dtype grading, `peak`.
FORMAT.update({
    **dict.fromkeys(("flops_counted", "flops_math_path", "flops_counted_layer", "flops_math_path_layer",
                     "flops_counted_model", "flops_math_path_model"), _si),
    **dict.fromkeys(("bytes_moved", "bytes_weights", "bytes_kv_read", "bytes_kv_write", "bytes_activations",
                     "copy_bytes"), _iec),
    **dict.fromkeys(("gbytes_per_s", "peak_gflops", "peak_gbps", "roofline_ms", "arith_intensity",
                     "ridge_flops_per_byte"), _fixed3),
    **dict.fromkeys(("frac_of_peak", "frac_of_bw", "frac_of_roofline"), lambda x: f"{100 * x:.0f}%"),
})  # fmt: skip
HEADER.update({
    "naive_err_max_abs": "math max abs", "backend_used": "SDPA", "flops_counted": "FLOPs counted",
    "flops_math_path": "math-path FLOPs", "flops_match": "counted = analytic",
    "flops_counted_model": "FLOPs counted", "flops_math_path_model": "math-path FLOPs",
    "flops_counted_layer": "counted / layer", "flops_math_path_layer": "math-path / layer", "bytes_moved": "bytes moved",
    "arith_intensity": "FLOP/B", "gbytes_per_s": "GB/s", "peak_gflops": "peak GFLOP/s", "peak_gbps": "peak GB/s",
    "frac_of_peak": "% of peak", "frac_of_bw": "% of BW", "roofline_ms": "roofline ms",
    "frac_of_roofline": "% of roof", "ridge_flops_per_byte": "ridge FLOP/B", "matmul_n": "matmul n",
    "copy_bytes": "copy buffer", "measured_at": "measured", "peak_source": "source", "device_name": "device",
    "torch_version": "torch", "latency_spread": "p25–p75 ms", "compile_s": "compile s",
})  # fmt: skip
FORMAT["compile_s"] = lambda x: f"{x:.1f}"  # seconds compiling before the timing (--backend flex, --compile)

# Tensor-parallel rows (measure/tp.py).
FORMAT.update({**dict.fromkeys(("kv_cache_bytes_per_rank", "allreduce_bytes"), _iec), "allreduce_ms": _fixed3,
               "tp_err_rel_l2": lambda x: f"{x:.1e}"})  # fmt: skip
HEADER.update({"kv_cache_bytes_per_rank": "KV / rank", "allreduce_ms": "all-reduce ms",
               "allreduce_bytes": "all-reduce bytes", "tp_err_rel_l2": "rel L2 vs TP 1"})  # fmt: skip

# Booleans shown as words; a column whose every value is its `HIDDEN_WHEN` value (or None) is left out.
BOOL_WORDS = {"noisy": ("noisy", ""), "healthy": ("yes", "NO"), "flops_match": ("yes", "NO"), "compiled": ("yes", ""),
              "beyond_max_position": ("BEYOND", "")}  # fmt: skip
HIDDEN_WHEN = {"noisy": False, "status": "ok", "compiled": False, "beyond_max_position": False}

# Table-only columns derived from row columns (files carry the row columns themselves).
DERIVED = {
    "latency_spread": lambda r: None if r.get("latency_ms_p25") is None or r.get("latency_ms_p75") is None
    else f"{_sig3(r['latency_ms_p25'])}–{_sig3(r['latency_ms_p75'])}",
}
# A column shown only when another one is (the math path's max error is what `healthy` grades against).
SHOWN_WITH = {"naive_err_max_abs": "healthy"}

# Each command's view (columns in priority order), title and caption notes: views.py.
VIEWS = {name: list(v.columns) for name, v in views.VIEWS.items()}

RIGHT = {"seq_len", "batch", "layers", "d_model", "n_heads", "head_dim", "n_layers", "d_ff", "gqa_n_kv_heads",
         "cache_tokens", "threads", "matmul_n", "tp", "kv_heads_per_gpu", "n_kv_heads", "kv_lora_rank",
         "qk_rope_head_dim"}  # fmt: skip


def cell(column: str, value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) and column in BOOL_WORDS:
        return BOOL_WORDS[column][0 if value else 1]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else str(value)
    if isinstance(value, bool) and column == "fits":
        return "yes" if value else "no"
    fmt = FORMAT.get(column)
    return fmt(value) if fmt and isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def console(stderr: bool = False, width: int | None = None):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if width is None:
        width = terminal_width(stream)
    # markup=False: labels, paths and titles are user text, never Rich markup ('[/]', '[red]' print as typed).
    return Console(file=stream, width=width, highlight=False, soft_wrap=False, markup=False)


def terminal_width(stream=None) -> int:
    """The width tables fit: COLUMNS when set, else the terminal's; a pipe or file without COLUMNS
    gets 320 (no terminal to fit)."""
    stream = sys.stdout if stream is None else stream
    env = os.environ.get("COLUMNS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    if stream.isatty():
        import shutil

        return shutil.get_terminal_size().columns
    return 320


# ------------------------------------------------------------------------------------------------
# choosing the columns that fit


@dataclass(frozen=True)
class Display:
    """How the table shows the rows: the view's columns that fit (default), the columns named by
    --columns, or every column (--wide / --columns all); --markdown PATH writes the same view."""

    columns: tuple[str, ...] | None = None
    wide: bool = False
    markdown: str | None = None


DISPLAY: ContextVar[Display] = ContextVar("attncli_display", default=Display())


def column_names() -> list[str]:
    """Every name --columns accepts: the schema's columns and the table's derived ones."""
    return [*COLUMNS, *(c for c in DERIVED if c not in COLUMNS)]


def parse_columns(text: str | None, wide: bool = False) -> Display:
    """`--columns a,b,...` (schema names; `all` = every column) and `--wide`."""
    if text is None:
        return Display(wide=wide)
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise InputError("--columns", "names no column", "e.g. --columns label,flops, or --columns all")
    if names == ["all"]:
        return Display(wide=True)
    valid = column_names()
    for name in names:
        if name not in valid:
            best = closest(name, valid)
            hint = f"did you mean '{best}'?" if best else "docs/columns.md lists them"
            raise InputError("--columns", f"unknown column '{name}'", f"{hint} (--columns all shows every one)")
    return Display(columns=tuple(dict.fromkeys(names)), wide=wide)


@dataclass
class Layout:
    columns: list[str]  # shown, in order
    headers: list[str]
    cells: list[list[str]]  # one list per row
    widths: list[int]  # each column's width: its widest cell, and at least its header's longest word
    constants: list[str]  # title words for the columns every row holds alike
    dropped: list[str]  # view columns left out to fit the width

    @property
    def total(self) -> int:
        return _table_width(self.widths)


def _table_width(widths: list[int]) -> int:
    return sum(widths) + 3 * len(widths) + 1  # one space either side of each cell, a rule between and around


def _value(r: dict, c: str):
    return DERIVED[c](r) if c in DERIVED else r.get(c)


def layout(rows: list[dict], view: str, width: int | None = None, display: Display | None = None) -> Layout:
    """The columns of `view` that fit `width` (None: no limit), in priority order. Columns every
    row holds alike (views.TITLE_COLUMNS) go into the title; columns no row fills are left out;
    the lowest-priority columns are dropped until the rest fit whole."""
    display = DISPLAY.get() if display is None else display
    order = list(views.VIEWS[view].columns)

    def filled(c):
        return any(_value(r, c) is not None for r in rows)

    def informative(c):  # a flag column whose every value is its quiet value says nothing
        return any(_value(r, c) is not None and _value(r, c) != HIDDEN_WHEN.get(c) for r in rows)

    constants, const_cols = [], set()
    for c in views.TITLE_COLUMNS:
        values = {repr(r.get(c)) for r in rows}
        if rows and len(values) == 1 and rows[0].get(c) is not None:
            const_cols.add(c)
            piece = views.title_piece(c, rows[0][c])
            if piece:
                constants.append(piece)
    if display.columns:
        columns = list(display.columns)
        const_cols -= set(columns)
        constants = [views.title_piece(c, rows[0][c]) for c in views.TITLE_COLUMNS if c in const_cols]
        constants = [p for p in constants if p]
        width = None
    else:
        if display.wide:
            present = ordered_columns(rows)
            order += [c for c in present if c not in order and filled(c)]
            width = None
        # A title column that varies but is not in the view is still said: as a column, after the label.
        varying = [c for c in views.TITLE_COLUMNS if c not in order and c not in const_cols and filled(c)]
        order[1:1] = varying
        keep = filled if display.wide else informative
        shown = {c for c in order if keep(c) and c not in const_cols}
        columns = [c for c in order if c in shown and (display.wide or SHOWN_WITH.get(c, c) in shown)]
    cells = [[cell(c, _value(r, c)) for c in columns] for r in rows]
    headers = [HEADER.get(c, c) for c in columns]
    from rich.cells import cell_len  # terminal cells, as Rich counts them (a wide character is two)

    widths = [max([cell_len(line[i]) for line in cells] + [max(cell_len(w) for w in h.split())])
              for i, h in enumerate(headers)]  # fmt: skip
    dropped: list[str] = []
    if width is not None:
        while len(columns) > 1 and _table_width(widths) > width:
            dropped.insert(0, columns.pop())
            headers.pop()
            widths.pop()
            for line in cells:
                line.pop()
    # Room to spare widens a column so its header fits on one line, in priority order (a column
    # the room cannot bring to one line keeps its width: half a header's growth buys nothing).
    room = None if width is None else width - _table_width(widths)
    for i, h in enumerate(headers):
        grow = max(widths[i], cell_len(h)) - widths[i]
        if room is None or grow <= room:
            widths[i] += grow
            room = None if room is None else room - grow
    return Layout(columns, headers, cells, widths, constants, dropped)


def _wrap_header(text: str, width: int) -> str:
    """The header broken at spaces into lines of at most `width` (every word fits: width ≥ its longest)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def _numeric(c: str) -> bool:
    return c in RIGHT or c in FORMAT or c in DERIVED


def title_for(rows: list[dict], view: str, constants: list[str] | None = None) -> str:
    """The view's heading, the values every row holds alike, and the view's own title words."""
    if constants is None:
        constants = layout(rows, view, None).constants
    extra = views.TITLE_EXTRAS.get(view)
    return " · ".join([views.VIEWS[view].heading, *constants, *(extra(rows) if extra else [])])


def caption_for(rows: list[dict], view: str = "bench") -> str:
    """The view's caption notes, one per line, built from the rows they describe (views.note)."""
    return "\n".join(views.notes_for(rows, view))


def dropped_note(dropped: list[str], width: int) -> str:
    return (f"not shown at {width} columns: {', '.join(dropped)} "
            "(--wide shows every column; --columns a,b,... picks them)")  # fmt: skip


def table(rows: list[dict], view: str, title: str | None = None, caption: str | None = None, width: int | None = None,
          display: Display | None = None):  # fmt: skip
    """A Rich table of the view's columns that fit `width` (default: the terminal's). Every cell is
    whole on one line: columns are as wide as their widest cell (headers wrap at spaces), and the
    lowest-priority columns are left out, named in the caption, until the rest fit. title/caption
    None: built from the rows (title_for, caption_for)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    width = terminal_width() if width is None else width
    lay = layout(rows, view, width, display)
    title = title_for(rows, view, lay.constants) if title is None else title
    caption = caption_for(rows, view) if caption is None else caption
    if lay.dropped:
        caption = "\n".join(filter(None, [caption, dropped_note(lay.dropped, width)]))
    t = Table()
    side = ["right" if _numeric(c) else "left" for c in lay.columns]
    for h, w, s in zip(lay.headers, lay.widths, side):
        t.add_column(Text(_wrap_header(h, w), justify=s), justify=s, width=w, no_wrap=True)  # w fits every cell
    for line in lay.cells:  # Text, not markup: a label holding [brackets] prints as it is
        t.add_row(*(Text(x, justify=s) for x, s in zip(line, side)))
    # Title and caption wrap at the terminal's width, not the table's (a narrow table would fold them).
    shown = Group(*([Text(title)] if title else []), t, *([Text(caption)] if caption else []))
    shown.attncli_width = lay.total  # the width the table needs, for printing it whole (print_table)
    return shown


def print_table(t, stderr: bool = False) -> None:
    """Print a table whole: a console at least as wide as the table, so Rich never squeezes it."""
    out = console(stderr=stderr)
    need = getattr(t, "attncli_width", 0)
    if need > out.width:
        out = console(stderr=stderr, width=need)
    out.print(t)


def to_markdown(rows: list[dict], view: str, display: Display | None = None, notes=(), title: str | None = None) -> str:
    """The view as a GitHub-flavoured markdown table: its title in bold, the columns the table
    shows (none dropped for width), its caption below."""
    lay = layout(rows, view, None, display)

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|")

    title = title_for(rows, view, lay.constants) if title is None else title
    lines = [f"**{esc(title)}**", ""]
    lines.append("| " + " | ".join(esc(h) for h in lay.headers) + " |")
    lines.append("|" + "|".join(" ---: " if _numeric(c) else " :--- " for c in lay.columns) + "|")
    lines += ["| " + " | ".join(esc(x) for x in line) + " |" for line in lay.cells]
    for line in [*caption_for(rows, view).splitlines(), *notes]:  # each caption note its own paragraph
        lines += ["", esc(line)]
    return "\n".join(lines) + "\n"


def ordered_columns(rows: list[dict]) -> list[str]:
    """The schema's columns that any row has, in schema order, then any others in first-seen order."""
    present = {k for r in rows for k in r}
    extra = [k for r in rows for k in r if k not in COLUMNS]
    return [c for c in COLUMNS if c in present] + list(dict.fromkeys(extra))


def clean(value):
    """NaN and inf become null/empty: never written as numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_csv(rows: list[dict]) -> str:
    columns = ordered_columns(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: clean(r.get(c)) for c in columns})
    return buf.getvalue()


def to_json(rows: list[dict]) -> str:
    columns = ordered_columns(rows)
    return json.dumps([{c: clean(r.get(c)) for c in columns} for r in rows], indent=2, allow_nan=False) + "\n"


def write_atomic(path: str, text: str, option: str) -> None:
    """Write text to path through the one writer (output.write: links followed, FIFOs and devices
    written through, regular files replaced atomically with their mode kept)."""
    output.write(path, text, option)


def check_outputs(csv_path: str | None, json_path: str | None, **more: str | None) -> None:
    """Fail before any work when an export cannot be written (output.check): both on stdout, a
    missing or unwritable folder, two exports on one file. --markdown (DISPLAY) is among them."""
    output.check({"--csv": csv_path, "--json": json_path, **markdown_output(), **more})


def markdown_output() -> dict:
    """The --markdown export of the running command, for output.check."""
    path = DISPLAY.get().markdown
    return {"--markdown": path} if path else {}


def emit(rows: list[dict], view: str, *, title: str | None = None, caption: str | None = None,
         notes: list[str] | tuple[str, ...] = (), csv_path: str | None = None, json_path: str | None = None,
         table_to_stderr: bool = False, more=()) -> None:  # fmt: skip
    """Write the requested files, then print the table (on stderr when a file goes to stdout).
    The files come first, each on its own, so a failure to print (or to write one of them) loses
    no measurement; an export error is raised after the table. `more`: further exports as
    (option, path, render) for output.write_all (a plot). title/caption None: built from the rows
    (title_for, caption_for); `notes`: caption lines the rows cannot tell (the command's own
    context), added after the rows' notes. --markdown (DISPLAY) writes the same view."""
    markdown_path = DISPLAY.get().markdown
    exports = list(more)
    if markdown_path:
        exports.append(("--markdown", markdown_path, lambda: to_markdown(rows, view, notes=notes)))
    errors = export_errors(rows, csv_path, json_path) + output.write_all(exports)
    to_stdout = table_to_stderr or "-" in (csv_path, json_path, markdown_path)
    caption = caption_for(rows, view) if caption is None else caption
    caption = "\n".join(filter(None, [caption, *notes]))
    print_table(table(rows, view, title, caption, terminal_width(sys.stderr if to_stdout else sys.stdout)),
                stderr=to_stdout)  # fmt: skip
    output.raise_first(errors)


def export_errors(rows: list[dict], csv_path: str | None, json_path: str | None) -> list:
    """Write the rows as CSV and/or JSON (output.write_all: each on its own); the errors."""
    return output.write_all([("--csv", csv_path, lambda: to_csv(rows)), ("--json", json_path, lambda: to_json(rows))])


def write_exports(rows: list[dict], csv_path: str | None, json_path: str | None) -> None:
    """Write the rows as CSV and/or JSON: atomically to a file, or to stdout for '-'."""
    output.raise_first(export_errors(rows, csv_path, json_path))


# ------------------------------------------------------------------------------------------------
# re-rendering saved reports


def view_for(rows: list[dict]) -> str:
    """The view a command would have printed for these rows."""
    present = {k for r in rows for k, v in r.items() if v is not None}
    if "peak_gflops" in present and "label" not in present:
        return "peak"
    if "conv_err_rel_l2" in present:
        return "convert"
    if "speedup_vs_base" in present:
        return "compare"
    if "latency_ms_median" in present:
        return "bench"
    if "preset" in present and "label" not in present:
        return "presets"
    if rows and all(r.get("mode") == "cache" for r in rows):
        return "kv-memory"
    return "flops"


def read_rows(path: str) -> list[dict]:
    """Rows from a CSV any command wrote (pandas restores ints, floats, booleans; empty → None)."""
    import pandas as pd

    target = Path(path)
    if not target.is_file():
        raise InputError(path, "no such file" if not target.exists() else "is not a file")
    try:
        df = pd.read_csv(target, keep_default_na=False, na_values=[""], encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "is not a UTF-8 text file") from None
    except pd.errors.EmptyDataError:
        raise InputError(path, "is empty") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise InputError(path, f"is not a readable CSV ({str(e).splitlines()[0]})") from None
    if not {"label", "preset", "peak_gflops"} & set(df.columns):
        raise InputError(path, "has no 'label' column: not an attncli report")
    df = df.convert_dtypes()
    return df.astype(object).where(df.notna(), None).to_dict("records")


def group_title(rows: list[dict], view: str, keys: list[str], value: tuple) -> str:
    """A `report --group-by` table's title: the view's title, then the grouping values its
    constants do not already say (a title column such as mode is there once)."""
    title = title_for(rows, view)
    where = ", ".join(f"{k}={v}" for k, v in zip(keys, value) if k not in views.TITLE_COLUMNS)
    return f"{title} · {where}" if where else title


def group_rows(rows: list[dict], columns: list[str]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(c) for c in columns), []).append(r)
    return groups
