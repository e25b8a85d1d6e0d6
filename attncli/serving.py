"""A model's KV cache as a server holds it: layer kinds, tensor parallelism, quantised storage and
memory budgets. Pure Python, exact integers.

Conventions (docs/real-models.md):
- Layers declare their own cache (LayerGroup.tokens, LayerGroup.state_elements; the one place
  that says what each kind holds): `full` layers cache every token, `sliding` layers at most
  `window` tokens, `chunked` layers at most `chunk` tokens (Llama 4's chunked local attention:
  min(tokens, chunk)), `linear` layers a constant recurrent state per sequence, `mamba` layers a
  constant convolution + SSM state shaped as vLLM allocates it (spec.MambaLayerSpec), the
  convolution at the state dtype and the SSM part at its own where the model's vLLM hook sets one
  (Nemotron-H: float32), `none` layers (no attention: Nemotron-NAS no-op or linear blocks,
  MLP-only layers) nothing.
- Tensor parallelism of degree t (vLLM's rules): a GPU holds max(1, n_kv_heads / t) KV heads, so
  heads are split while t ≤ n_kv_heads and replicated beyond; t must divide the attention heads,
  and t and n_kv_heads must divide one another. MLA's latent is one vector per token shared by
  every head, so every rank holds all of it. Linear layers split their state heads over t.
- Quantised storage (fp8, int8: one byte per element) needs scales, counted in `kv_scale_bytes`
  as float32: `per-tensor` is one scale per layer for K and one for V (one for MLA's latent), as
  vLLM's k_scale/v_scale (the fp8 default); `per-token-head` is one scale per token for each
  cached vector (the key and the value of each KV head; MLA's latent+RoPE vector), the
  granularity int8 caches use to keep their accuracy (the int8 default). Linear layers' states
  are not quantised: they stay in bfloat16 (vLLM keeps the Mamba-style state at the model dtype,
  its mamba_cache_dtype `auto`, whatever the KV cache dtype), and so does a Mamba layer's
  convolution state; its SSM state keeps the dtype its model sets (LayerGroup.ssm_dtype).
- All figures are per GPU; `batch` sequences each hold `seq_len` tokens; no paging blocks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import registry
from .errors import InputError
from .spec import DTYPE_BYTES, AttentionSpec, HybridSpec, ModelSpec, PresetSpec

SCALE_BYTES = 4  # a float32 scale
SCALE_FORMATS = ("per-tensor", "per-token-head")
DEFAULT_SCALES = {"fp8": "per-tensor", "int8": "per-token-head"}
QUANTISED_STATE_DTYPE = "bfloat16"  # linear layers' state when the KV cache is fp8/int8
MAX_SEARCH_TOKENS = 2**50  # the longest-context search stops here (a petabyte-scale cache per token)


@dataclass(frozen=True)
class Storage:
    """How the cache is stored: element dtype, quantisation scales, the linear layers' state dtype."""

    dtype: str
    scales: str | None  # None for float dtypes; else one of SCALE_FORMATS
    state_dtype: str

    @classmethod
    def of(cls, dtype: str, scales: str | None = None) -> Storage:
        if dtype in DEFAULT_SCALES:
            if scales is not None and scales not in SCALE_FORMATS:
                raise InputError("--kv-scales", f"unknown scale format '{scales}'", f"choices: {', '.join(SCALE_FORMATS)}")
            return cls(dtype, scales or DEFAULT_SCALES[dtype], QUANTISED_STATE_DTYPE)
        if scales is not None:
            raise InputError("--kv-scales", f"{dtype} is stored without scales", "scales apply to --dtype fp8 or int8")
        return cls(dtype, None, dtype)

    def describe(self) -> str:
        """One line for the table caption: what a quantised cache stores beside its bytes."""
        if self.scales is None:
            return ""
        what = ("a float32 scale per layer for K and one for V, one for MLA's latent" if self.scales == "per-tensor"
                else "a float32 scale per token for each cached vector: K and V of each KV head, MLA's latent")  # fmt: skip
        return f"{self.dtype}: 1 byte per element plus {self.scales} scales ({what}) in KV scales"


