"""The `attncli` command line: parse options into specs, hand rows to report.py. No math here.

Library code raises `AttncliError`s; `main` turns each into one line on stderr and an exit code
(0 ok, 2 bad input, 3 device or resource unavailable, 130 interrupted). Torch is imported only
inside the measuring commands, so `kv-memory`, `flops`, `presets` and `--help` start fast.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Annotated, Optional

import typer

try:  # typer >= 0.22 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as click_exceptions

_EXIT = tuple({typer.Exit, getattr(click_exceptions, "Exit", typer.Exit)})
_ABORT = tuple({KeyboardInterrupt, typer.Abort, getattr(click_exceptions, "Abort", typer.Abort)})

from . import __version__, output, presets, report, rows, signals
from .errors import (EXIT_CHECK_FAILED, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_UNAVAILABLE, AttncliError,
                     InputError, ResourceError)  # fmt: skip
from .options import parse_bytes, parse_int_list, parse_modes, parse_positive_int
from .spec import COMPUTE_DTYPES, DTYPE_BYTES, Shape, parse_dtype

def _flags_without_metavar() -> None:
    """Typer 0.29 prints `<bool>` beside every flag in --help (--force <bool>): a flag takes no value,
    so show none, as click and earlier Typer do."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - another Typer layout: nothing to mend
        return
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "attncli_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    display_type_rich.attncli_flags = True
    TyperOption.display_type_rich = display_type_rich


_flags_without_metavar()

app = typer.Typer(
    name="attncli",
    help="Put attention variants side by side: FLOPs, KV-cache memory, latency and output error.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ------------------------------------------------------------------------------------------------
# options shared by the commands (help text carries the units)

VARIANT_HELP = (
    "Variants: a family (mha, mqa, gqa, mla, swa, cross, linear, hybrid), a family with overrides "
    "(gqa:n_kv_heads=2,causal=false; nested values in brackets: hybrid:softmax=\\[gqa:n_kv_heads=2,window=512]), "
    "or a YAML file path (my.yaml, optionally my.yaml:n_kv_heads=4). flops, bench and compare show mla's "
    "naive and absorbed paths as two rows unless absorb=true|false picks one."
)
Preset = Annotated[Optional[str], typer.Option("--preset", "-p", show_default=False,
    help="Size or model preset (see `attncli presets`) or a preset YAML path. \\[default: small]")]  # fmt: skip
SeqLen = Annotated[str, typer.Option("--seq-len", "-s",
    help="Sequence length in tokens: 1024, a list 1024,4096 or 32k,128k (k = 1,024 tokens, m = 1,048,576), or a "
         "doubling range 128:4096 (128, 256, …, 4096; an end doubling misses is kept: 100:1000 = 100, 200, 400, 800, "
         "1000). Prefill processes this many tokens; decode adds one token to a cache of this many.")]  # fmt: skip
Batch = Annotated[str, typer.Option("--batch", "-b", help="Sequences per batch: a number or a comma list.")]
Layers = Annotated[Optional[str], typer.Option("--layers", show_default=False,
    help="Attention layers in the model: totals multiply by it (a hybrid repeats its pattern to fill them). "
         "\\[default: the preset's n_layers]")]  # fmt: skip
PerLayer = Annotated[bool, typer.Option("--per-layer",
    help="Also one row per distinct layer kind of a stack (hybrid) or a model (e.g. 21 sliding + 21 full), "
         "with its count in `layers`.")]  # fmt: skip
BenchLayers = Annotated[Optional[str], typer.Option("--layers", show_default=False,
    help="Layers in the measured model: each distinct layer kind is measured once as one layer and the "
         "model totals count × that layer (column latency_basis). \\[default: 1; the preset's n_layers "
         "when a stack (hybrid) is among the variants]")]  # fmt: skip
Mode = Annotated[str, typer.Option("--mode", "-m",
    help="prefill (a whole sequence), decode (one new token against the cache), or both.")]  # fmt: skip
Csv = Annotated[Optional[str], typer.Option("--csv", metavar="PATH", show_default=False,
    help="Also write every row and column as CSV to PATH ('-' for stdout; the table then goes to stderr).")]  # fmt: skip
Json = Annotated[Optional[str], typer.Option("--json", metavar="PATH", show_default=False,
    help="Also write the rows as a JSON array of objects to PATH ('-' for stdout).")]  # fmt: skip
KvDtype = Annotated[str, typer.Option("--dtype", "-d",
    help=f"Storage dtype of the KV cache: {', '.join(DTYPE_BYTES)} (fp8/int8: 1 byte per element).")]  # fmt: skip
Device = Annotated[str, typer.Option("--device",
    help="cpu, cuda, cuda:N, mps, or auto (cuda if available, else mps, else cpu).")]  # fmt: skip
RunDtype = Annotated[str, typer.Option("--dtype", "-d",
    help=f"Compute dtype: {', '.join(COMPUTE_DTYPES)}, or auto (float32 on cpu, bfloat16 on cuda, float16 on mps).")]  # fmt: skip
Seed = Annotated[int, typer.Option("--seed", help="Seed for weights and inputs (same seed, same numbers).")]
Threads = Annotated[Optional[str], typer.Option("--threads", show_default=False,
    help="CPU threads for torch (1 gives steadier figures on a busy machine; the caption says when it is busy). "
         "\\[default: torch's own choice, one per physical core, lowered to the cores other processes leave free]")]  # fmt: skip
MinTime = Annotated[float, typer.Option("--min-time",
    help="Seconds of timed repetitions per row (at least 5 runs, after a warm-up).")]  # fmt: skip
Force = Annotated[bool, typer.Option("--force",
    help="Skip the memory pre-flight (rows that then run out of memory get status oom).")]  # fmt: skip
Backend = Annotated[str, typer.Option("--backend",
    help="Backend of the fast path: auto (torch's choice; CPU decode skips SDPA: BLAS products, or attncli's "
         "C kernel for grouped heads, built on first use), math, flash, efficient, cudnn "
         "(torch.nn.attention.sdpa_kernel), or flex (FlexAttention with block masks, compiled once per shape "
         "outside the timing), or an optional GPU library when installed: flash_attn, flashinfer, xformers "
         "(docs/backends.md). One the device cannot run is an error, never a fallback.")]  # fmt: skip
Compile = Annotated[bool, typer.Option("--compile",
    help="Time torch.compile of the layer instead of eager mode (rows labelled +compile; "
         "compilation happens before the warm-up, outside the timing).")]  # fmt: skip
VerifyFlops = Annotated[bool, typer.Option("--verify-flops",
    help="Also count FLOPs with torch's FlopCounterMode on the plain-math path and check them against "
         "the analytic count of that path (its query blocks score their whole key band, masked; docs/measuring.md).")]  # fmt: skip
HfConfig = Annotated[Optional[str], typer.Option("--hf-config", metavar="PATH", show_default=False,
    help="A Hugging Face config.json (or the folder holding it), read without transformers: the model's shape, "
         "attention (KV heads, MLA) and layer kinds replace --preset; its own attention is the default variant.")]  # fmt: skip
MeasureTp = Annotated[Optional[str], typer.Option("--tp", metavar="T", show_default=False,
    help="Measure the layer sharded over T ranks with torch.distributed (Megatron-style heads; gloo on cpu, NCCL on "
         "cuda with one GPU per rank), started here, or joined under torchrun (T defaults to its world size).")]  # fmt: skip
TpTimeout = Annotated[float, typer.Option("--tp-timeout", metavar="SECONDS",
    help="With --tp: a rank silent this long (hung, or blocked on a dead peer) ends the run (exit 3).")]  # fmt: skip
Tp = Annotated[str, typer.Option("--tp", metavar="T",
    help="Tensor-parallel degree: bytes per GPU, each holding max(1, n_kv_heads / T) KV heads (MLA's latent: all of it).")]  # fmt: skip
KvScales = Annotated[Optional[str], typer.Option("--kv-scales", show_default=False,
    help="Scales of an fp8/int8 cache, float32 each: per-tensor (one per layer for K and V; fp8's default) or "
         "per-token-head (one per token per cached vector; int8's default). Counted in kv_scale_bytes.")]  # fmt: skip
Budget = Annotated[Optional[str], typer.Option("--budget", metavar="SIZE", show_default=False,
    help="Memory per GPU (80GiB = 80·2^30 bytes, 80GB = 80·10^9): whether each cache fits, the longest context at "
         "each --batch and the largest batch at each --seq-len that fit.")]  # fmt: skip
IncludeWeights = Annotated[bool, typer.Option("--include-weights",
    help="Count the model's parameters (from the config: dense and MoE) at --weight-dtype, split over --tp, "
         "against --budget.")]  # fmt: skip
WeightDtype = Annotated[str, typer.Option("--weight-dtype", help="Storage dtype of the weights for --include-weights.")]
Weights = Annotated[Optional[str], typer.Option("--weights", metavar="DIR_OR_FILE", show_default=False,
    help="Measure a real layer instead of VARIANTs: a local Hugging Face checkpoint (a folder with config.json and "
         "*.safetensors, sharded or not, or one .safetensors file beside its config.json). Llama/Mistral/Qwen2-style "
         "GQA and DeepSeek-V2/V3 MLA; nothing is downloaded.")]  # fmt: skip
LayerIndex = Annotated[str, typer.Option("--layer",
    help="With --weights: the layer to load (0-based), a comma list, or all.")]  # fmt: skip
INPUTS_HELP = ("hidden states to feed the layer (tensor hidden_states of shape (batch, seq, d_model), positions "
               "0..seq-1); the rows take batch and seq-len from it. Default: the checkpoint's token embeddings of "
               "seeded random token ids through the layer's input RMSNorm.")  # fmt: skip
Inputs = Annotated[Optional[str], typer.Option("--inputs", metavar="FILE.safetensors", show_default=False,
    help=f"With --weights: {INPUTS_HELP}")]  # fmt: skip
SaveIO = Annotated[Optional[str], typer.Option("--save-io", metavar="FILE.safetensors", show_default=False,
    help="With --weights: write the first prefill row's attention input and output as safetensors (input, output in "
         "the run dtype, output_float64: the reference).")]  # fmt: skip


Columns = Annotated[Optional[str], typer.Option("--columns", metavar="NAMES", show_default=False,
    help="The table's columns, by their schema names (docs/columns.md): a comma list, or all. \\[default: the "
         "command's view, lowest-priority columns dropped to fit the terminal and named in the caption]")]  # fmt: skip
Wide = Annotated[bool, typer.Option("--wide", help="Show every column (as --columns all), however wide the table.")]
Markdown = Annotated[Optional[str], typer.Option("--markdown", metavar="PATH", show_default=False,
    help="Also write the table as GitHub-flavoured markdown to PATH ('-' for stdout; the table then goes to stderr).")]  # fmt: skip


def _view_options(command):
    """Give a command --columns, --wide and --markdown, declared once here: the wrapper checks them
    before the command runs (a bad name exits 2 before any work) and hands them to report.emit."""
    import functools
    import inspect

    sig = inspect.signature(command, eval_str=True)
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
             for name, kind, default in (("columns", Columns, None), ("wide", Wide, False), ("markdown", Markdown, None))]  # fmt: skip

    @functools.wraps(command)
    def wrapper(*args, columns=None, wide=False, markdown=None, **kwargs):
        display = dataclasses.replace(report.parse_columns(columns, wide), markdown=markdown)
        token = report.DISPLAY.set(display)
        try:
            return command(*args, **kwargs)
        finally:
            report.DISPLAY.reset(token)

    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), *extra])
    wrapper.__annotations__ = {**command.__annotations__, "columns": Columns, "wide": Wide, "markdown": Markdown}
    return wrapper


