"""Frozen, validated descriptions of what to build and measure. Pure Python: no torch here.

A spec is validated where it is made: every rule broken raises `InputError` naming the field
(`n_kv_heads: 3 does not divide n_heads 8`); `presets.py` adds the file or argument at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Mapping

from .errors import InputError

# Bytes per stored element. fp8 and int8 are storage formats for KV caches (one byte per element;
# per-tensor scales are negligible and not counted); compute dtypes are the first four.
DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "fp8": 1, "int8": 1}
COMPUTE_DTYPES = ("float64", "float32", "float16", "bfloat16")
DTYPE_ALIASES = {
    "fp64": "float64", "double": "float64",
    "fp32": "float32", "float": "float32",
    "fp16": "float16", "half": "float16",
    "bf16": "bfloat16",
    "float8": "fp8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8", "e4m3": "fp8", "e5m2": "fp8",
}  # fmt: skip

MODES = ("prefill", "decode")
POSITIONS = ("rope", "none", "alibi")  # every encoding some family implements; each spec class lists its own


def parse_dtype(name: str, where: str = "--dtype") -> str:
    """Canonical dtype name (`bf16` -> `bfloat16`) or an InputError listing the choices."""
    from .errors import did_you_mean

    key = str(name).strip().lower()
    key = DTYPE_ALIASES.get(key, key)
    if key not in DTYPE_BYTES:
        raise InputError(where, f"unknown dtype '{name}'", did_you_mean(name, DTYPE_BYTES))
    return key


def _require(ok: bool, key: str, rule: str) -> None:
    if not ok:
        raise InputError("", f"{key}: {rule}")


# The most layers a model, a stack's period or --layers may have: far beyond any model (the deepest
# published ones have a few hundred), small enough that a list of layer kinds stays a few MiB.
MAX_LAYERS = 2**20


def check_positive_int(value, key: str) -> None:
    """InputError naming `key` unless value is an int (not a bool) above zero."""
    _require(isinstance(value, int) and not isinstance(value, bool), key, f"{value!r} is not an integer")
    _require(value > 0, key, f"{value} must be positive")


_positive_int = check_positive_int


def check_layer_count(value: int, key: str) -> int:
    """A layer count within MAX_LAYERS (checked before anything is built per layer)."""
    _require(value <= MAX_LAYERS, key, f"{value:,} layers is more than attncli handles ({MAX_LAYERS:,})")
    return value


@dataclass(frozen=True, kw_only=True)
class AttentionSpec:
    """What every attention layer has. Families add their own fields in subclasses."""

    family: str  # registry key: mha, mqa, gqa, ...
    d_model: int  # model width: elements in the hidden state of one token
    n_heads: int  # query heads
    head_dim: int  # elements per query/key/value head (d_model / n_heads unless set)
    causal: bool = True  # decoder self-attention: token i sees keys 0..i
    position: str = "rope"  # rope (rotary, half-split as in Llama), alibi (where the family has it) or none
    rope_theta: float = 10000.0  # RoPE base frequency (Su et al. 2021; Llama 2 uses 10000)
    label: str = ""  # short row label (`gqa-kv2`); built from the fields when empty

    positions: ClassVar[tuple[str, ...]] = ("rope", "none")  # the encodings this family's module implements

    def __post_init__(self):
        _positive_int(self.d_model, "d_model")
        _positive_int(self.n_heads, "n_heads")
        _positive_int(self.head_dim, "head_dim")
        _require(isinstance(self.causal, bool), "causal", f"{self.causal!r} is not true or false")
        _require(self.position in self.positions, "position",
                 f"'{self.position}' is not one of {', '.join(self.positions)}"
                 + (f" for {self.family}" if tuple(self.positions) != POSITIONS else ""))  # fmt: skip
        if self.position == "rope":
            key, dim = self.rotary_field
            _require(dim % 2 == 0, key, f"{dim} must be even for position rope")
            _require(self.rope_theta > 0, "rope_theta", f"{self.rope_theta} must be positive")

    @property
    def q_dim(self) -> int:
        """Width of the concatenated query heads (n_heads · head_dim)."""
        return self.n_heads * self.head_dim

    @property
    def rotary_field(self) -> tuple[str, int]:
        """The field giving how many elements of each head RoPE rotates, and its value."""
        return "head_dim", self.head_dim


@dataclass(frozen=True, kw_only=True)
class GQASpec(AttentionSpec):
    """The MHA → GQA → MQA family: MHA is n_kv_heads = n_heads, MQA is n_kv_heads = 1.

    Masks and position compose with any KV sharing: `window` adds a sliding window (the `swa`
    family is this spec with a window set), `causal` and `position` (rope, alibi, none) are free."""

    n_kv_heads: int  # key/value heads; each serves n_heads / n_kv_heads query heads
    window: int | None = None  # sliding window in tokens: a query sees at most this many keys; None = all
    # What real layers add (issue 14), each free to combine with the above:
    qk_norm: bool = False  # normalise every query and key before RoPE (Qwen3, Gemma 3, OLMo-2, StableLM, Cohere)
    qk_norm_over: str = "head"  # head: each head's head_dim elements (Qwen3); proj: the whole projection (OLMo-2)
    qk_norm_type: str = "rms"  # rms: RMSNorm (Zhang & Sennrich 2019); layer: LayerNorm without bias, weights per head (StableLM, Cohere)
    norm_eps: float = 1e-6  # the q/k norms' epsilon (Qwen3Config.rms_norm_eps's default)
    softcap: float | None = None  # attention logit soft-capping c: score → c·tanh(score / c) (Gemma 2: 50); None = off
    sinks: bool = False  # one learned logit per head joins every softmax and attends to nothing (GPT-OSS)
    rotary_dim: int | None = None  # elements of each head RoPE rotates, the first ones (partial rotary); None = head_dim
    scale: float | None = None  # softmax scale of q·k; None = 1/sqrt(head_dim) (Gemma: query_pre_attn_scalar^-1/2)

    positions: ClassVar[tuple[str, ...]] = ("rope", "none", "alibi")

    def __post_init__(self):
        if self.rotary_dim is not None:
            _positive_int(self.rotary_dim, "rotary_dim")
            _require(self.rotary_dim <= self.head_dim, "rotary_dim", f"{self.rotary_dim} exceeds head_dim {self.head_dim}")
            _require(self.position == "rope", "rotary_dim", f"is set but position is {self.position}, not rope")
        super().__post_init__()
        _positive_int(self.n_kv_heads, "n_kv_heads")
        _require(self.n_kv_heads <= self.n_heads, "n_kv_heads", f"{self.n_kv_heads} exceeds n_heads {self.n_heads}")
        _require(self.n_heads % self.n_kv_heads == 0, "n_kv_heads", f"{self.n_kv_heads} does not divide n_heads {self.n_heads}")
        if self.window is not None:
            _positive_int(self.window, "window")
        _require(isinstance(self.qk_norm, bool), "qk_norm", f"{self.qk_norm!r} is not true or false")
        _require(self.qk_norm_over in ("head", "proj"), "qk_norm_over", f"'{self.qk_norm_over}' is not one of head, proj")
        _require(self.qk_norm_type in ("rms", "layer"), "qk_norm_type", f"'{self.qk_norm_type}' is not one of rms, layer")
        _require(self.qk_norm_type == "rms" or self.qk_norm_over == "head", "qk_norm_type",
                 "layer norms each head (qk_norm_over: head)")  # fmt: skip
        _require(self.norm_eps >= 0, "norm_eps", f"{self.norm_eps} must be ≥ 0")
        for key in ("softcap", "scale"):
            value = getattr(self, key)
            _require(value is None or value > 0, key, f"{value} must be positive")
        _require(isinstance(self.sinks, bool), "sinks", f"{self.sinks!r} is not true or false")

    @property
    def rotary_field(self) -> tuple[str, int]:
        if self.rotary_dim is not None:
            return "rotary_dim", self.rotary_dim
        return "head_dim", self.head_dim

    @property
    def rotated(self) -> int:
        """Elements of each query and key head RoPE rotates (0 without RoPE)."""
        return 0 if self.position != "rope" else (self.rotary_dim or self.head_dim)

    @property
    def softmax_scale(self) -> float:
        return self.scale if self.scale is not None else self.head_dim**-0.5

    @property
    def group_size(self) -> int:
        """Query heads per KV head."""
        return self.n_heads // self.n_kv_heads


@dataclass(frozen=True, kw_only=True)
class MLASpec(AttentionSpec):
    """Multi-head latent attention (DeepSeek-V2, arXiv:2405.04434 §2.1), field names as in
    DeepSeek's config.json. Each token caches one latent c_kv (kv_lora_rank elements, shared by
    every head) and one RoPE key (qk_rope_head_dim elements, shared by every head); per-head keys
    and values are up-projected from the latent.

    Relation to the base fields: `head_dim` is derived, qk_nope_head_dim + qk_rope_head_dim (the
    width of a query·key product, whose square root scales the scores; DeepSeek's `q_head_dim`),
    so `q_dim` is the query projection's width. Position is decoupled RoPE: `rope` rotates the
    qk_rope_head_dim part of each query head and the one shared RoPE key; `none` keeps those parts
    unrotated (an ablation; the cache and the FLOPs stay the same).
    """

    head_dim: int | None = None  # derived: qk_nope_head_dim + qk_rope_head_dim (set those instead)
    kv_lora_rank: int  # latent width d_c: elements of the compressed K/V each token caches
    q_lora_rank: int | None = None  # query latent width d_c'; None = full-rank query projection (V2-Lite)
    qk_nope_head_dim: int  # per-head query/key elements up-projected from the latent (not rotated)
    qk_rope_head_dim: int  # decoupled RoPE elements: per query head, and one key shared by all heads
    v_head_dim: int  # per-head value elements up-projected from the latent
    absorb: bool = True  # True: attend over the latent (W_UK folded into the query, W_UV into the output); False: naive

    def __post_init__(self):
        for key in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            _positive_int(getattr(self, key), key)
        if self.q_lora_rank is not None:
            _positive_int(self.q_lora_rank, "q_lora_rank")
        _require(isinstance(self.absorb, bool), "absorb", f"{self.absorb!r} is not true or false")
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", qk)  # frozen: derived once, here
        _require(self.head_dim == qk, "head_dim",
                 f"{self.head_dim} is not qk_nope_head_dim + qk_rope_head_dim = {qk}")  # fmt: skip
        super().__post_init__()

    @property
    def rotary_field(self) -> tuple[str, int]:
        return "qk_rope_head_dim", self.qk_rope_head_dim


@dataclass(frozen=True, kw_only=True)
class CrossSpec(GQASpec):
    """Cross-attention (Vaswani et al. 2017 §3.2.3, encoder–decoder attention): queries from the
    decoder sequence, keys and values from an encoder memory of `memory_len` tokens. The memory's
    K/V are projected once; decoding reads them and never appends. KV sharing composes as in GQA.
    No mask (every query sees the whole memory) and no position encoding on this layer: position
    lives in the encoder and in the decoder's self-attention, as in T5 and Whisper."""

    memory_len: int = 1500  # encoder tokens; Whisper's encoder emits 1500 frames for 30 s of audio

    positions: ClassVar[tuple[str, ...]] = ("none",)

    def __post_init__(self):
        super().__post_init__()
        _positive_int(self.memory_len, "memory_len")
        _require(not self.causal, "causal", "cross-attention sees the whole encoder memory; causal must be false")
        _require(self.window is None, "window", "cross-attention takes no sliding window")
        for key in ("qk_norm", "softcap", "sinks", "scale"):
            _require(getattr(self, key) in (None, False), key, "is a self-attention field (gqa); cross does not take it")


@dataclass(frozen=True, kw_only=True)
class LinearSpec(AttentionSpec):
    """Linear attention (Katharopoulos et al. 2020): softmax(q·k) replaced by φ(q)·φ(k) with the
    positive feature map φ(x) = elu(x) + 1, so attention is φ(q)ᵀ(Σ φ(k) vᵀ) / φ(q)ᵀ(Σ φ(k)) and a
    decoder keeps a constant-size state (S = Σ φ(k) vᵀ, z = Σ φ(k)) instead of a token cache.
    Prefill runs the chunkwise form: quadratic inside chunks of `chunk_size` tokens, the state
    carried between chunks (Yang et al. 2024, GLA; Qin et al. 2024, Lightning Attention-2)."""

    chunk_size: int = 64  # tokens per chunk of the prefill; 64 as in GLA's kernels (about head_dim)

    positions: ClassVar[tuple[str, ...]] = ("none",)

    def __post_init__(self):
        super().__post_init__()
        _positive_int(self.chunk_size, "chunk_size")

    @property
    def state_elements(self) -> int:
        """The decode state per sequence: S (n_heads · d_k · d_v) plus the normaliser z (n_heads · d_k)."""
        return self.n_heads * self.head_dim * self.head_dim + self.n_heads * self.head_dim


@dataclass(frozen=True, kw_only=True)
class HybridSpec(AttentionSpec):
    """A model-level stack: a repeating pattern of layer variants filling `--layers` layers.

    `softmax_every: k` is k-1 `linear` layers then one `softmax` layer (MiniMax-01, 2025: one
    softmax layer after every seven lightning-attention layers); `pattern` lists the layers of one
    period explicitly, e.g. [swa, swa, swa, swa, swa, gqa] for Gemma-3-style local/global
    alternation. The pattern repeats, and is cut, to fill the model's layer count."""

    softmax_every: int = 8  # one softmax layer per this many layers (MiniMax-01: 8)
    softmax: str = "gqa"  # the variant of the softmax layers, e.g. gqa:n_kv_heads=8
    linear: str = "linear"  # the variant of the other layers
    pattern: tuple[str, ...] | None = None  # one period of layer variants; replaces the three fields above
    layers: tuple[AttentionSpec, ...] = ()  # the period, resolved to specs by presets.py (not a YAML key)

    def __post_init__(self):
        super().__post_init__()
        _positive_int(self.softmax_every, "softmax_every")
        check_layer_count(self.softmax_every, "softmax_every")
        if self.pattern is not None:
            _require(len(self.pattern) > 0, "pattern", "is empty; list at least one layer variant")
            check_layer_count(len(self.pattern), "pattern")
        for layer in self.layers:
            _require(not isinstance(layer, HybridSpec), "pattern", f"a stack cannot contain a stack ('{layer.label}')")
            _require(layer.d_model == self.d_model, "pattern",
                     f"every layer must have d_model {self.d_model} (the residual width); '{layer.label}' has {layer.d_model}")  # fmt: skip

    def kinds(self, n_layers: int) -> list[tuple[AttentionSpec, int]]:
        """The distinct layer specs of an n_layers model and how many layers each fills, in
        first-appearance order (the pattern repeats, and is cut at n_layers)."""
        counts: dict[AttentionSpec, int] = {}
        period = len(self.layers)
        whole, rest = divmod(n_layers, period)  # counted per period, not layer by layer
        for i, layer in enumerate(self.layers):
            counts[layer] = counts.get(layer, 0) + whole + (1 if i < rest else 0)
        return [(layer, n) for layer, n in counts.items() if n > 0]


@dataclass(frozen=True, kw_only=True)
class PresetSpec:
    """A size (or model) preset: the shape every variant built from it shares."""

    name: str
    d_model: int  # model width, elements
    n_heads: int  # query heads
    head_dim: int | None = None  # elements per head; None derives d_model / n_heads
    n_layers: int = 1  # layers in the stack (`--layers` defaults to this)
    d_ff: int | None = None  # FFN hidden width, elements; None means 4 · d_model
    description: str = ""
    source: str = ""  # where the numbers come from
    variants: Mapping[str, Mapping] = field(default_factory=dict)  # per-family field defaults
    model: ModelSpec | None = None  # a whole model (model presets, --hf-config): layer kinds, vocabulary, MoE
    path: str = ""  # the YAML file it was read from

    def __post_init__(self):
        _positive_int(self.d_model, "d_model")
        _positive_int(self.n_heads, "n_heads")
        _positive_int(self.n_layers, "n_layers")
        check_layer_count(self.n_layers, "n_layers")
        if self.head_dim is not None:
            _positive_int(self.head_dim, "head_dim")
        if self.d_ff is not None:
            _positive_int(self.d_ff, "d_ff")
        if self.model is not None:
            _require(len(self.model.layer_types) == self.n_layers, "model.layer_pattern",
                     f"gives {len(self.model.layer_types)} layers, not n_layers {self.n_layers}")  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """The work one row measures: a prefill of seq_len tokens, or one decode step after them."""

    mode: str  # prefill | decode
    seq_len: int  # prefill: tokens processed; decode: tokens already in the cache
    batch: int = 1  # independent sequences

    def __post_init__(self):
        _require(self.mode in MODES, "mode", f"'{self.mode}' is not one of {', '.join(MODES)}")
        _positive_int(self.seq_len, "seq_len")
        _positive_int(self.batch, "batch")

    @property
    def n_query(self) -> int:
        """New tokens whose queries are computed."""
        return self.seq_len if self.mode == "prefill" else 1

    @property
    def cache_tokens(self) -> int:
        """Tokens the KV cache holds once the work is done (decode appends the new token)."""
        return self.seq_len if self.mode == "prefill" else self.seq_len + 1


# ---------------------------------------------------------------------------------------------
# whole models: what a model preset's `model:` section or a Hugging Face config.json adds to the
# shape of one attention layer (hfconfig.py builds these from config.json; presets.py from YAML)

# attends to every token · to the last `window` · a recurrent state · to its own `chunk` of tokens ·
# a Mamba state-space state · no attention at all (a no-op or linear block: Nemotron-NAS, an MLP-only layer)
LAYER_KINDS = ("full", "sliding", "linear", "chunked", "mamba", "none")
MLP_KINDS = ("gated", "plain")  # gated: 3 matrices (SwiGLU, GeGLU); plain: 2 (GELU MLP, Falcon)
LINEAR_KINDS = ("lightning", "gated_deltanet")


@dataclass(frozen=True, kw_only=True)
class LinearLayerSpec:
    """The linear-attention layers of a hybrid model: what their recurrent state holds.

    lightning (MiniMax-01, arXiv:2501.08313): one key_dim × value_dim state per head, as vLLM's
    `linear_attention_state_shape` (heads / TP, head_dim, head_dim). gated_deltanet (Qwen3-Next):
    the same matrix state per value head, plus a short-convolution state of conv_kernel − 1 past
    inputs for each of conv_channels channels (vLLM's gated_delta_net_state_shape)."""

    kind: str  # lightning | gated_deltanet: the layer's parameters differ (params.py)
    heads: int  # heads holding a state; split over tensor-parallel ranks
    key_dim: int  # state rows per head, elements
    value_dim: int  # state columns per head, elements
    key_heads: int | None = None  # gated_deltanet: query/key heads (value heads = `heads`); None = heads
    conv_kernel: int = 0  # short convolution width (gated_deltanet: 4); 0 = none

    def __post_init__(self):
        _require(self.kind in LINEAR_KINDS, "linear.kind", f"'{self.kind}' is not one of {', '.join(LINEAR_KINDS)}")
        for key in ("heads", "key_dim", "value_dim"):
            _positive_int(getattr(self, key), f"linear.{key}")
        if self.key_heads is not None:
            _positive_int(self.key_heads, "linear.key_heads")
        _require(isinstance(self.conv_kernel, int) and self.conv_kernel >= 0, "linear.conv_kernel",
                 f"{self.conv_kernel!r} must be a whole number ≥ 0")  # fmt: skip

    @property
    def conv_channels(self) -> int:
        """Channels of the short convolution: queries, keys and values (2·nk·dk + nv·dv)."""
        if not self.conv_kernel:
            return 0
        return 2 * (self.key_heads or self.heads) * self.key_dim + self.heads * self.value_dim

    def state_elements(self, tp: int = 1) -> int:
        """Elements one layer keeps per sequence on one of `tp` ranks (heads and channels split)."""
        matrix = self.heads // tp * self.key_dim * self.value_dim
        conv = self.conv_channels // tp * max(0, self.conv_kernel - 1)
        return matrix + conv


# The dtypes vLLM stores a Mamba state in, besides `auto` (vllm/config/cache.py, MambaDType)
MAMBA_STATE_DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True, kw_only=True)
class MambaLayerSpec:
    """The state a Mamba layer keeps per sequence, shaped as vLLM allocates it
    (vllm/model_executor/layers/mamba/mamba_utils.py, MambaStateShapeCalculator):

    - version 1 (Mamba, Jamba): a convolution state of (d_inner / tp) × (d_conv − 1) and an SSM
      state of (d_inner / tp) × d_state (mamba1_state_shape);
    - version 2 (Mamba-2: Nemotron-H, Zamba2, Falcon-H1, Granite-4.0-H, Bamba, Codestral Mamba): n_groups
      is first raised to tp when tp does not divide it (extra_groups_for_head_shards: tp − n_groups),
      then a convolution state of ((d_inner + 2 · n_groups · d_state) / tp) × (d_conv − 1) and an SSM
      state of (heads / tp) × head_dim × d_state (mamba2_state_shape).
    Each part has its own dtype (MambaStateDtypeCalculator._mamba_state_dtype): the convolution
    state vLLM's mamba_cache_dtype (`auto`: the model dtype), the SSM (temporal) state its
    mamba_ssm_cache_dtype (`auto`: the convolution state's dtype). Both are `auto` unless the
    model's vLLM config hook sets one: `ssm_dtype` None is `auto` (the model dtype), else the SSM
    state's dtype as the hook sets it. Nemotron-H's hook
    (vllm/model_executor/models/config.py, NemotronHForCausalLMConfig) sets mamba_ssm_cache_dtype
    to the config's `mamba_ssm_cache_dtype`, float32 where it gives none ("Only float32 is known to
    have no accuracy issues by default"); no other model attncli sizes has such a hook.
    A TP degree vLLM refuses is refused, naming the config field (`width_from`, `heads_from`,
    `groups_from`): the width (v1) or the heads (v2) must split evenly (vLLM's `divide`, MambaMixer2's
    "Tensor parallel world size must divide num heads"), and groups that TP does not divide are
    replicated only from a single group (MambaMixer2: "If tensor parallel world size does not divide
    num_groups, then num_groups must equal 1")."""

    version: int  # 1 | 2
    d_inner: int  # the expanded width (expand × hidden_size, or mamba_d_ssm), elements
    d_state: int  # SSM state size per channel (v1) or per head dimension (v2)
    d_conv: int  # convolution kernel width
    n_groups: int = 1  # v2: B/C groups
    heads: int = 0  # v2: SSM heads
    head_dim: int = 0  # v2: channels per head
    width_from: str = "d_inner"  # the config fields these came from, for messages
    heads_from: str = "heads"
    groups_from: str = "n_groups"
    ssm_dtype: str | None = None  # the SSM state's dtype where the model's vLLM hook sets it; None: the model dtype

    def __post_init__(self):
        _require(self.version in (1, 2), "mamba.version", f"{self.version!r} is not 1 or 2")
        _require(self.ssm_dtype is None or self.ssm_dtype in MAMBA_STATE_DTYPES, "mamba.ssm_dtype",
                 f"{self.ssm_dtype!r} is not one of {', '.join(MAMBA_STATE_DTYPES)}")  # fmt: skip
        for key in ("d_inner", "d_state", "d_conv", "n_groups"):
            _positive_int(getattr(self, key), f"mamba.{key}")
        if self.version == 2:
            _positive_int(self.heads, "mamba.heads")
            _positive_int(self.head_dim, "mamba.head_dim")

    def state_elements(self, tp: int = 1) -> tuple[int, int]:
        """(convolution state, SSM state) elements one layer keeps per sequence on one of `tp` ranks."""
        if self.version == 1:
            _require(self.d_inner % tp == 0, "--tp",
                     f"{tp} does not divide the Mamba width {self.d_inner} ({self.width_from})")  # fmt: skip
            return self.d_inner // tp * (self.d_conv - 1), self.d_inner // tp * self.d_state
        _require(self.heads % tp == 0, "--tp",
                 f"{tp} does not divide the {self.heads} Mamba-2 heads ({self.heads_from})")  # fmt: skip
        _require(self.n_groups % tp == 0 or self.n_groups == 1, "--tp",
                 f"{tp} does not divide the {self.n_groups} Mamba-2 groups ({self.groups_from}); vLLM replicates "
                 "groups over ranks only from a single group")  # fmt: skip
        groups = self.n_groups + (0 if self.n_groups % tp == 0 else tp - self.n_groups)
        conv_dim = self.d_inner + 2 * groups * self.d_state
        _require(conv_dim % tp == 0, "--tp", f"{tp} does not divide the {conv_dim} Mamba-2 convolution channels "
                 f"({self.width_from} + 2 × {self.groups_from} × d_state)")  # fmt: skip
        return conv_dim // tp * (self.d_conv - 1), self.heads // tp * self.head_dim * self.d_state