@dataclass(frozen=True)
class LayerGroup:
    """Layers of one kind, sized for one GPU."""

    kind: str  # full | sliding | chunked | linear | mamba | none | cross
    count: int  # layers of this kind
    label: str  # row label of these layers (`gqa-kv8`, `gqa-kv8-w4096`, `linear-lightning`)
    spec: AttentionSpec | None  # their attention; None for a model's linear layers (ModelSpec.linear)
    window: int | None  # tokens kept, where a window caps them
    elements_per_token: int  # cached elements per token per layer on one GPU
    vectors_per_token: int  # separately scaled vectors per token per layer (per-token-head scales)
    tensors: int  # separately scaled tensors per layer (per-tensor scales): K and V, or MLA's one
    state_elements: int  # recurrent state per layer per sequence on one GPU at Storage.state_dtype (mamba: its conv)
    kv_heads_per_gpu: int | None  # None where the cache is not split by heads (MLA, linear)
    cache_tokens_fn: object = None  # the family's tokens held after t seen (registry `cache_tokens`)
    chunk: int | None = None  # chunked layers: tokens of the current chunk they attend to
    ssm_state_elements: int = 0  # mamba: the SSM (temporal) state per layer per sequence on one GPU
    ssm_dtype: str | None = None  # ...stored at this dtype (spec.MambaLayerSpec.ssm_dtype); None: Storage.state_dtype

    def tokens(self, seq_len: int) -> int:
        """Tokens this kind holds once seq_len tokens have been seen."""
        if self.kind in RECURRENT or self.kind == "none":
            return 0
        held = self.cache_tokens_fn(seq_len) if self.cache_tokens_fn else seq_len
        if self.chunk is not None:
            held = min(held, self.chunk)
        return held if self.window is None else min(held, self.window)

    def describe(self) -> str:
        return {"sliding": f"sliding({self.window})", "chunked": f"chunked({self.chunk})"}.get(self.kind, self.kind)


RECURRENT = ("linear", "mamba")  # kinds that keep a constant state instead of a token cache


@dataclass(frozen=True)
class CacheBytes:
    """Bytes one GPU holds for a cache (all sequences of the batch)."""

    data: int  # K/V (or latent) elements × bytes per element
    scales: int  # quantisation scales
    state: int  # linear and mamba layers' recurrent state

    @property
    def total(self) -> int:
        return self.data + self.scales + self.state


# ---------------------------------------------------------------------------------------------
# tensor parallelism and layer groups


def kv_heads_per_gpu(n_kv_heads: int, tp: int, n_heads: int) -> int:
    """max(1, n_kv_heads / tp), with vLLM's divisibility rules checked."""
    if n_heads % tp:
        raise InputError("--tp", f"{tp} does not divide the {n_heads} attention heads",
                         "tensor parallelism splits the query heads evenly (vLLM requires it)")  # fmt: skip
    if tp <= n_kv_heads:
        if n_kv_heads % tp:
            raise InputError("--tp", f"{tp} does not divide the {n_kv_heads} KV heads", "use a divisor or a multiple of them")
        return n_kv_heads // tp
    if tp % n_kv_heads:
        raise InputError("--tp", f"{tp} is not a multiple of the {n_kv_heads} KV heads",
                         "beyond the KV head count each head is replicated, so TP must be a multiple of it")  # fmt: skip
    return 1


def layer_groups(spec: AttentionSpec, model: ModelSpec | None, layers: int, tp: int = 1) -> list[LayerGroup]:
    """The layers grouped by kind, per GPU: a stack's (hybrid) own layer kinds; else the model's
    kinds with `spec` as its softmax attention (a model preset, --hf-config); else `layers`
    layers of `spec`. Where a model's KV heads vary by layer (Nemotron-NAS block_configs) and
    `spec` is its own attention, each KV head count is its own group."""
    if isinstance(spec, HybridSpec):
        return [group_of(layer, count, tp) for layer, count in spec.kinds(layers)]
    if model is None:
        return [group_of(spec, layers, tp)]
    kinds = _model_kinds(spec, model)
    if layers != model.n_layers:
        if len(kinds) > 1 or model.parallel_mamba:
            raise InputError("--layers", f"{layers} breaks the model's layer pattern ({model.describe()})",
                             "drop --layers to size the whole model")  # fmt: skip
        kinds = [(kinds[0][0], kinds[0][1], layers)]
    groups = []
    for kind, layer_spec, count in kinds:
        if kind == "linear":
            lin = model.linear
            if lin.heads % tp:
                raise InputError("--tp", f"{tp} does not divide the {lin.heads} heads of the linear layers")
            groups.append(LayerGroup("linear", count, f"linear-{lin.kind}", None, None, 0, 0, 0,
                                     lin.state_elements(tp), None))  # fmt: skip
        elif kind == "mamba":
            groups.append(mamba_group(model, count, tp))
        elif kind == "none":
            groups.append(LayerGroup("none", count, "no-attention", None, None, 0, 0, 0, 0, None))
        else:
            window = model.window if kind == "sliding" else None
            group = group_of(layer_spec, count, tp, window=window)
            if kind == "chunked":
                group = dataclasses.replace(group, kind="chunked", chunk=model.chunk, label=f"{group.label}-c{model.chunk}")
            groups.append(group)
    if model.parallel_mamba:  # the attention layers' own Mamba blocks join the model's Mamba layers
        beside = sum(g.count for g in groups if g.spec is not None)
        alone = next((g for g in groups if g.kind == "mamba"), None)
        merged = mamba_group(model, beside + (alone.count if alone else 0), tp)
        groups = [merged if g is alone else g for g in groups] if alone else groups + [merged]
    return groups