def _variants(args: Optional[list[str]], default: list[str], preset, paths: bool = False):
    """Specs of the VARIANT arguments; with `paths`, a family with several computation paths
    (mla: naive and absorbed) gives one spec per path unless the argument picks one."""
    if paths:
        return [s for v in (args or default) for s in presets.parse_variant_paths(v, preset)]
    return [presets.parse_variant(v, preset) for v in (args or default)]


def _layers(layers: Optional[str], preset, default: Optional[int] = None) -> int:
    if layers is None:
        return preset.n_layers if default is None else default
    from .spec import MAX_LAYERS

    n = parse_positive_int(layers, "--layers")
    if n > MAX_LAYERS:  # a hybrid's kinds are counted per period, but rows still list each kind: keep it sane
        raise InputError("--layers", f"{n:,} layers is more than attncli handles ({MAX_LAYERS:,})")
    return n


def _preset(preset: Optional[str], hf_config: Optional[str]):
    """The preset named by --preset, or the model a --hf-config file describes."""
    if hf_config is not None:
        if preset is not None:
            raise InputError("--hf-config", "give --preset or --hf-config, not both")
        from . import hfconfig

        return hfconfig.load(hf_config)
    return presets.load_preset(preset)


def _defaults(p, fallback: list[str]) -> list[str]:
    """kv-memory's variants when none is named: a model's own attention (serving.py sizes its
    layer kinds), else the command's defaults."""
    return [p.model.attention] if p.model is not None else fallback


