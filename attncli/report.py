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
    "memory_proj_flops": _si,
    **dict.fromkeys(("kv_bytes_per_token", "kv_cache_bytes", "kv_cache_bytes_measured", "kv_scale_bytes",
                     "linear_state_bytes", "weight_bytes", "budget_bytes", "kv_bytes_per_token_before",
                     "ssm_state_bytes"), _iec),
    "model_params": _si,
    **dict.fromkeys(("max_seq_len", "max_batch", "window"), lambda x: f"{x:,}"),
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
    "beyond_max_position": "beyond max position", "ffn_kind": "FFN", "model_params": "params", "weight_bytes": "weights / GPU",
    "max_seq_len": "max seq len", "max_batch": "max batch", "kv_heads_from": "KV heads from",
    "n_kv_heads": "KV heads", "kv_lora_rank": "latent r", "qk_rope_head_dim": "RoPE dims",
    "kv_bytes_per_token_before": "KV / token before", "params_before": "params before",
    "conv_err_rel_l2": "rel L2 vs orig", "conv_err_max_abs": "max abs vs orig", "conv_err_cos": "cosine vs orig",
}  # fmt: skip

# Measurement columns (issue 6): the FLOP cross-check, the roofline, dtype grading, `peak`.
FORMAT.update({
    **dict.fromkeys(("flops_counted", "flops_math_path"), _si),
    **dict.fromkeys(("bytes_moved", "bytes_weights", "bytes_kv_read", "bytes_kv_write", "bytes_activations",
                     "copy_bytes"), _iec),
    **dict.fromkeys(("gbytes_per_s", "peak_gflops", "peak_gbps", "roofline_ms", "arith_intensity",
                     "ridge_flops_per_byte"), _fixed3),
    **dict.fromkeys(("frac_of_peak", "frac_of_bw", "frac_of_roofline"), lambda x: f"{100 * x:.0f}%"),
})  # fmt: skip
HEADER.update({
    "naive_err_max_abs": "math max abs", "backend_used": "SDPA", "flops_counted": "FLOPs counted",
    "flops_math_path": "math-path FLOPs", "flops_match": "counted = analytic", "bytes_moved": "bytes moved",
    "arith_intensity": "FLOP/B", "gbytes_per_s": "GB/s", "peak_gflops": "peak GFLOP/s", "peak_gbps": "peak GB/s",
    "frac_of_peak": "% of peak", "frac_of_bw": "% of BW", "roofline_ms": "roofline ms",
    "frac_of_roofline": "% of roof", "ridge_flops_per_byte": "ridge FLOP/B", "matmul_n": "matmul n",
    "copy_bytes": "copy buffer", "measured_at": "measured", "peak_source": "source", "device_name": "device",
    "torch_version": "torch", "latency_spread": "p25–p75 ms",
})  # fmt: skip

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

# The columns each command shows on the terminal; files get every column. The measured views show
# `bound` and `% of roof` (= % of peak on compute-bound rows, % of bandwidth on memory-bound ones);
# frac_of_peak, frac_of_bw, GB/s and the byte counts are in the files.
_MEASURED = ["flops_math_path", "flops_counted", "flops_match",
             "latency_ms_median", "latency_spread", "noisy", "gflops_per_s", "bound", "frac_of_roofline",
             "kv_cache_bytes", "kv_cache_bytes_measured", "err_rel_l2", "naive_err_rel_l2", "err_max_abs",
             "naive_err_max_abs", "healthy", "status"]  # fmt: skip