def _model_kinds(spec: AttentionSpec, model: ModelSpec) -> list[tuple[str, AttentionSpec, int]]:
    """(kind, its attention spec, layers) in order of first appearance. The model's per-layer KV
    heads apply when `spec` is its own attention (its family, and the KV heads the normaliser
    gave it: the most common count); a named variant stands for every attention layer alike."""
    per_layer = model.layer_kv_heads
    own = per_layer is not None and spec.family in ("mha", "mqa", "gqa") and model.attention == spec.family
    if own:
        counts = [k for k in per_layer if k is not None]
        own = getattr(spec, "n_kv_heads", spec.n_heads) == max(set(counts), key=counts.count)
    order: dict[tuple, list] = {}
    for i, kind in enumerate(model.layer_types):
        kv = per_layer[i] if own and kind not in RECURRENT + ("none",) else None
        key = (kind, kv)
        if key not in order:
            layer_spec = spec if kv is None else _with_kv_heads(spec, kv)
            order[key] = [kind, layer_spec, 0]
        order[key][2] += 1
    return [tuple(v) for v in order.values()]


def _with_kv_heads(spec: AttentionSpec, n_kv: int) -> AttentionSpec:
    """The same attention with `n_kv` KV heads: mha, mqa or gqa as the count says."""
    family = "mha" if n_kv == spec.n_heads else "mqa" if n_kv == 1 else "gqa"
    new = dataclasses.replace(spec, family=family, n_kv_heads=n_kv, label="")
    return dataclasses.replace(new, label=registry.get(family).base_label(new))


def mamba_group(model: ModelSpec, count: int, tp: int) -> LayerGroup:
    """`count` Mamba layers on one of `tp` GPUs: convolution + SSM state (spec.MambaLayerSpec),
    each part at its own dtype."""
    conv, ssm = model.mamba.state_elements(tp)
    return LayerGroup("mamba", count, f"mamba{model.mamba.version}", None, None, 0, 0, 0, conv, None,
                      ssm_state_elements=ssm, ssm_dtype=model.mamba.ssm_dtype)  # fmt: skip