def _check_outputs(outputs: dict, preset=None, hf_config=None, variants=None, weights=None, inputs=None,
                   report=None) -> None:  # fmt: skip
    """Every output path checked before any work (output.check), against each other and the inputs."""
    named = [("the --preset file", preset), ("the --hf-config file", hf_config), ("the checkpoint", weights),
             ("the --inputs file", inputs), ("the report being read", report)]  # fmt: skip
    named += [("a VARIANT file", v) for v in variants or []]
    from .report import markdown_output  # (`report` here is the CSV being read)

    output.check({**outputs, **markdown_output()}, named)


STACK_FAMILIES = {"swa", "linear", "hybrid"}  # what prices sliding-window and linear layers


def _model_variants(p, variants: Optional[list[str]], fallback: list[str], command: str) -> list[str]:
    """flops/bench/compare variants: those named; else a model's own layers (its attention, or a
    stack of its layer kinds, presets.model_variant), else the command's defaults. A model with
    sliding-window or linear layers is refused rather than priced as full attention when this build
    lacks the stack families, or when a named variant would stand for every layer alike."""
    if p.model is None or set(p.model.layer_types) == {"full"}:
        return variants or ([p.model.attention] if p.model is not None else fallback)
    from .registry import FAMILIES

    where = p.path or p.name
    unpriced = [k for k in ("chunked", "mamba", "none") if k in p.model.layer_types or (k == "mamba" and p.model.parallel_mamba)]
    if unpriced:
        raise InputError(where, f"{command}: the model has {p.model.describe()} layers; attncli does not price "
                         f"{' or '.join(unpriced)} layers", "kv-memory sizes every layer kind")  # fmt: skip
    if variants:
        raise InputError(where, f"{command}: the model has {p.model.describe()} layers, which one named variant "
                         "would price alike", "name no variant to use the model's own layers")  # fmt: skip
    if not STACK_FAMILIES <= set(FAMILIES):
        raise InputError(where, f"{command}: the model has {p.model.describe()} layers, and this build prices "
                         "only full attention layers", "kv-memory sizes every layer kind")  # fmt: skip
    return [presets.model_variant(p)]


# ------------------------------------------------------------------------------------------------
# analytic commands (no torch)


@app.command("kv-memory")
@_view_options
def kv_memory(
    variants: Annotated[Optional[list[str]], typer.Argument(help=VARIANT_HELP + " \\[default: mha mqa gqa; a model's own attention]", show_default=False)] = None,
    preset: Preset = None, hf_config: HfConfig = None, seq_len: SeqLen = "1024", batch: Batch = "1",
    layers: Layers = None, dtype: KvDtype = "bfloat16", tp: Tp = "1", kv_scales: KvScales = None,
    budget: Budget = None, include_weights: IncludeWeights = False, weight_dtype: WeightDtype = "bfloat16",
    per_layer: PerLayer = False, csv: Csv = None, json: Json = None,
):  # fmt: skip
    """KV-cache bytes per GPU for batch × seq-len tokens over a model's layers (analytic, no torch).

    Sliding-window layers hold at most their window, linear layers a constant state; --tp splits
    KV heads over GPUs; fp8/int8 add their scales; --budget finds what fits."""
    from . import serving

    _check_outputs({"--csv": csv, "--json": json}, preset=preset, hf_config=hf_config, variants=variants)
    p = _preset(preset, hf_config)
    specs = _variants(variants, _defaults(p, ["mha", "mqa", "gqa"]), p)
    seq_lens, batches = parse_int_list(seq_len, "--seq-len"), parse_int_list(batch, "--batch")
    n_layers, dt = _layers(layers, p), parse_dtype(dtype)
    plan = serving.Plan(
        storage=serving.Storage.of(dt, kv_scales and kv_scales.strip().lower()), tp=parse_positive_int(tp, "--tp"),
        budget=parse_bytes(budget, "--budget") if budget is not None else None,
        weight_dtype=parse_dtype(weight_dtype, "--weight-dtype") if include_weights else None,
    )  # fmt: skip
    own = presets.build_spec(p.model.attention, p, {}, p.name) if p.model is not None else None
    out = [r for L in seq_lens for b in batches for s in specs
           for r in rows.serving_rows(s, p, L, b, n_layers, plan, per_layer,
                                      kv_heads_from=p.model.kv_heads_from if s == own else None)]  # fmt: skip
    notes = []  # what the rows cannot tell; the rows' own notes are views.py's
    limit = p.model.max_position_embeddings if p.model is not None else None
    if limit and any((r.get("max_seq_len") or 0) > limit for r in out):
        notes.append(f"max seq len beyond the model's max_position_embeddings ({limit:,} tokens): memory is not the limit")
    report.emit(out, "kv-memory", notes=notes, csv_path=csv, json_path=json)


@app.command("flops")
@_view_options
def flops(
    variants: Annotated[Optional[list[str]], typer.Argument(help=VARIANT_HELP + " \\[default: mha mqa gqa]", show_default=False)] = None,
    preset: Preset = None, hf_config: HfConfig = None, seq_len: SeqLen = "1024", batch: Batch = "1",
    layers: Layers = None, mode: Mode = "prefill", dtype: KvDtype = "bfloat16", per_layer: PerLayer = False,
    csv: Csv = None, json: Json = None,
):  # fmt: skip
    """Analytic matmul FLOPs (projections + attention), the block's FFN for scale, and KV bytes.

    One multiply-add = 2 FLOPs; a causal prefill of n tokens scores n(n+1)/2 query–key pairs
    (Σ min(i+1, W) with a window W); decode scores one new token against the cache and itself
    (seq-len + 1 keys, at most W). Position encodings count as elementwise FLOPs."""
    _check_outputs({"--csv": csv, "--json": json}, preset=preset, hf_config=hf_config, variants=variants)
    p = _preset(preset, hf_config)
    specs = _variants(_model_variants(p, variants, ["mha", "mqa", "gqa"], "flops"), [], p, paths=True)
    seq_lens, batches, modes = parse_int_list(seq_len, "--seq-len"), parse_int_list(batch, "--batch"), parse_modes(mode)
    n_layers, dt = _layers(layers, p), parse_dtype(dtype)
    out = [r for m in modes for L in seq_lens for b in batches for s in specs
           for r in rows.analytic_rows(s, p, Shape(m, L, b), n_layers, dt, per_layer=per_layer)]  # fmt: skip
    report.emit(out, "flops", csv_path=csv, json_path=json)


@app.command("presets")
@_view_options
def list_presets(csv: Csv = None, json: Json = None):
    """The shipped presets (sizes and models) and the variant families."""
    report.check_outputs(csv, json)
    out = []
    for name, p in sorted(((n, presets.load_preset(n)) for n in presets.preset_paths()), key=lambda np: np[1].d_model):
        out.append({
            "preset": p.name, "d_model": p.d_model, "n_heads": p.n_heads,
            "head_dim": p.head_dim or p.d_model // p.n_heads, "n_layers": p.n_layers, "d_ff": p.d_ff or 4 * p.d_model,
            "gqa_n_kv_heads": presets.build_spec("gqa", p, {}, name).n_kv_heads,
            "model": f"{presets.build_spec(p.model.attention, p, {}, name).label} · {p.model.describe()}" if p.model else None,
            "description": p.description, "source": p.source,
        })  # fmt: skip
    report.emit(out, "presets", csv_path=csv, json_path=json)