@dataclass(frozen=True, kw_only=True)
class MoESpec:
    """Mixture-of-experts MLPs (DeepSeek-V3, MiniMax-01): which layers have them and how wide."""

    experts: int  # routed experts per MoE layer
    experts_per_token: int  # routed experts each token uses (top-k)
    d_ff: int  # hidden width of one routed expert, elements
    shared_experts: int = 0  # experts every token uses (DeepSeek: 1)
    shared_d_ff: int | None = None  # hidden width of one shared expert; None = d_ff
    first_dense: int = 0  # the first this-many layers keep a dense MLP (DeepSeek's first_k_dense_replace)
    every: int = 1  # then every this-many layers is MoE (moe_layer_freq), the others dense

    def __post_init__(self):
        for key in ("experts", "experts_per_token", "d_ff", "every"):
            _positive_int(getattr(self, key), f"moe.{key}")
        for key in ("shared_experts", "first_dense"):
            value = getattr(self, key)
            _require(isinstance(value, int) and not isinstance(value, bool) and value >= 0, f"moe.{key}",
                     f"{value!r} must be a whole number ≥ 0")  # fmt: skip
        if self.shared_d_ff is not None:
            _positive_int(self.shared_d_ff, "moe.shared_d_ff")
        _require(self.experts_per_token <= self.experts, "moe.experts_per_token",
                 f"{self.experts_per_token} exceeds moe.experts {self.experts}")  # fmt: skip

    def is_moe_layer(self, index: int) -> bool:
        """Layer `index` (from 0) has the MoE MLP: past the dense ones, every `every`-th (vLLM's rule)."""
        return index >= self.first_dense and index % self.every == 0


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A whole decoder model around its attention: the kind of each layer and what its parameter
    count needs. The softmax layers' attention is the preset's `variants[attention]` family
    (its KV heads or MLA widths); `sliding` layers are that attention capped at `window` tokens,
    `linear` layers keep the recurrent state of `linear` instead of a token cache."""

    attention: str  # family of the softmax (full and sliding) layers: mha, mqa, gqa or mla
    layer_types: tuple[str, ...]  # one kind per layer, from the first: full | sliding | linear
    window: int | None = None  # tokens a sliding layer attends to (and caches), its own included
    linear: LinearLayerSpec | None = None  # the state of the linear layers
    vocab_size: int | None = None  # tokens in the vocabulary (embedding rows); needed for parameter counts
    tie_embeddings: bool = False  # the output projection shares the embedding matrix
    mlp: str = "gated"  # dense MLP: gated (3 matrices of d_model × d_ff) or plain (2)
    dense_d_ff: int | None = None  # hidden width of the dense MLPs, elements (intermediate_size); for parameter counts
    moe: MoESpec | None = None  # mixture-of-experts MLPs; None = every layer dense
    qkv_bias: bool = False  # biases on the Q, K and V projections (Qwen2)
    attn_output_gate: bool = False  # a sigmoid gate on the attention output, as wide as the queries (Qwen3-Next)
    max_position_embeddings: int | None = None  # the context the model was built for, tokens
    kv_heads_from: str = ""  # where the KV head count came from (a config.json field)
    chunk: int | None = None  # tokens a chunked layer attends to: its own chunk of `chunk` tokens (Llama 4)
    mamba: MambaLayerSpec | None = None  # the state of the mamba layers (and of parallel_mamba layers)
    parallel_mamba: bool = False  # each attention layer also runs a Mamba block beside it (Falcon-H1; Zamba2's hybrid layers)
    layer_kv_heads: tuple | None = None  # KV heads per layer where they vary (Nemotron-NAS); None entries: no attention
    unsized: tuple = ()  # (field, reason) pairs that parameter and FLOP counts need but this model cannot give

    def __post_init__(self):
        _require(isinstance(self.layer_types, tuple) and len(self.layer_types) > 0, "layer_pattern",
                 "must list at least one layer kind")  # fmt: skip
        for kind in self.layer_types:
            _require(kind in LAYER_KINDS, "layer_pattern", f"'{kind}' is not one of {', '.join(LAYER_KINDS)}")
        has_sliding, has_linear = "sliding" in self.layer_types, "linear" in self.layer_types
        if self.window is not None:
            _positive_int(self.window, "window")
        _require(not has_sliding or self.window is not None, "window", "must be set: some layers are sliding")
        _require(has_sliding or self.window is None, "window", f"{self.window} is set but no layer is sliding")
        _require(not has_linear or self.linear is not None, "linear", "must be set: some layers are linear")
        _require(has_linear or self.linear is None, "linear", "is set but no layer is linear")
        has_chunked, has_mamba = "chunked" in self.layer_types, "mamba" in self.layer_types or self.parallel_mamba
        _require(not has_chunked or self.chunk is not None, "chunk", "must be set: some layers are chunked")
        if self.chunk is not None:
            _positive_int(self.chunk, "chunk")
        _require(not has_mamba or self.mamba is not None, "mamba", "must be set: some layers are mamba")
        if self.layer_kv_heads is not None:
            _require(len(self.layer_kv_heads) == len(self.layer_types), "layer_kv_heads", "must give one entry per layer")
        for key in ("vocab_size", "dense_d_ff"):
            if getattr(self, key) is not None:
                _positive_int(getattr(self, key), key)
        _require(self.mlp in MLP_KINDS, "mlp", f"'{self.mlp}' is not one of {', '.join(MLP_KINDS)}")
        if self.max_position_embeddings is not None:
            _positive_int(self.max_position_embeddings, "max_position_embeddings")

    @property
    def n_layers(self) -> int:
        return len(self.layer_types)

    def kinds(self) -> list[tuple[str, int]]:
        """(kind, number of layers) in order of first appearance: [('sliding', 21), ('full', 21)]."""
        counts: dict[str, int] = {}
        for kind in self.layer_types:
            counts[kind] = counts.get(kind, 0) + 1
        return list(counts.items())

    def describe(self) -> str:
        """`21 sliding(4096) + 21 full`: the layer kinds with their counts."""
        name = {"sliding": f"sliding({self.window})", "chunked": f"chunked({self.chunk})"}
        out = " + ".join(f"{n} {name.get(k, k)}" for k, n in self.kinds())
        beside = sum(n for k, n in self.kinds() if k in ("full", "sliding", "chunked"))
        return out + (f" + {beside} mamba beside attention" if self.parallel_mamba else "")
