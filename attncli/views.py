"""What each command shows of the one row schema: its view (columns in priority order), its title
and its caption, all built from the rows themselves, so `attncli report FILE.csv` prints what the
command printed. Pure Python (no torch).

Adding a column to a view: put its name in the view's `columns` where it ranks (the terminal
drops columns from the end when it is too narrow). Adding a caption note: write a function of the
rows that returns a line (or None) and decorate it with `@note("view", ...)`; `which(rows, pred)`
names the rows a note is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class View:
    name: str
    heading: str  # the title's first words
    columns: tuple[str, ...]  # priority order, which is also display order: the last is dropped first


# Columns that, when every row holds the same value, are said once in the title instead of a column.
TITLE_COLUMNS = ("preset", "mode", "seq_len", "batch", "layers", "dtype", "device", "threads", "tp")

_RUN = ("label", "layer_of", "mode", "seq_len", "batch", "layers", "status")
_MEASURED_TAIL = ("bound", "frac_of_roofline", "kv_cache_bytes_measured", "naive_err_rel_l2", "err_max_abs",
                  "naive_err_max_abs", "flops_math_path_model", "flops_counted_model", "flops_match", "backend_used", "compiled",
                  "compile_s")  # fmt: skip

_TP = ("tp", "kv_cache_bytes_per_rank", "allreduce_ms", "allreduce_bytes", "tp_err_rel_l2")  # --tp rows (empty otherwise)

VIEWS: dict[str, View] = {v.name: v for v in (
    View("flops", "FLOPs", ("label", "layer_of", "mode", "seq_len", "batch", "layers", "flops", "attn_share",
                            "proj_flops", "attn_flops", "kv_cache_bytes", "ffn_flops", "ffn_kind", "elementwise_flops",
                            "memory_proj_flops", "stack")),
    View("kv-memory", "KV cache", ("label", "layer_of", "seq_len", "batch", "layers", "dtype", "kv_cache_bytes",
                                   "beyond_max_position", "fits", "max_seq_len", "max_batch", "layer_kind",
                                   "ssm_state_bytes", "kv_bytes_per_token", "weight_bytes", "model_params", "window",
                                   "cache_tokens", "tp", "kv_heads_per_gpu", "kv_scale_bytes", "linear_state_bytes")),
    View("bench", "bench", (*_RUN, "latency_ms_median", "noisy", "flops", "kv_cache_bytes", "err_rel_l2", "healthy",
                            *_TP, "latency_spread", "gflops_per_s", *_MEASURED_TAIL)),
    View("compare", "compare", (*_RUN, "latency_ms_median", "noisy", "speedup_vs_base", "kv_cache_bytes", *_TP,
                                "kv_ratio_vs_base", "flops", "flops_ratio_vs_base", "err_rel_l2", "healthy",
                                "latency_spread", "gflops_per_s", *_MEASURED_TAIL)),
    View("peak", "peak", ("device_name", "dtype", "threads", "peak_gflops", "peak_gbps", "ridge_flops_per_byte",
                          "noisy", "peak_source", "measured_at", "matmul_n", "copy_bytes", "torch_version")),
    View("presets", "Presets", ("preset", "d_model", "n_heads", "head_dim", "n_layers", "d_ff", "gqa_n_kv_heads",
                                "model", "description")),
    View("convert", "convert", ("label", "status", "method", "kv_bytes_per_token", "kv_ratio_vs_base",
                                "conv_err_rel_l2", "conv_err_cos", "conv_err_max_abs", "kv_bytes_per_token_before",
                                "params", "params_before", "n_kv_heads", "kv_lora_rank", "qk_rope_head_dim", "layers")),
)}  # fmt: skip


# ------------------------------------------------------------------------------------------------
# title


def _plural(n, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def title_piece(column: str, value) -> str | None:
    """How a value held by every row reads in the title (None: say nothing)."""
    if column == "preset":
        return f"preset {value}"
    if column == "mode":
        return None if value == "cache" else str(value)
    if column == "seq_len":
        return f"seq len {value:,}" if isinstance(value, int) else f"seq len {value}"
    if column == "batch":
        return f"batch {value}"
    if column == "layers":
        return _plural(value, "layer") if isinstance(value, int) else f"layers {value}"
    if column == "threads":
        return _plural(value, "thread") if isinstance(value, int) else f"threads {value}"
    if column == "tp":
        return None if value == 1 else f"TP {value}"
    return str(value)


# Extra title words a view takes from its rows (after the constants).
TITLE_EXTRAS: dict[str, Callable[[list[dict]], list[str]]] = {}


def _title_extra(view: str):
    def register(fn):
        TITLE_EXTRAS[view] = fn
        return fn

    return register


@_title_extra("kv-memory")
def _kv_title(rows: list[dict]) -> list[str]:
    from .report import _iec

    budgets = {r.get("budget_bytes") for r in rows} - {None}
    if len(budgets) != 1:  # bytes per GPU under tensor parallelism
        return ["per GPU"] if any((r.get("tp") or 1) > 1 for r in rows) else []
    weights = any(r.get("weight_bytes") is not None for r in rows)
    return [f"budget {_iec(next(iter(budgets)))} per GPU" + (" incl. weights" if weights else "")]


@_title_extra("convert")
def _convert_title(rows: list[dict]) -> list[str]:
    bases = list(dict.fromkeys(r["base_label"] for r in rows if r.get("base_label")))
    return [f"from {', '.join(bases)}"] if bases else []


@_title_extra("peak")
def _peak_title(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(str(r["device_name"]) for r in rows if r.get("device_name")))


# ------------------------------------------------------------------------------------------------
# caption notes: functions of the rows, each giving one line (or None)

Note = Callable[[list[dict]], "str | None"]
NOTES: dict[str, list[Note]] = {}


def note(*views: str):
    """Register a caption note for the views named: `fn(rows) -> str | None`, called in
    registration order. Use `which(rows, pred)` to name the rows a note is about."""

    def register(fn: Note) -> Note:
        for v in views:
            NOTES.setdefault(v, []).append(fn)
        return fn

    return register


def notes_for(rows: list[dict], view: str) -> list[str]:
    return [line for fn in NOTES.get(view, []) if (line := fn(rows))]


def row_name(row: dict, rows: list[dict]) -> str:
    """A row's label, with whatever else tells it apart from the other rows (mode, seq len, batch)."""
    parts = [str(row.get("label"))]
    if row.get("layer_of"):
        parts[0] += f" (in {row['layer_of']})"
    for key, fmt in (("mode", str), ("seq_len", lambda v: f"s={v:,}" if isinstance(v, int) else f"s={v}"),
                     ("batch", lambda v: f"b={v}")):  # fmt: skip
        if len({r.get(key) for r in rows}) > 1 and row.get(key) is not None:
            parts.append(fmt(row[key]))
    return " ".join(parts)