# ------------------------------------------------------------------------------------------------
# measuring commands (torch imported here, after every option has been checked)


SEED_MAX = 2**63 - 1 - 1000  # torch seeds are 64-bit; the inputs and the plain-math weights use seed + 1 … + 1000


def _check_seed(seed: int) -> None:
    if not 0 <= seed <= SEED_MAX:
        shown = f"{seed:,}" if abs(seed) < 10**30 else f"a {len(str(abs(seed)))}-digit number"
        raise InputError("--seed", f"{shown} is outside 0 … {SEED_MAX:,}")


def _check_run_options(device: str, dtype: str, threads: Optional[str], min_time: float, seed: int = 0):
    """Validate the measuring options without torch: bad input fails before the slow import."""
    _check_seed(seed)
    from .measure.device import check_device_name

    check_device_name(device)
    if dtype.strip().lower() != "auto":
        dtype = parse_dtype(dtype)
        if dtype not in COMPUTE_DTYPES:
            raise InputError("--dtype", f"{dtype} is a storage format, not a compute dtype", f"choices: auto, {', '.join(COMPUTE_DTYPES)}")
    import math

    if not math.isfinite(min_time):
        raise InputError("--min-time", f"{min_time} is not a finite number of seconds")
    if min_time < 0:
        raise InputError("--min-time", f"{min_time} must not be negative")
    n_threads = None if threads is None else parse_positive_int(threads, "--threads")
    _warn_threads(n_threads)
    return dtype, n_threads


def _cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _warn_threads(n_threads: Optional[int]) -> None:
    """More threads than cores: the threads share cores and the timings measure the contention."""
    cores = _cores()
    if n_threads and n_threads > cores:
        sys.stderr.write(f"attncli: warning: --threads {n_threads} is more than the {cores} CPU core"
                         f"{'s' if cores != 1 else ''} this process can use; the threads will share cores and "
                         "the timings measure that contention\n")  # fmt: skip


def _preflight(work, device: str, dtype: str, force: bool, settings=None) -> None:
    """Refuse work that cannot fit (exit 3) before building tensors. On an explicit --device cpu
    this runs before torch is imported, so a hopeless request fails in a fraction of a second."""
    from . import preflight

    if force:
        return
    if settings is None:
        if device.strip().lower() != "cpu":
            return  # checked once the device is known
        run_dtype = "float32" if dtype.strip().lower() == "auto" else dtype
        for spec, shape in work:
            preflight.check(spec, shape, run_dtype, "cpu")
        return
    free = preflight.device_available_bytes(settings.device)
    for spec, shape in work:
        preflight.check(spec, shape, settings.dtype, settings.device.type, device_free=free)


def _settings(device: str, dtype: str, seed: int, threads: Optional[int], min_time: float, **options):
    """Resolve the device (exit 3 when absent) and the auto dtype; set the CPU threads."""
    import torch

    from .measure.bench import Settings
    from .measure.device import resolve_device
    from .measure.stack import measure_model

    dev = resolve_device(device)
    if dtype.strip().lower() == "auto":
        dtype = {"cuda": "bfloat16", "mps": "float16"}.get(dev.type, "float32")
    if threads:
        torch.set_num_threads(threads)
    elif dev.type == "cpu":  # torch's own count, lowered to the cores other processes leave free
        from .measure import load

        own, free = torch.get_num_threads(), load.free_cores_now()
        chosen = load.default_threads(own, free)
        if chosen < own:
            torch.set_num_threads(chosen)
            options.update(threads_default=own, free_cores_start=round(free, 2))
    return Settings(device=dev, dtype=dtype, seed=seed, min_run_time=min_time, **options)


def _with_peak(settings):
    """The settings with the peaks `attncli peak` cached for their device, dtype, torch and thread
    count. Without a cached peak the roofline columns stay empty and the caption says how to fill
    them: measuring takes seconds, more than a quick compare should spend unasked."""
    import dataclasses

    from .measure.peak import current_key, load_cached

    peak = load_cached(current_key(settings.device, settings.dtype))
    if peak is None:
        return settings
    source = f"attncli peak, {peak.measured_at}{', noisy' if peak.noisy else ''}"
    return dataclasses.replace(settings, peak_gflops=peak.gflops, peak_gbps=peak.gbps, peak_source=source)