VIEWS = {
    "flops": ["label", "mode", "seq_len", "batch", "layers", "stack", "layer_of", "proj_flops", "attn_flops", "flops",
              "elementwise_flops", "memory_proj_flops", "ffn_kind", "ffn_flops", "attn_share", "kv_cache_bytes"],
    "kv-memory": ["label", "layer_kind", "window", "seq_len", "beyond_max_position", "batch", "layers", "layer_of",
                  "dtype", "cache_tokens", "tp", "kv_heads_per_gpu", "kv_bytes_per_token", "kv_cache_bytes",
                  "kv_scale_bytes", "linear_state_bytes", "ssm_state_bytes", "model_params", "weight_bytes", "fits",
                  "max_seq_len", "max_batch"],
    "bench": ["label", "mode", "seq_len", "batch", "layers", "layer_of", "flops", *_MEASURED],
    "compare": ["label", "mode", "seq_len", "batch", "layers", "layer_of", "flops", *_MEASURED,
                "speedup_vs_base", "kv_ratio_vs_base", "flops_ratio_vs_base"],
    "peak": ["device_name", "dtype", "threads", "torch_version", "peak_gflops", "peak_gbps", "ridge_flops_per_byte",
             "matmul_n", "copy_bytes", "measured_at", "peak_source", "noisy"],
    "presets": ["preset", "d_model", "n_heads", "head_dim", "n_layers", "d_ff", "gqa_n_kv_heads", "model", "description"],
    "convert": ["label", "layers", "n_kv_heads", "kv_lora_rank", "qk_rope_head_dim", "method", "kv_bytes_per_token_before",
                "kv_bytes_per_token", "kv_ratio_vs_base", "params_before", "params", "conv_err_rel_l2",
                "conv_err_max_abs", "conv_err_cos"],
}  # fmt: skip

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


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    is_tty = stream.isatty()
    # A pipe or file gets the whole table (no terminal to fit); COLUMNS still wins when set.
    width = None if is_tty else int(os.environ.get("COLUMNS", "0") or 0) or 320
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def table(rows: list[dict], view: str, title: str = "", caption: str = "", width: int | None = None):
    """A Rich table of the view's columns that any row fills. When its natural width exceeds
    `width` (default: the terminal's), each column narrows to its widest figure or its header's
    longest word (headers wrap at spaces), so a figure is not cut while that fits."""
    from rich.table import Table

    def value(r: dict, c: str):
        return DERIVED[c](r) if c in DERIVED else r.get(c)

    shown = {c for c in VIEWS[view] if any(value(r, c) is not None and value(r, c) != HIDDEN_WHEN.get(c) for r in rows)}
    columns = [c for c in VIEWS[view] if c in shown and SHOWN_WITH.get(c, c) in shown]
    cells = [[cell(c, value(r, c)) for c in columns] for r in rows]
    headers = [HEADER.get(c, c) for c in columns]
    widest = [max((len(line[i]) for line in cells), default=1) for i in range(len(columns))]
    natural = [max(w, len(h)) for w, h in zip(widest, headers)]
    compact = [max(w, *(len(word) for word in h.split())) for w, h in zip(widest, headers)]
    width = console().width if width is None else width
    squeeze = sum(natural) + 3 * len(columns) + 1 > width
    t = Table(title=title or None, caption=caption or None, title_justify="left", caption_justify="left")
    for i, c in enumerate(columns):
        numeric = c in RIGHT or c in FORMAT or c in DERIVED
        t.add_column(headers[i], justify="right" if numeric else "left", no_wrap=c in ("label", "layer_kind", "method"),
                     width=compact[i] if squeeze else None, overflow="fold")  # fold, never cut a figure  # fmt: skip
    for line in cells:
        t.add_row(*line)
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


def caption_for(rows: list[dict]) -> str:
    """What measured rows ran on and how they were measured, from the rows themselves."""
    first = next((r for r in rows if r.get("device_name")), None)
    if first is None:
        return ""
    parts = [f"{first['device_name']} · {first['dtype']} · torch {first['torch_version']} · {first['threads']} threads"
             f" · seed {first['seed']} · latency: median (p25–p75) over ≥5 synchronised runs, noisy when IQR > 10%"
             f" of median · error vs float64 reference"]  # fmt: skip
    requested = first.get("backend")
    if requested:
        used = {r["mode"]: r.get("backend_used") for r in rows if r.get("backend_used")}
        if not used:
            parts.append(f"SDPA backend {requested}")
        elif len(set(used.values())) == 1:
            parts.append(f"SDPA backend {requested} → {next(iter(used.values()))}")
        else:
            parts.append(f"SDPA backend {requested} → " + ", ".join(f"{u} ({m})" for m, u in used.items()))
    if any(r.get("healthy") is not None for r in rows):
        parts.append("healthy: max abs err ≤ 2 × the same-dtype plain-math path's (FlashAttention's test criterion)")
    if any(r.get("flops_counted") is not None for r in rows):
        parts.append("FLOPs counted by FlopCounterMode on the plain-math path, which scores the full n×n matrix "
                     "even when causal (math-path FLOPs: its analytic count)")  # fmt: skip
    if first.get("peak_gflops"):
        parts.append(f"roofline vs measured peak {first['peak_gflops']:,.0f} GFLOP/s, {first['peak_gbps']:,.1f} GB/s "
                     f"({first.get('peak_source') or 'attncli peak'}); % of roof = roofline time / latency")  # fmt: skip
        if any((r.get("frac_of_peak") or 0) > 1.05 for r in rows):
            parts.append("a row beats the cached matmul peak: it was measured on a busier machine, so refresh it "
                         "with `attncli peak --refresh` on a quiet one")  # fmt: skip
    else:
        parts.append(f"no measured peak for this device, dtype and thread count: `attncli peak --device {first['device']} "
                     f"--dtype {first['dtype']} --threads {first['threads']}` fills % of peak and the roofline bound")  # fmt: skip
    return " · ".join(parts)


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
    if not {"label", "preset", "peak_gflops"} & set(df.columns):
        raise InputError(path, "has no 'label' column: not an attncli report")
    df = df.convert_dtypes()
    return df.astype(object).where(df.notna(), None).to_dict("records")


def group_rows(rows: list[dict], columns: list[str]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(c) for c in columns), []).append(r)
    return groups