def which(rows: list[dict], pred: Callable[[dict], bool]) -> str | None:
    """'every row', the rows named (row_name) for which pred holds, or None when there are none."""
    chosen = [r for r in rows if pred(r)]
    if not chosen:
        return None
    if len(chosen) == len(rows) and len(rows) > 1:
        return "every row"
    return ", ".join(dict.fromkeys(row_name(r, rows) for r in chosen))


def group_names(rows: list[dict], key: Callable[[dict], object]) -> dict:
    """{value: the rows holding it, named}, in first-seen order (for notes that differ by row)."""
    values = list(dict.fromkeys(key(r) for r in rows if key(r) is not None))
    return {v: which(rows, lambda r, v=v: key(r) == v) for v in values}


@note("flops", "bench", "compare", "kv-memory")
def _short_stack(rows: list[dict]) -> str | None:
    """A stack on a model shorter than its pattern's period is not what its label names."""
    lines = [f"{row_name(r, rows)} on {r['layers']} layers is {r['stack']}: fewer layers than one period of its "
             f"pattern, so no {r['stack_missing']} layer (--layers or hybrid:softmax_every=N changes that)"
             for r in rows if r.get("stack_missing")]  # fmt: skip
    return "; ".join(dict.fromkeys(lines)) or None


# --- measured rows (bench, compare; sweep --measure) ---------------------------------------------


def _first_measured(rows: list[dict]) -> dict | None:
    return next((r for r in rows if r.get("device_name")), None)


@note("bench", "compare")
def _how_measured(rows: list[dict]) -> str | None:
    first = _first_measured(rows)
    if first is None:
        return None
    if first.get("n_rounds"):  # timed in rounds (measure/timing.time_interleaved; issue 16)
        how = (f"latency: median (p25–p75) over {first['n_rounds']} rounds of synchronised runs, each round timing "
               "every row of the shape in turn; noisy when the IQR within or between rounds is > 10% of the median")  # fmt: skip
    else:
        how = "latency: median (p25–p75) over ≥5 synchronised runs, noisy when IQR > 10% of median"
    return (f"{first['device_name']} · torch {first['torch_version']} · seed {first['seed']} · {how} · "
            "error vs float64 reference")  # fmt: skip