def _measure(variants, default, preset, seq_len, batch, mode, device, dtype, seed, threads, min_time, force, view,
             csv, json, layers=None, per_layer=False, hf_config=None, backend="auto", compile_=False,
             verify_flops=False, real: Optional[dict] = None, tp: Optional[str] = None,
             tp_timeout: float = 300.0):  # fmt: skip
    real = real or {}
    _check_outputs({"--csv": csv, "--json": json, "--save-io": real.get("save_io")}, preset=preset,
                   hf_config=hf_config, variants=variants, weights=real.get("weights"), inputs=real.get("inputs"))  # fmt: skip
    seq_lens, batches, modes = parse_int_list(seq_len, "--seq-len"), parse_int_list(batch, "--batch"), parse_modes(mode)
    from .spec import HybridSpec

    if real.get("weights"):
        if hf_config:
            raise InputError("--hf-config", "cannot be combined with --weights", "the checkpoint's config.json gives the shape")
        p, jobs = _weights_jobs(variants, preset, seq_len, batch, seq_lens, batches, modes, real)
        n_layers = _layers(layers, p, default=1)
    else:
        for option, value in (("--layer", real.get("layer", "0") != "0"), ("--inputs", real.get("inputs")),
                              ("--save-io", real.get("save_io"))):  # fmt: skip
            if value:
                raise InputError(option, "needs --weights DIR",
                                 "it picks a layer, inputs or outputs of a real checkpoint")  # fmt: skip
        p = _preset(preset, hf_config)
        specs = _variants(_model_variants(p, variants, default, view), [], p, paths=True)
        # One layer, as bench always measured; a stack has no single layer to stand for it, so with a
        # stack among the variants every row is a model of the preset's n_layers (unless --layers).
        n_layers = _layers(layers, p, default=p.n_layers if any(isinstance(s, HybridSpec) for s in specs) else 1)
        jobs = [(s, Shape(m, L, b), None) for m in modes for L in seq_lens for b in batches for s in specs]
    dtype, threads = _check_run_options(device, dtype, threads, min_time, seed)
    from .measure import tp as tpm  # torch-free until a group starts

    tp_degree = tpm.prepare(tp, tp_timeout, [s for s, _, _ in jobs], device, weights=real.get("weights"),
                            compile_=compile_, verify_flops=verify_flops)  # fmt: skip
    from .measure.backend import check_backend_name

    backend = check_backend_name(backend)
    work = [(s, shape) for s, shape, _ in jobs]
    # Each distinct layer kind is measured alone, so the pre-flight checks the kinds.
    kinds = [(k, shape) for s, shape in work for k in (s.layers if isinstance(s, HybridSpec) else (s,))]
    _preflight(kinds, device, dtype, force)
    settings = _with_peak(_settings(device, dtype, seed, threads, min_time, backend=backend, compile=compile_,
                                    verify_flops=verify_flops))  # fmt: skip
    if device.strip().lower() != "cpu":  # an explicit cpu was checked above, before torch
        _preflight(kinds, device, dtype, force, settings)
    from .measure.oom import measure_or_oom
    from .measure.stack import measure_jobs

    done: list[dict] = []
    interrupted = False
    with tpm.group_or_none(tp_degree, settings, tp_timeout, threads) as group, _progress(len(work)) as advance:
        measure = group.measure if group is not None else measure_or_oom  # --tp: the layer sharded over the ranks
        try:  # each shape's rows timed together, in rounds (not under --tp: the ranks time each layer together)
            done, interrupted = measure_jobs(jobs, p, settings, n_layers, per_layer, memo={}, measure=measure,
                                             advance=advance, interleave=group is None,
                                             describe=advance.describe)  # fmt: skip
        except (KeyboardInterrupt, signals.Interrupted):
            interrupted = True
    signals.ignore_further()  # from here a signal is recorded, not raised: the rows get written first
    if view == "compare":
        rows.add_ratios(done)
    rows.drop_private(done)
    if done and not tpm.is_leader():  # torchrun's other ranks measured with rank 0; it alone reports
        return
    if done:
        report.emit(done, view, csv_path=csv, json_path=json)
    if verify_flops and any(r.get("flops_match") is False for r in done):
        bad = ", ".join(f"{r['label']} {r['mode']} s={r['seq_len']}" for r in done if r.get("flops_match") is False)
        _fail(f"--verify-flops: FlopCounterMode disagrees with the analytic count for {bad}")
        raise typer.Exit(EXIT_CHECK_FAILED)
    if interrupted or signals.received() is not None:
        kept = "; the finished rows are shown and written" if done else ""
        typer.echo(f"attncli: interrupted after {len(done)} of {len(work)} rows ({signals.describe()}){kept}", err=True)
        raise typer.Exit(signals.exit_code(EXIT_INTERRUPTED))


def _weights_jobs(variants, preset, seq_len, batch, seq_lens, batches, modes, real):
    """`--weights`: the checkpoint's own layer(s), as (spec, shape, source) jobs."""
    from .weights import rows_for_checkpoint

    if variants:
        raise InputError("--weights", "measures the checkpoint's own layer: drop the VARIANT arguments",
                         "attncli convert DIR --to ... measures converted variants of it")  # fmt: skip
    if preset:
        raise InputError("--preset", "cannot be combined with --weights", "the checkpoint's config.json gives the shape")
    shape_given = seq_len != "1024" or batch != "1"  # the options' defaults
    return rows_for_checkpoint(real["weights"], real.get("layer", "0"), real.get("inputs"), real.get("save_io"),
                               modes, seq_lens, batches, shape_given)  # fmt: skip


class _progress:
    """A transient Rich progress bar on stderr, shown only when stderr is a terminal. `with
    _progress(n) as advance`: `advance(what)` counts a row as it starts, `advance.describe(what)`
    only changes the text (the timing rounds)."""

    def __init__(self, total: int):
        self.total, self.bar = total, None

    def __enter__(self):
        if sys.stderr.isatty() and self.total > 1:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), transient=True, console=report.console(stderr=True))  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task("", total=self.total)
        self.count = 0

        def advance(description: str):
            if self.bar is not None:
                from rich.markup import escape

                self.bar.update(self.task, completed=self.count, description=escape(description))  # user labels
            self.count += 1

        def describe(description: str):
            if self.bar is not None:
                from rich.markup import escape

                self.bar.update(self.task, description=escape(description))

        advance.describe = describe
        return advance

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


@app.command("bench")
@_view_options
def bench(
    variants: Annotated[Optional[list[str]], typer.Argument(help=VARIANT_HELP + " \\[default: mha]", show_default=False)] = None,
    preset: Preset = None, hf_config: HfConfig = None, seq_len: SeqLen = "1024", batch: Batch = "1",
    mode: Mode = "prefill", device: Device = "auto", dtype: RunDtype = "auto", seed: Seed = 0,
    threads: Threads = None, min_time: MinTime = 0.2, force: Force = False, layers: BenchLayers = None,
    per_layer: PerLayer = False, backend: Backend = "auto", compile: Compile = False,
    verify_flops: VerifyFlops = False, csv: Csv = None, json: Json = None,
    weights: Weights = None, layer: LayerIndex = "0", inputs: Inputs = None, save_io: SaveIO = None,
    tp: MeasureTp = None, tp_timeout: TpTimeout = 300.0,
):  # fmt: skip
    """Measure one layer of each variant: latency, GFLOP/s, real KV-cache bytes, output error.

    The error is against a float64 plain-math reference on the CPU with the same weights and
    inputs; the plain-math path in the run dtype is reported beside it. With --layers N (or a
    hybrid, or a model whose layers differ), each distinct layer kind is measured once and the model
    totals count × that layer. --weights measures a checkpoint's own layer with its real weights."""
    real = {"weights": weights, "layer": layer, "inputs": inputs, "save_io": save_io}
    _measure(variants, ["mha"], preset, seq_len, batch, mode, device, dtype, seed, threads, min_time, force, "bench",
             csv, json, layers, per_layer, hf_config, backend=backend, compile_=compile,
             verify_flops=verify_flops, real=real, tp=tp, tp_timeout=tp_timeout)  # fmt: skip


