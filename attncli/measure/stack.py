"""A model of N layers measured from one-layer measurements (how `bench --layers` and stacks work).

`measure_row` measures one layer. A model row is built kind by kind: each distinct layer kind (one
for a plain variant; e.g. `linear` and `gqa-kv2` for a hybrid) is measured once, as one layer on
the seeded input, and the model's latency and real cache bytes are Σ count × that layer's. The
layers are not chained (each sees the same input), so a model row's error columns are those of its
worst layer kind. Every such row says so in `latency_basis`.
"""

from __future__ import annotations

import dataclasses

from .. import signals
from ..rows import analytic_row, byte_columns, combine, layer_kinds, roofline_columns
from ..spec import AttentionSpec, HybridSpec, PresetSpec, Shape
from .bench import Rounds, Settings, measure_row

SUMMED = ("latency_ms_median", "latency_ms_p25", "latency_ms_p75", "kv_cache_bytes_measured")
# --verify-flops: the model columns cover the row's layers, as `flops` does; the `_layer` ones (and
# the older flops_counted, flops_math_path) stay one layer of the kind, empty on a stack's total.
MODEL_FLOPS = ("flops_counted_model", "flops_math_path_model")
LAYER_FLOPS = ("flops_counted", "flops_math_path", "flops_counted_layer", "flops_math_path_layer")
BYTES = ("bytes_moved", "bytes_weights", "bytes_kv_read", "bytes_kv_write", "bytes_activations")
WORST = ("err_max_abs", "err_mean_abs", "err_rel_l2", "naive_err_max_abs", "naive_err_rel_l2")
SAME = ("backend", "device_name", "torch_version", "threads", "seed", "n_rounds", "load_avg", "others_cores",
        "free_cores")  # fmt: skip
# Rows measured with --tp (measure/tp.py) add their own: summed, worst and shared columns.
TP_KEYS = {"summed": ("kv_cache_bytes_per_rank", "allreduce_ms", "allreduce_bytes"), "worst": ("tp_err_rel_l2",),
           "same": ("tp", "tp_backend", "tp_launcher")}  # fmt: skip


def _keys(row: dict, kind: str) -> tuple[str, ...]:
    base = {"summed": SUMMED, "worst": WORST, "same": SAME}[kind]
    return base + TP_KEYS[kind] if "tp_backend" in row else base


def measure_model(spec: AttentionSpec, preset: PresetSpec, shape: Shape, settings: Settings, layers: int = 1,
                  per_layer: bool = False, memo: dict | None = None, measure=measure_row) -> list[dict]:  # fmt: skip
    """The model row for `layers` layers of `spec` (with per_layer and a stack, one row per distinct
    layer kind with its count first). `memo` shares one-layer measurements between calls, so a
    kind that appears in several variants of one command is measured once; `measure` is the
    one-layer measurement (`measure_row`, or a wrapper that turns out-of-memory into a row)."""
    memo = {} if memo is None else memo

    def one_layer(kind: AttentionSpec) -> dict:
        if (kind, shape) not in memo:
            memo[(kind, shape)] = measure(kind, preset, shape, settings)
        return memo[(kind, shape)]

    if not isinstance(spec, HybridSpec) and layers == 1:
        return [dict(one_layer(spec), latency_basis="1 layer")]
    parts = [(_scaled(one_layer(kind), kind, preset, shape, settings, count), count)
             for kind, count in layer_kinds(spec, layers)]  # fmt: skip
    if not isinstance(spec, HybridSpec):
        return [parts[0][0]]
    total = combine(spec, preset, parts, layers)
    rows = [part for part, _ in parts]
    for key in _keys(rows[0], "summed") + MODEL_FLOPS:
        total[key] = _sum(part.get(key) for part in rows)
    matches = [part.get("flops_match") for part in rows]
    total["flops_match"] = None if None in matches else all(matches)
    total.update(dict.fromkeys(LAYER_FLOPS))
    for key in _keys(rows[0], "worst"):
        values = [part.get(key) for part in rows]
        total[key] = None if any(v is None for v in values) else max(values)
    total.update({key: rows[0].get(key) for key in _keys(rows[0], "same")})
    rounds = [part.get("_round_ms") or [] for part in rows]  # each round's model latency: Σ its kinds' in that round
    if len({len(r) for r in rounds}) == 1 and rounds[0]:
        total["_round_ms"] = [sum(values) for values in zip(*rounds)]
    noisy = [part.get("noisy") for part in rows]
    total["noisy"] = None if None in noisy else any(noisy)
    runs = [part.get("n_runs") for part in rows]
    total["n_runs"] = None if None in runs else min(runs)
    total["gflops_per_s"] = _rate(total["flops"], total["latency_ms_median"])
    if all(part.get("bytes_moved") is not None for part in rows):  # Σ over the kinds, as their FLOPs
        for key in BYTES:
            total[key] = sum(part[key] for part in rows)
        total["arith_intensity"] = total["flops"] / total["bytes_moved"]
        total.update(_roofline(total, rows[0]))
        total["peak_source"] = rows[0].get("peak_source")
    statuses = [part.get("status") for part in rows]
    total["status"] = "ok" if all(s == "ok" for s in statuses) else next(s for s in statuses if s != "ok")
    total["latency_basis"] = "Σ count × 1 layer per kind"
    if not per_layer:
        return [total]
    for part in rows:
        part["layer_of"] = spec.label
    return rows + [total]


