"""Rows → Rich table, CSV or JSON. The same list of dicts feeds every view, so they never disagree."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import tempfile
from pathlib import Path

from .errors import InputError
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
    **dict.fromkeys(("kv_bytes_per_token", "kv_cache_bytes", "kv_cache_bytes_measured", "kv_bytes_per_token_before"), _iec),
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
    "n_kv_heads": "KV heads", "kv_lora_rank": "latent r", "qk_rope_head_dim": "RoPE dims",
    "kv_bytes_per_token_before": "KV / token before", "params_before": "params before",
    "conv_err_rel_l2": "rel L2 vs orig", "conv_err_max_abs": "max abs vs orig", "conv_err_cos": "cosine vs orig",
}  # fmt: skip

# The columns each command shows on the terminal; files get every column.
_MEASURED = ["latency_ms_median", "latency_ms_p25", "latency_ms_p75", "gflops_per_s", "kv_cache_bytes",
             "kv_cache_bytes_measured", "err_rel_l2", "naive_err_rel_l2", "err_max_abs"]  # fmt: skip
VIEWS = {
    "flops": ["label", "mode", "seq_len", "batch", "layers", "proj_flops", "attn_flops", "flops",
              "ffn_flops", "attn_share", "kv_cache_bytes"],
    "kv-memory": ["label", "seq_len", "batch", "layers", "dtype", "kv_bytes_per_token", "kv_cache_bytes"],
    "bench": ["label", "mode", "seq_len", "batch", "flops", *_MEASURED],
    "compare": ["label", "mode", "seq_len", "batch", "flops", *_MEASURED,
                "speedup_vs_base", "kv_ratio_vs_base", "flops_ratio_vs_base"],
    "presets": ["preset", "d_model", "n_heads", "head_dim", "n_layers", "d_ff", "gqa_n_kv_heads", "description"],
    "convert": ["label", "layers", "n_kv_heads", "kv_lora_rank", "qk_rope_head_dim", "method", "kv_bytes_per_token_before",
                "kv_bytes_per_token", "kv_ratio_vs_base", "params_before", "params", "conv_err_rel_l2",
                "conv_err_max_abs", "conv_err_cos"],
}  # fmt: skip

RIGHT = {"seq_len", "batch", "layers", "d_model", "n_heads", "head_dim", "n_layers", "d_ff", "gqa_n_kv_heads", "n_kv_heads",
         "kv_lora_rank", "qk_rope_head_dim"}  # fmt: skip


def cell(column: str, value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else str(value)
    fmt = FORMAT.get(column)
    return fmt(value) if fmt and isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    is_tty = stream.isatty()
    width = None if is_tty else int(os.environ.get("COLUMNS", "0") or 0) or 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def table(rows: list[dict], view: str, title: str = "", caption: str = ""):
    from rich.table import Table

    columns = [c for c in VIEWS[view] if any(r.get(c) is not None for r in rows)]
    t = Table(title=title or None, caption=caption or None, title_justify="left", caption_justify="left")
    for c in columns:
        numeric = c in RIGHT or c in FORMAT
        t.add_column(HEADER.get(c, c), justify="right" if numeric else "left", no_wrap=c in ("label", "method"))
    for r in rows:
        t.add_row(*(cell(c, r.get(c)) for c in columns))
    return t


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
    """Write text to path via a temporary file in the same folder and a rename, so an existing
    file is replaced whole or not at all."""
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise InputError(option, f"folder '{folder}' does not exist")
    if target.is_dir():
        raise InputError(option, f"'{path}' is a folder")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_outputs(csv_path: str | None, json_path: str | None) -> None:
    """Fail before any work when both exports claim stdout."""
    if csv_path == "-" and json_path == "-":
        raise InputError("--csv/--json", "only one of them can write to stdout ('-')")


def emit(rows: list[dict], view: str, *, title: str = "", caption: str = "", csv_path: str | None = None,
         json_path: str | None = None, table_to_stderr: bool = False) -> None:  # fmt: skip
    """Print the table (on stderr when a file goes to stdout) and write the requested files."""
    to_stdout = table_to_stderr or "-" in (csv_path, json_path)
    console(stderr=to_stdout).print(table(rows, view, title, caption))
    write_exports(rows, csv_path, json_path)


def write_exports(rows: list[dict], csv_path: str | None, json_path: str | None) -> None:
    """Write the rows as CSV and/or JSON: atomically to a file, or to stdout for '-'."""
    for path, render, option in ((csv_path, to_csv, "--csv"), (json_path, to_json, "--json")):
        if path == "-":
            sys.stdout.write(render(rows))
            sys.stdout.flush()
        elif path:
            write_atomic(path, render(rows), option)


# ------------------------------------------------------------------------------------------------
# re-rendering saved reports


def view_for(rows: list[dict]) -> str:
    """The view a command would have printed for these rows."""
    present = {k for r in rows for k, v in r.items() if v is not None}
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


def caption_for(rows: list[dict]) -> str:
    """What measured rows ran on (device, dtype, torch, threads, seed), from the rows themselves."""
    first = next((r for r in rows if r.get("device_name")), None)
    if first is None:
        return ""
    return (f"{first['device_name']} · {first['dtype']} · torch {first['torch_version']} · {first['threads']} threads · "
            f"seed {first['seed']} · latency: median (p25–p75) over ≥5 synchronised runs · error vs float64 reference")  # fmt: skip


def title_for(rows: list[dict], view: str) -> str:
    presets = ", ".join(dict.fromkeys(str(r["preset"]) for r in rows if r.get("preset")))
    return f"{view} · preset {presets}" if presets and view != "presets" else view


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
    if "label" not in df.columns and "preset" not in df.columns:
        raise InputError(path, "has no 'label' column: not an attncli report")
    df = df.convert_dtypes()
    return df.astype(object).where(df.notna(), None).to_dict("records")


def group_rows(rows: list[dict], columns: list[str]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(c) for c in columns), []).append(r)
    return groups