@app.command("compare")
@_view_options
def compare(
    variants: Annotated[Optional[list[str]], typer.Argument(help=VARIANT_HELP + " \\[default: mha gqa]", show_default=False)] = None,
    preset: Preset = None, hf_config: HfConfig = None, seq_len: SeqLen = "1024", batch: Batch = "1",
    mode: Mode = "prefill", device: Device = "auto", dtype: RunDtype = "auto", seed: Seed = 0,
    threads: Threads = None, min_time: MinTime = 0.2, force: Force = False, layers: BenchLayers = None,
    per_layer: PerLayer = False, backend: Backend = "auto", compile: Compile = False,
    verify_flops: VerifyFlops = False, csv: Csv = None, json: Json = None,
    weights: Weights = None, layer: LayerIndex = "0", inputs: Inputs = None, save_io: SaveIO = None,
    tp: MeasureTp = None, tp_timeout: TpTimeout = 300.0,
):  # fmt: skip
    """Bench every variant on identical shapes and seeds, with ratios against the first.

    speed-up = the first variant's latency / this one's; KV ratio and FLOP ratio = this one's / the first's.
    --weights compares a checkpoint's own layers (--layer 0,5) or MLA paths, with real weights."""
    real = {"weights": weights, "layer": layer, "inputs": inputs, "save_io": save_io}
    _measure(variants, ["mha", "gqa"], preset, seq_len, batch, mode, device, dtype, seed, threads, min_time, force,
             "compare", csv, json, layers, per_layer, hf_config, backend=backend, compile_=compile,
             verify_flops=verify_flops, real=real, tp=tp, tp_timeout=tp_timeout)  # fmt: skip