@note("bench", "compare")
def _machine_load(rows: list[dict]) -> str | None:
    """Rows timed while other processes took CPU, or with more threads than the cores left free
    (measure/load.py): the figures are inflated and drift; one thread is the steadier measure."""
    from .measure.load import is_busy, oversubscribed

    busy = [r for r in rows if is_busy(r) or oversubscribed(r)]
    if not busy:
        return None
    worst = max(busy, key=lambda r: r.get("others_cores") or 0)
    named = which(rows, lambda r: r in busy)
    where = "" if named == "every row" or len(rows) == 1 else f" ({named})"
    line = (f"machine busy while timing{where}: other processes took {worst['others_cores']:.1f} cores, "
            f"{worst['free_cores']:.1f} left free (load average {worst.get('load_avg')})")  # fmt: skip
    threads = worst.get("threads")
    if oversubscribed(worst):
        line += f"; {_plural(threads, 'thread')} > the free cores: latencies are inflated and drift"
    return line + ("; rerun with --threads 1 for steadier figures" if threads != 1 else "; rerun on a quieter machine")


@note("bench", "compare")
def _threads_lowered(rows: list[dict]) -> str | None:
    """Without --threads, attncli lowered torch's thread count to the cores left free (measure/load.py)."""
    lowered = next((r for r in rows if r.get("threads_default")), None)
    if lowered is None:
        return None
    return (f"{_plural(lowered['threads'], 'thread')}, not torch's {lowered['threads_default']}: only "
            f"{lowered['free_cores_start']:.1f} cores were free when the run began (a thread sharing a core "
            f"with other work stalls the rest); --threads {lowered['threads_default']} overrides")  # fmt: skip


def _why_noisy(row: dict) -> str:
    """Which spread flagged a row `noisy` (measure/timing.py, rows.add_ratios)."""
    mid, lo, hi = row.get("latency_ms_median"), row.get("latency_ms_p25"), row.get("latency_ms_p75")
    if mid and lo is not None and hi is not None and hi - lo > 0.1 * mid:
        return "its runs"
    s, s_lo, s_hi = row.get("speedup_vs_base"), row.get("speedup_vs_base_p25"), row.get("speedup_vs_base_p75")
    if s and s_lo is not None and s_hi is not None and s_hi - s_lo > 0.1 * s:
        return "its per-round speed-ups"
    return "its rounds (the machine's speed drifted)"


@note("bench", "compare")
def _spread(rows: list[dict]) -> str | None:
    """Why each flagged row is flagged: the spread within its runs, between its rounds, or of its ratios."""
    why = group_names([r for r in rows if r.get("noisy") is True], _why_noisy)
    if not why:
        return None
    return "spread over 10% of the median in " + "; ".join(f"{reason}: {names}" for reason, names in why.items())


@note("bench", "compare")
def _backend(rows: list[dict]) -> str | None:
    first = _first_measured(rows)
    requested = first and first.get("backend")
    if not requested:
        return None
    used = group_names(rows, lambda r: r.get("backend_used"))
    if not used:
        return f"SDPA backend {requested}"
    if len(used) == 1:
        return f"SDPA backend {requested} → {next(iter(used))}"
    return f"SDPA backend {requested} → " + "; ".join(f"{u}: {names}" for u, names in used.items())


@note("bench", "compare")
def _decode_kernel_off(rows: list[dict]) -> str | None:
    """Grouped-query decode rows that ran on the BLAS gemv because the C kernel could not run here."""
    why = group_names(rows, lambda r: r.get("decode_kernel_off"))
    if not why:
        return None
    return "; ".join(f"the C decode kernel (avx2) is off here ({reason}): {names} ran the BLAS gemv, slower"
                     for reason, names in why.items())  # fmt: skip


@note("bench", "compare")
def _tensor_parallel(rows: list[dict]) -> str | None:
    """Rows measured with --tp (measure/tp.py)."""
    first = next((r for r in rows if r.get("tp_backend")), None)
    if first is None:
        return None
    return (f"TP: {first['tp_launcher']} ranks over {first['tp_backend']}; latency = the slowest rank's median over "
            "barrier-aligned rounds; all-reduce timed alone on the output's shape; KV / rank measured from each "
            "rank's cache tensors; errors: the all-reduced output vs the unsharded layer (float64; rel L2 vs TP 1: "
            "in the run dtype)")  # fmt: skip


@note("bench", "compare")
def _healthy(rows: list[dict]) -> str | None:
    if not any(r.get("healthy") is not None for r in rows):
        return None
    return "healthy: max abs err ≤ 2 × the same-dtype plain-math path's (FlashAttention's test criterion)"


@note("bench", "compare")
def _counted(rows: list[dict]) -> str | None:
    if not any(r.get("flops_match") is not None for r in rows):
        return None
    return ("FLOPs counted by FlopCounterMode on the plain-math path, whose query blocks score their whole key band, "
            "masked (math-path FLOPs: its analytic count, docs/measuring.md); both over the row's layers, as FLOPs")  # fmt: skip