def _scaled(one: dict, kind: AttentionSpec, preset: PresetSpec, shape: Shape, settings: Settings, count: int) -> dict:
    """`count` layers of a kind from its one-layer row: analytic columns for count layers, measured
    latency and cache bytes × count; rates and errors are those of the one layer."""
    row = dict(one)
    row.update(analytic_row(kind, preset, shape, count, settings.dtype, device=str(settings.device)))
    for key in _keys(one, "summed") + MODEL_FLOPS:
        row[key] = None if one.get(key) is None else one[key] * count
    if one.get("_round_ms"):
        row["_round_ms"] = [v * count for v in one["_round_ms"]]
    row["gflops_per_s"] = _rate(row["flops"], row["latency_ms_median"])
    if one.get("bytes_moved") is not None:  # traffic of the count layers, beside their FLOPs and latency
        row.update(byte_columns(kind, shape, settings.dtype, layers=count))
        row.update(_roofline(row, one))
    row["latency_basis"] = f"{count} × 1 layer" if count > 1 else "1 layer"
    return row


def _roofline(row: dict, like: dict) -> dict:
    """The roofline columns of a model row, against the peaks its one-layer rows were measured with."""
    return roofline_columns(row, like.get("peak_gflops"), like.get("peak_gbps"))


def _sum(values):
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _rate(flops, latency_ms):
    return None if not latency_ms else flops / (latency_ms * 1e-3) / 1e9


def measure_jobs(jobs, preset: PresetSpec, settings: Settings, layers: int, per_layer: bool = False,
                 memo: dict | None = None, measure=measure_row, advance=lambda what: None,
                 interleave: bool = True, describe=lambda what: None) -> tuple[list[dict], bool]:  # fmt: skip
    """`bench`/`compare`: the rows of `jobs` ((spec, shape, source) each; source: a checkpoint's layer
    or None), each shape's rows timed together, interleaved in rounds (bench.Rounds). For each
    shape, every job's layer kinds are first built, run and checked (errors, cache bytes, FLOPs)
    with their timing deferred; then all of them are timed in rounds; then the model rows are
    built from the timed kinds. `--compile` and `--backend flex` rows are timed one after another
    instead (each compiles its own layer from fresh caches, which would evict the others'), as are rows with
    `interleave` false (--tp: `measure` times each layer across its ranks). A checkpoint's layer
    (`source`) is measured by oom.measure_or_oom.

    `advance(what)` counts a row as it starts; `describe(what)` says what is happening meanwhile
    (the rounds: `timing 5 rows, round 12`).

    Returns (rows, interrupted): on an interrupt, the kinds already built are still timed and the
    jobs they complete are returned. A signal during the rounds ends them after the round under way
    (the rows keep the rounds they have: `n_rounds`); a second interrupt stops the rest too."""
    memo = {} if memo is None else memo
    done: list[dict] = []
    groups: list[list] = []
    for job in jobs:  # consecutive jobs of one shape form a group (the CLI orders jobs by shape)
        if groups and groups[-1][0][1] == job[1]:
            groups[-1].append(job)
        else:
            groups.append([job])
    try:  # a signal between two shapes' rows, or held while timing them, keeps the rows done so far
        for group in groups:
            # compiled layers (--compile, --backend flex) start from fresh compile caches each: one at a time
            rounds = None if settings.compile or settings.backend == "flex" or not interleave else Rounds()
            deferred = settings if rounds is None else dataclasses.replace(settings, rounds=rounds)
            ready: list = []
            interrupted = None
            try:
                for spec, shape, source in group:
                    advance(f"{spec.label} {shape.mode} s={shape.seq_len} b={shape.batch}")
                    if source is not None:  # a checkpoint's own layer, with its weights and inputs
                        from .oom import measure_or_oom

                        ready.append(measure_or_oom(spec, preset, shape, deferred, source=source))
                    else:
                        measure_model(spec, preset, shape, deferred, layers, per_layer, memo, measure)  # fills memo
                        ready.append((spec, shape))
            except (KeyboardInterrupt, signals.Interrupted) as e:
                interrupted = e
            # The built rows are checked; a signal while they are timed is held (then raised once, if
            # none was yet, and caught below), so that an interrupt keeps them: the rounds end after
            # the round under way, and the rows are finished from the rounds they have.
            with signals.deferred():
                if rounds is not None:
                    n = len(rounds.entries)

                    def on_round(k: int) -> bool:
                        describe(f"timing {n} row{'s' if n > 1 else ''}, round {k}")
                        return signals.received() is not None  # interrupted: keep the rounds so far

                    rounds.run(settings, on_round=on_round)
                for item in ready:
                    if isinstance(item, dict):
                        done.append(item)
                    else:
                        spec, shape = item
                        done.extend(measure_model(spec, preset, shape, settings, layers, per_layer, memo, measure))
            if interrupted is not None:
                return done, True
    except (KeyboardInterrupt, signals.Interrupted):
        return done, True
    return done, False