@app.command("convert")
@_view_options
def convert_cmd(
    weights: Annotated[str, typer.Argument(metavar="DIR", show_default=False,
        help="A local Hugging Face checkpoint with MHA/GQA layers (Llama/Mistral/Qwen2): a folder with config.json "
             "and *.safetensors, or one .safetensors file beside its config.json.")],
    to: Annotated[Optional[list[str]], typer.Option("--to", show_default=False,
        help="A target, repeatable: gqa:n_kv_heads=G (mean-pool the K/V heads within groups), mqa (G = 1), or "
             "mla:kv_lora_rank=R\\[,rope_dims=P] (MHA2MLA: RoPE kept on the P/2 highest-frequency pairs per head, P "
             "defaulting to head_dim/8; joint SVD of the other key rows and the values). \\[default: gqa at every "
             "n_kv_heads dividing the checkpoint's]")] = None,
    layer: Annotated[str, typer.Option("--layer", help="The layer to convert (0-based).")] = "0",
    layers: Annotated[Optional[str], typer.Option("--layers", show_default=False,
        help="Several layers, errors averaged (max abs: the largest): all, or a comma list. Replaces --layer.")] = None,
    seq_len: Annotated[str, typer.Option("--seq-len", "-s", help="Tokens of input (positions 0..seq-len-1, causal).")] = "128",
    batch: Annotated[str, typer.Option("--batch", "-b", help="Sequences of input.")] = "1",
    inputs: Annotated[Optional[str], typer.Option("--inputs", metavar="FILE.safetensors", show_default=False,
        help=INPUTS_HELP[0].upper() + INPUTS_HELP[1:])] = None,
    dtype: Annotated[str, typer.Option("--dtype", "-d", help="Compute dtype of both layers: float64 or float32.")] = "float64",
    kv_dtype: Annotated[str, typer.Option("--kv-dtype",
        help=f"Storage dtype for the KV bytes columns: {', '.join(DTYPE_BYTES)}, or auto (the checkpoint's).")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed for the input token ids (same seed, same numbers).")] = 0,
    threads: Threads = None, csv: Csv = None, json: Json = None,
):  # fmt: skip
    """Convert a real MHA/GQA layer to fewer KV heads (mean-pooling) or to a latent (MHA2MLA) and
    measure the output error against the original layer, next to the KV bytes and parameters saved.

    Both layers run the plain-math path on the same inputs (the checkpoint's embeddings of seeded
    random tokens through the layer's input norm, or --inputs). No fine-tuning: the figures are
    those of the converted weights as they are."""
    from . import convert
    from .options import parse_positive_int as positive
    from .weights import Checkpoint, inputs_shape, parse_layers

    _check_outputs({"--csv": csv, "--json": json}, weights=weights, inputs=inputs)
    ckpt = Checkpoint(weights, option="DIR")
    convert.check_source(ckpt)
    _check_seed(seed)
    cfg = ckpt.config
    layer_option = "--layers" if layers is not None else "--layer"
    chosen = parse_layers(layers if layers is not None else layer, cfg.n_layers, layer_option)
    targets = [convert.parse_target(t, cfg) for t in to] if to else convert.default_targets(cfg)
    if not targets:
        raise InputError("--to", f"no target given, and {cfg.model_type} has 1 KV head already",
                         "e.g. --to mla:kv_lora_rank=16")  # fmt: skip
    run_dtype = parse_dtype(dtype)
    if run_dtype not in ("float64", "float32"):
        raise InputError("--dtype", f"{run_dtype} is not float64 or float32", "the SVD and the error need one of them")
    store = cfg.torch_dtype or "bfloat16" if kv_dtype.strip().lower() == "auto" else parse_dtype(kv_dtype, "--kv-dtype")
    if inputs:
        if seq_len != "128" or batch != "1":
            raise InputError("--inputs", "the file fixes batch and seq-len", "drop -s/--seq-len and -b/--batch")
        B, T = inputs_shape(inputs, cfg.d_model)
    else:
        B, T = positive(batch, "--batch"), positive(seq_len, "--seq-len")
    for i in chosen:
        ckpt.check_layer(i, layer_option)
        if not inputs:
            ckpt.check_inputs(i)
    n_threads = None if threads is None else positive(threads, "--threads")
    _warn_threads(n_threads)
    from . import preflight

    preflight.check_convert(ckpt.specs(chosen[0])[0], Shape("prefill", T, B), run_dtype)  # before torch
    import torch

    if n_threads:
        torch.set_num_threads(n_threads)
    with _progress(len(chosen)) as advance:
        out = convert.convert_rows(ckpt, chosen, targets, batch=B, seq_len=T, seed=seed, dtype=run_dtype,
                                   kv_dtype=store, inputs=inputs, advance=advance)  # fmt: skip
    report.emit(out, "convert", csv_path=csv, json_path=json)


@app.command("sweep")
@_view_options
def sweep_cmd(
    variants: Annotated[Optional[list[str]], typer.Argument(help=VARIANT_HELP + " \\[default: mha gqa]", show_default=False)] = None,
    preset: Preset = None,
    seq_len: Annotated[str, typer.Option("--seq-len", "-s", help="Sequence lengths in tokens: a doubling range 128:32768 or 1k:32k "
        "(an end doubling misses is kept: 100:1000 ends 800, 1000), or a comma list (k = 1,024).")] = "128:32768",
    batch: Batch = "1",
    mode: Annotated[str, typer.Option("--mode", "-m", help="Comma list of prefill, decode (or both).")] = "prefill,decode",
    layers: Layers = None,
    dtype: Annotated[str, typer.Option("--dtype", "-d", help="Analytic sweeps: KV storage dtype (auto = bfloat16). "
        "With --measure: compute dtype (auto = float32 on cpu, bfloat16 on cuda, float16 on mps).")] = "auto",
    measure: Annotated[bool, typer.Option("--measure", help="Also measure every combination (latency, error, cache bytes) on --device; one layer each.")] = False,
    device: Device = "auto", seed: Seed = 0, threads: Threads = None, min_time: MinTime = 0.2, force: Force = False,
    csv: Annotated[Optional[str], typer.Option("--csv", metavar="PATH", show_default=False,
        help="CSV file the rows are appended to as they finish ('-' streams them to stdout).")] = None,
    json: Json = None,
    plot: Annotated[Optional[str], typer.Option("--plot", metavar="PATH", show_default=False,
        help="Save log-log panels (KV bytes, FLOPs, latency vs seq-len) as .png, .svg or .pdf (needs the plot extra).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an existing --csv file: skip the combinations it holds.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --csv file instead of refusing.")] = False,
    tp: Annotated[Optional[str], typer.Option("--tp", metavar="T", show_default=False,
        help="Tensor-parallel degrees (8, 1,2 or 1:8), a key of each row. Analytic: the cache per GPU, as kv-memory "
             "--tp sizes it. With --measure: each layer sharded over T ranks started here (torch.distributed).")] = None,
    tp_timeout: TpTimeout = 300.0,
    hf_config: HfConfig = None, kv_scales: KvScales = None,
):  # fmt: skip
    """Every combination of variants × modes × seq-lens × batches, analytic (instant) or --measure'd.

    Rows are appended to --csv as they finish, so Ctrl-C (exit 130) keeps every finished row and
    --resume completes the file later; the table printed at the end is what `attncli report` prints."""
    from . import sweep
    from .plot import check_plot_path, render

    _check_outputs({"--csv": csv, "--json": json, "--plot": plot}, preset=preset, hf_config=hf_config, variants=variants)
    if resume and (not csv or csv == "-"):
        raise InputError("--resume", "needs --csv PATH, the file to continue")
    if resume and overwrite:
        raise InputError("--resume/--overwrite", "choose one")
    if plot:
        check_plot_path(plot)
    p = _preset(preset, hf_config)
    specs = _variants(variants, _defaults(p, ["mha", "gqa"]), p, paths=True)
    seq_lens, batches, modes = parse_int_list(seq_len, "--seq-len"), parse_int_list(batch, "--batch"), parse_modes(mode)
    from .measure import tp as tpm  # torch-free until a group starts

    plans = None  # analytic sweeps of a model, at TP > 1 or with a quantised cache: kv-memory's sizing per row
    if not measure:
        dt = parse_dtype("bfloat16" if dtype.strip().lower() == "auto" else dtype)
        plans = rows.sweep_plans(p, dt, parse_int_list(tp, "--tp") if tp is not None else None,
                                 kv_scales and kv_scales.strip().lower())  # fmt: skip
    elif kv_scales is not None:
        raise InputError("--kv-scales", "sizes the cache of an analytic sweep", "drop --measure")
    degrees = list(plans) if plans is not None else tpm.sweep_degrees(tp, tp_timeout, measure, specs, device)
    combos = [sweep.Combination(s, Shape(m, L, b), t) for t in degrees for m in modes for L in seq_lens for b in batches
              for s in specs]  # fmt: skip
    if measure:
        if layers is not None:
            raise InputError("--layers", "a measured sweep measures one layer", "drop --layers or --measure")
        dt, threads = _check_run_options(device, dtype, threads, min_time, seed)
        n_layers = 1
    else:
        n_layers, dt = _layers(layers, p), parse_dtype("bfloat16" if dtype.strip().lower() == "auto" else dtype)
    if plans is not None:
        analytic_keys = {k for c in combos[:len(specs)] for k in rows.sweep_row(c.spec, p, c.shape, n_layers, plans[c.tp])}
        columns = sweep.header(analytic_keys, measured=False)
    else:
        analytic_keys = {k for s in specs for k in rows.analytic_row(s, p, combos[0].shape, n_layers, "float32")}
        columns = sweep.header(analytic_keys, measured=measure, tp=degrees != [None])
    target = sweep.CsvTarget(csv)  # locked from here: a second sweep on this file exits 3
    try:
        all_rows, todo, count, interrupted = _sweep(p, combos, columns, target, measure, n_layers, dt, device, seed,
                                                    threads, min_time, force, resume, overwrite, tp_timeout, plans)  # fmt: skip
    finally:
        target.close()  # the lock goes; a file this sweep created and never wrote to goes too
    exports = [("--plot", plot, lambda: render(all_rows, plot)[0])] if plot and all_rows else []
    if all_rows:
        view = report.view_for(all_rows)
        report.emit(all_rows, view, json_path=json, table_to_stderr=csv == "-", more=exports)
    if interrupted or signals.received() is not None:
        kept = f"; {csv} holds every finished row (--resume continues)" if csv and target.regular else ""
        typer.echo(f"attncli: interrupted after {count} of {len(todo)} rows ({signals.describe()}){kept}", err=True)
        raise typer.Exit(signals.exit_code(EXIT_INTERRUPTED))


def _sweep(p, combos, columns, target, measure, n_layers, dt, device, seed, threads, min_time, force, resume,
           overwrite, tp_timeout=300.0, plans=None):  # fmt: skip
    """Run the sweep's combinations into its (locked) CSV: (rows to show, planned, written, interrupted)."""
    from . import sweep
    from .measure import tp as tpm

    settings = None
    if measure:
        settings = _with_peak(_settings(device, dt, seed, threads, min_time))
        dt = settings.dtype
        from .measure.oom import measure_or_oom, oom_row

        from .measure.stack import measure_model
        from .spec import HybridSpec

        memo: dict = {}
        groups = tpm.Groups(settings, tp_timeout, threads)  # one set of ranks at a time, for --tp

        def row_of(c):  # a combination the pre-flight refuses is an oom row, and the sweep goes on
            stack = isinstance(c.spec, HybridSpec)
            try:
                kinds = c.spec.layers if stack else (c.spec,)
                _preflight([(k, c.shape) for k in kinds], str(settings.device), dt, force, settings)
            except ResourceError:
                return oom_row(c.spec, p, c.shape, settings)
            # One layer per row, as bench; a stack is a model of the preset's n_layers, each kind measured once.
            return measure_model(c.spec, p, c.shape, settings, p.n_layers if stack else 1, memo=memo.setdefault(c.tp, {}),
                                 measure=groups.measure_for(c.tp) or measure_or_oom)[-1]  # fmt: skip
    elif plans is not None:
        row_of = lambda c: rows.sweep_row(c.spec, p, c.shape, n_layers, plans[c.tp])  # noqa: E731
    else:
        row_of = lambda c: rows.analytic_row(c.spec, p, c.shape, n_layers, dt)  # noqa: E731
    identity = {"preset": p.name, "dtype": dt, "layers": None if measure else n_layers,
                "device": str(settings.device) if measure else None, "seed": seed if measure else None,
                "kv_scales": next(iter(plans.values())).storage.scales if plans else None}  # fmt: skip
    new_rows: list[dict] = []
    todo = sweep.plan(combos, target, columns, identity, resume=resume, overwrite=overwrite)
    appender = sweep.Appender(target, columns, stdout=sys.stdout, append=resume)
    interrupted = False
    try:
        with _progress(len(todo)) as advance:
            sweep.run(todo, row_of, appender, advance, out=new_rows)
    except (KeyboardInterrupt, signals.Interrupted):
        interrupted = True
    finally:
        signals.ignore_further()  # the rows are on disk; what follows only shows and exports them
        appender.close()
        if measure:
            groups.close()
    all_rows = report.read_rows(target.path) if target.regular else new_rows
    return all_rows, todo, appender.count, interrupted


@app.command("report")
@_view_options
def report_cmd(
    file: Annotated[str, typer.Argument(help="A CSV written by any attncli command (--csv).", show_default=False)],
    plot: Annotated[Optional[str], typer.Option("--plot", metavar="PATH", show_default=False,
        help="Save log-log panels against seq-len as .png, .svg or .pdf (needs the plot extra).")] = None,
    group_by: Annotated[Optional[str], typer.Option("--group-by", metavar="COLUMNS", show_default=False,
        help="Comma list of columns: one table per value, and the plot's lines keyed by them.")] = None,
    csv: Csv = None, json: Json = None,
):  # fmt: skip
    """Re-render a saved CSV as a table (and a plot) without running anything."""
    from .plot import check_plot_path, render

    _check_outputs({"--csv": csv, "--json": json, "--plot": plot}, report=file)
    if plot:
        check_plot_path(plot)
    saved = report.read_rows(file)
    if not saved:
        raise InputError(file, "holds no rows")
    keys = [k.strip() for k in group_by.split(",") if k.strip()] if group_by else []
    present = list(saved[0])
    for k in keys:
        if k not in present:
            from .errors import did_you_mean

            raise InputError("--group-by", f"no column '{k}' in {file}", did_you_mean(k, present))
    view = report.view_for(saved)
    exports = [("--plot", plot, lambda: render(saved, plot, keys or None)[0])] if plot else []
    if keys:  # the files first (output.write_all), then the tables
        groups = [(report.group_title(group, view, keys, value), group)
                  for value, group in report.group_rows(saved, keys).items()]  # fmt: skip
        markdown = report.DISPLAY.get().markdown
        if markdown:
            exports.append(("--markdown", markdown,
                            lambda: "\n".join(report.to_markdown(g, view, title=t) for t, g in groups)))  # fmt: skip
        errors = report.export_errors(saved, csv, json) + output.write_all(exports)
        stderr = "-" in (csv, json, markdown)
        for title, group in groups:
            report.print_table(report.table(group, view, title, width=report.terminal_width(
                sys.stderr if stderr else sys.stdout)), stderr=stderr)  # fmt: skip
        output.raise_first(errors)
    else:
        report.emit(saved, view, csv_path=csv, json_path=json, more=exports)


@app.command("peak")
@_view_options
def peak(
    device: Device = "auto", dtype: RunDtype = "auto", threads: Threads = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Measure again even when a cached figure exists.")] = False,
    csv: Csv = None, json: Json = None,
):  # fmt: skip
    """Measure the device's matmul peak (GFLOP/s) and memory bandwidth (GB/s), and cache them.

    bench and compare put their rows against these figures (% of peak, the roofline bound).
    Cached per device name, dtype, torch version and thread count in $XDG_CACHE_HOME/attncli
    (default ~/.cache/attncli); --refresh measures again."""
    report.check_outputs(csv, json)
    dtype, threads = _check_run_options(device, dtype, threads, 0.0)
    from .measure.peak import cache_path, get_peak

    settings = _settings(device, dtype, 0, threads, 0.0)
    dev = settings.device
    pk, source = get_peak(dev, settings.dtype, refresh=refresh)
    row = {
        "device": str(dev), "device_name": pk.device_name, "dtype": pk.dtype, "threads": pk.threads,
        "torch_version": pk.torch_version, "peak_gflops": pk.gflops, "peak_gbps": pk.gbps,
        "ridge_flops_per_byte": pk.ridge, "matmul_n": pk.matmul_n, "copy_bytes": pk.copy_bytes,
        "measured_at": pk.measured_at, "peak_source": source, "peak_method": pk.method(), "noisy": pk.noisy,
    }  # fmt: skip
    report.emit([row], "peak", notes=[f"cache: {cache_path()}"], csv_path=csv, json_path=json)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="On an error, print the traceback too (accepted anywhere on the line).")] = False,
):
    if version:
        typer.echo(f"attncli {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


# ------------------------------------------------------------------------------------------------
# entry points


def _fail(message: str, debug: bool = False) -> None:
    if debug:
        import traceback

        traceback.print_exc(file=sys.stderr)
    sys.stderr.write(f"attncli: {message}\n")
    sys.stderr.flush()


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; return the exit code. Every error becomes one line on stderr (`--debug` adds
    the traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    signals.install()  # SIGINT, SIGTERM, SIGHUP: finished rows written, one line, 128 + signal
    output.safe_streams()  # a stream that cannot encode '·', '–', '×' gets ASCII stand-ins, never an error
    try:
        return _main(args, debug)
    finally:
        signals.restore()


def _main(args: list[str], debug: bool) -> int:
    try:
        result = app(args=args, prog_name="attncli", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except signals.Interrupted as e:  # before any row was finished (start-up, loading, the pre-flight)
        signals.ignore_further()
        _fail(f"interrupted by {signals.signal_name(e.signum)}")
        return e.exit_code
    except AttncliError as e:
        _fail(e.message, debug)
        return e.exit_code
    except click_exceptions.UsageError as e:
        command = e.ctx.command_path.split(" ", 1)[1:] if e.ctx is not None else []
        where = f"{command[0]}: " if command else ""
        _fail(f"{where}{e.format_message()}".replace("\n", " "), debug)
        return EXIT_INPUT
    except _EXIT as e:
        return e.exit_code
    except _ABORT:
        _fail("interrupted")
        return signals.exit_code(EXIT_INTERRUPTED)
    except BrokenPipeError:
        return 0
    except MemoryError:
        _fail("out of memory: the request is larger than this machine holds (the pre-flight's estimate fell short); "
              "shrink what it names, or see docs/reliability.md", debug)  # fmt: skip
        return EXIT_UNAVAILABLE
    except Exception as e:  # noqa: BLE001 - a bug: still one line, the traceback on request
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        _fail(f"internal error: {type(e).__name__}: {first}; rerun with --debug for the traceback", debug)
        return EXIT_INTERNAL


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