def group_of(spec: AttentionSpec, count: int, tp: int, window: int | None = None) -> LayerGroup:
    """`count` layers of one attention spec on one of `tp` GPUs; `window` (a model's sliding
    layers) caps the tokens they hold, as does a window of the spec itself."""
    family = registry.get(spec.family)
    per_token = family.kv_elements_per_token(spec)
    state = family.state_elements(spec)
    own = getattr(spec, "window", None)
    window = own if window is None else window if own is None else min(window, own)
    label = spec.label if window is None or window == own else f"{spec.label}-w{window}"
    n_kv = getattr(spec, "n_kv_heads", None)
    if spec.n_heads % tp:
        raise InputError("--tp", f"{tp} does not divide the {spec.n_heads} attention heads",
                         "tensor parallelism splits the query heads evenly (vLLM requires it)")  # fmt: skip
    cap = (lambda t: family.cache_tokens(spec, t))
    if per_token == 0 and state:  # a recurrent layer: its state heads split over the GPUs
        return LayerGroup("linear", count, label, spec, None, 0, 0, 0, state // tp, None)
    if n_kv is None:  # MLA: one latent (+ RoPE key) vector per token, replicated on every rank
        heads, elements = None, per_token
        vectors = tensors = 1 if per_token else 0
    else:
        heads = kv_heads_per_gpu(n_kv, tp, spec.n_heads)
        elements, vectors, tensors = per_token // n_kv * heads, 2 * heads, 2
    kind = "cross" if spec.family == "cross" else "sliding" if window is not None else "full"
    return LayerGroup(kind, count, label, spec, window, elements, vectors, tensors, state // tp, heads, cap)


def describe(groups: list[LayerGroup]) -> str:
    """`21 sliding(4096) + 21 full`: the kinds with their counts."""
    return " + ".join(f"{g.count} {g.describe()}" for g in groups)


# ---------------------------------------------------------------------------------------------
# bytes


def group_bytes(group: LayerGroup, storage: Storage, seq_len: int, batch: int) -> CacheBytes:
    tokens = group.tokens(seq_len)
    data = group.count * group.elements_per_token * tokens * batch * DTYPE_BYTES[storage.dtype]
    if storage.scales == "per-token-head":
        scales = group.count * group.vectors_per_token * tokens * batch * SCALE_BYTES
    elif storage.scales == "per-tensor":
        scales = group.count * group.tensors * SCALE_BYTES  # fixed: one per tensor, whatever the batch
    else:
        scales = 0
    per_sequence = (group.state_elements * DTYPE_BYTES[storage.state_dtype]
                    + group.ssm_state_elements * DTYPE_BYTES[group.ssm_dtype or storage.state_dtype])  # fmt: skip
    return CacheBytes(data, scales, group.count * per_sequence * batch)


def cache_bytes(groups: list[LayerGroup], storage: Storage, seq_len: int, batch: int) -> CacheBytes:
    parts = [group_bytes(g, storage, seq_len, batch) for g in groups]
    return CacheBytes(sum(p.data for p in parts), sum(p.scales for p in parts), sum(p.state for p in parts))


def bytes_per_token(groups: list[LayerGroup], storage: Storage) -> int:
    """K/V bytes one token adds across the layers that cache it (per GPU, one sequence)."""
    return sum(g.count * g.elements_per_token for g in groups if g.kind not in RECURRENT) * DTYPE_BYTES[storage.dtype]


def state_bytes(groups: list[LayerGroup], storage: Storage, batch: int, kind: str) -> int | None:
    """The recurrent state of the `kind` layers (linear or mamba), or None when there are none."""
    chosen = [g for g in groups if g.kind == kind]
    if not chosen:
        return None
    return sum(group_bytes(g, storage, 1, batch).state for g in chosen)


# ---------------------------------------------------------------------------------------------
# budgets


def longest_context(groups: list[LayerGroup], storage: Storage, batch: int, available: int) -> int | None:
    """The largest seq_len whose cache for `batch` sequences fits in `available` bytes: 0 when not
    even one token fits, None when the cache stops growing (every layer windowed or linear) and
    fits at any length."""
    size = lambda n: cache_bytes(groups, storage, n, batch).total  # noqa: E731  (non-decreasing in n)
    if size(1) > available:
        return 0
    saturation = max([g.window for g in groups if g.kind == "sliding"] + [g.chunk for g in groups if g.chunk], default=1)
    grows = any(g.kind == "full" and g.elements_per_token for g in groups)
    if not grows and size(saturation) <= available:
        return None
    lo, hi = 1, 2  # size(lo) fits; find hi that does not
    while size(hi) <= available:
        lo, hi = hi, hi * 2
        if hi > MAX_SEARCH_TOKENS:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if size(mid) <= available else (lo, mid)
    return lo


def largest_batch(groups: list[LayerGroup], storage: Storage, seq_len: int, available: int) -> int | None:
    """The most sequences of seq_len tokens whose cache fits in `available` bytes (None: unlimited,
    a cache of zero bytes per sequence)."""
    fixed = cache_bytes(groups, storage, seq_len, 0).total  # per-tensor scales: the same for any batch
    per_sequence = cache_bytes(groups, storage, seq_len, 1).total - fixed
    if per_sequence == 0:
        return None
    return max(0, (available - fixed) // per_sequence)


@dataclass(frozen=True)
class Plan:
    """What kv-memory sizes for: storage, TP degree, a per-GPU budget, whether weights share it."""

    storage: Storage
    tp: int = 1
    budget: int | None = None  # bytes per GPU
    weight_dtype: str | None = None  # set by --include-weights: parameters are stored at this dtype

    def budget_columns(self, spec: AttentionSpec, preset: PresetSpec, groups: list[LayerGroup], seq_len: int,
                       batch: int, held: CacheBytes) -> dict:  # fmt: skip
        """model_params and weight_bytes (per GPU: parameter bytes / tp), and with a budget whether
        this cache fits beside them, the longest context at this batch and the largest batch at
        this seq_len that do."""
        from .params import model_params

        out: dict = {}
        weights = 0
        if self.weight_dtype is not None:
            params = model_params(spec, preset)
            weights = -(-params * DTYPE_BYTES[self.weight_dtype] // self.tp)  # ceil: the weights split over tp GPUs
            out.update(model_params=params, weight_bytes=weights)
        if self.budget is not None:
            available = self.budget - weights
            out.update(budget_bytes=self.budget, fits=held.total + weights <= self.budget,
                       max_seq_len=longest_context(groups, self.storage, batch, available),
                       max_batch=largest_batch(groups, self.storage, seq_len, available))  # fmt: skip
        return out