@note("bench", "compare")
def _roofline(rows: list[dict]) -> str | None:
    first = _first_measured(rows)
    if first is None:
        return None
    if first.get("peak_gflops"):
        line = (f"roofline vs measured peak {first['peak_gflops']:,.0f} GFLOP/s, {first['peak_gbps']:,.1f} GB/s "
                f"({first.get('peak_source') or 'attncli peak'}); % of roof = roofline time / latency")  # fmt: skip
        beats = which(rows, lambda r: (r.get("frac_of_peak") or 0) > 1.05)
        if beats:
            line += (f"; {beats} beat the cached matmul peak: it was measured on a busier machine, so refresh it "
                     "with `attncli peak --refresh` on a quiet one")  # fmt: skip
        return line
    return (f"no measured peak for this device, dtype and thread count: `attncli peak --device {first['device']} "
            f"--dtype {first['dtype']} --threads {first['threads']}` fills % of peak and the roofline bound")  # fmt: skip


@note("bench", "compare")
def _stacked(rows: list[dict]) -> str | None:
    stacked = [r for r in rows if r.get("latency_basis") not in (None, "1 layer")]
    if not stacked:
        return None
    layers = sorted({r["layers"] for r in stacked if isinstance(r.get("layers"), int)})
    n = " / ".join(map(str, layers)) or "N"
    return (f"{n} layers = Σ count × one layer of each kind, measured alone (latency, cache bytes); "
            "errors: the worst kind")  # fmt: skip


@note("compare")
def _ratios(rows: list[dict]) -> str | None:
    bases = list(dict.fromkeys(r["base_label"] for r in rows if r.get("base_label")))
    if not bases:
        return None
    base = bases[0] if len(bases) == 1 else "the first variant"
    if any(r.get("speedup_vs_base_p25") is not None for r in rows):  # timed in the same rounds (issue 16)
        speedup = (f"speed-up = the median over rounds of {base}'s latency / this one's in the same round "
                   "(p25–p75 in speedup_vs_base_p25/_p75)")  # fmt: skip
    else:
        speedup = f"speed-up = {base}'s latency / this one's"
    return f"{speedup}; KV ratio and FLOP ratio = this one's / {base}'s"


# --- kv-memory -------------------------------------------------------------------------------------


@note("kv-memory")
def _storage(rows: list[dict]) -> str | None:
    from .serving import Storage

    described = {Storage.of(r["dtype"], r.get("kv_scales")).describe() for r in rows if r.get("kv_scales")}
    return "; ".join(sorted(d for d in described if d)) or None


@note("kv-memory")
def _kv_heads_from(rows: list[dict]) -> str | None:
    sources = sorted({r["kv_heads_from"] for r in rows if r.get("kv_heads_from")})
    if not sources:
        return None
    presets = ", ".join(dict.fromkeys(str(r["preset"]) for r in rows if r.get("kv_heads_from")))
    return f"KV heads from {presets}: {'; '.join(sources)}"


@note("kv-memory")
def _unbounded(rows: list[dict]) -> str | None:
    named = which(rows, lambda r: r.get("max_seq_len") is None and r.get("budget_bytes") is not None)
    if not named:
        return None
    return f"no max seq len for {named}: the cache stops growing (every layer windowed or linear), any context fits"


@note("kv-memory")
def _beyond(rows: list[dict]) -> str | None:
    limits = sorted({r["max_position"] for r in rows if r.get("beyond_max_position")})
    if not limits:
        return None
    return (f"BEYOND: seq len past the model's max_position_embeddings ({', '.join(f'{n:,}' for n in limits)} "
            "tokens): the cache is sized, but the model was not built for that context")


# --- presets, peak, convert --------------------------------------------------------------------


@note("presets")
def _families(rows: list[dict]) -> str | None:
    from .registry import FAMILIES

    return "Families — " + "; ".join(f"{f.name}: {f.summary}" for f in FAMILIES.values())


@note("peak")
def _peak_method(rows: list[dict]) -> str | None:
    methods = list(dict.fromkeys(r["peak_method"] for r in rows if r.get("peak_method")))
    return " · ".join(methods + ["ridge = peak / bandwidth (FLOP per byte)"]) if rows else None


@note("peak")
def _peak_noisy(rows: list[dict]) -> str | None:
    named = which(rows, lambda r: r.get("noisy") is True)
    if not named:
        return None
    return f"noisy ({named}: IQR > 10% of median): the machine was busy; run --refresh when it is quiet"


@note("convert")
def _conversion(rows: list[dict]) -> str | None:
    first = rows[0] if rows else None
    if first is None or "conv_err_rel_l2" not in first:
        return None
    n = first.get("layers")
    over = (f"mean over {n} layers (max abs: the largest)" if isinstance(n, int) and n > 1
            else f"layer {first.get('layer')}")  # fmt: skip
    return (f"error: converted vs original layer on the same inputs ({first['batch']}×{first['seq_len']} tokens), "
            f"plain-math path in {first['dtype']}, {over}; KV bytes per token at {first.get('kv_dtype')}; "
            "no fine-tuning")  # fmt: skip
