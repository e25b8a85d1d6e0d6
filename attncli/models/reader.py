"""What a per-architecture weight reader declares, and the registry of readers. Pure Python.

A reader (one per transformers model family, in attncli/models/<family>.py) says, for its
`model_type`s:
- which config.json fields it reads, with that type's defaults from `models/defaults.py` (the
  transformers config class's), and how they map onto an attncli layer (`ModelConfig`, then one
  `GQASpec`/`MLASpec` per layer);
- which tensors one attention layer holds (`stored`: name → shape, and the fields implying it),
  and how they become the attncli module's parameters (`to_module`: fused projections split,
  per-head norms stacked, Gemma's 1 + w);
- where the layers, the embeddings and the input norm live (for the default inputs).
A field the architecture's transformers module ignores is ignored here too; a field that changes
the output and is not implemented is a one-line refusal naming it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from .. import rope_scaling
from ..errors import InputError
from ..spec import DTYPE_BYTES
from . import defaults as model_defaults

# The family modules, imported on first use (each registers its readers).
FAMILY_MODULES = ("llama", "qwen", "deepseek", "gemma", "phi3", "olmo2", "gpt_oss", "granite", "starcoder2", "smollm3", "gpt_neox", "phi", "stablelm", "cohere", "glm4", "falcon")
READERS: dict[str, "Reader"] = {}


@dataclass(frozen=True)
class LayerAttn:
    """What differs between the layers of one model: the window and the RoPE (or none)."""

    window: int | None = None  # tokens a query sees, itself included; None = every earlier token
    rope: rope_scaling.RopeSettings | None = None  # None: this layer has no position encoding (SmolLM3's NoPE layers)


@dataclass(frozen=True)
class ModelConfig:
    """What loading one attention layer needs from config.json, under attncli's field names."""

    model_type: str
    family: str  # gqa (MHA/GQA/MQA) or mla
    d_model: int  # hidden_size
    n_heads: int  # num_attention_heads
    n_layers: int  # num_hidden_layers
    head_dim: int  # GQA: head_dim (default hidden_size / num_attention_heads); MLA: nope + rope
    n_kv_heads: int | None  # GQA: num_key_value_heads
    rms_norm_eps: float  # the input norm's epsilon
    biases: tuple[str, ...]  # projections (attncli module names) that carry a bias
    rope: rope_scaling.RopeSettings  # the RoPE of the model's (first) rotary layers
    softmax_scale_factor: float = 1.0  # multiplies 1/sqrt(qk width) (DeepSeek under YaRN)
    d_ff: int | None = None  # intermediate_size (for the FFN-share column)
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None
    sliding_window: int | None = None  # tokens, when every layer attends to a window
    torch_dtype: str | None = None  # the dtype the weights were saved in (config's torch_dtype / dtype)
    fp8_block: tuple[int, int] | None = None  # FP8 block-quantised weights: the block (rows, cols)
    # the GQA family's real-layer fields (spec.GQASpec), the same for every layer
    qk_norm: bool = False
    qk_norm_over: str = "head"
    qk_norm_type: str = "rms"
    norm_eps: float = 1e-6  # the q/k norms' epsilon
    softcap: float | None = None
    sinks: bool = False
    scale: float | None = None  # softmax scale; None = 1/sqrt(head_dim)
    layers: tuple[LayerAttn, ...] = ()  # per layer: window and RoPE; empty = every layer as `rope`, `sliding_window`
    embed_scale: float = 1.0  # the embeddings are multiplied by this before the first layer (Gemma: sqrt(d))
    fields: dict = field(default_factory=dict, compare=False)  # config fields read, for the docs and rows

    def layer(self, index: int) -> LayerAttn:
        if self.layers:
            return self.layers[index]
        return LayerAttn(window=self.sliding_window, rope=self.rope)


class Fields:
    """config.json read as transformers reads it: a key present (even null) is the config's; an
    absent one takes the model type's default (models/defaults.py, the config class's)."""

    def __init__(self, cfg: dict, model_type: str, where: str, extra_defaults: dict | None = None):
        if not isinstance(cfg, dict):
            raise InputError(where, "is not a JSON object")
        self.cfg, self.model_type, self.where = cfg, model_type, where
        self.defaults = {**(model_defaults.defaults_for(model_type) or {}), **(extra_defaults or {})}

    def get(self, key: str, fallback=None):
        if key in self.cfg:
            return self.cfg[key]
        return self.defaults.get(key, fallback)

    def int(self, key: str, required: bool = True, fallback=None) -> int | None:
        value = self.get(key)
        if value is None:
            value = fallback
        if value is None:
            if required:
                raise InputError(self.where, f"missing field '{key}'")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(self.where, f"{key}: {value!r} is not an integer")
        if value <= 0:
            raise InputError(self.where, f"{key}: {value} must be positive")
        return value

    def number(self, key: str, fallback=None, positive: bool = False) -> float | None:
        value = self.get(key, fallback)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
            raise InputError(self.where, f"{key}: {value!r} is not a {'positive' if positive else 'non-negative'} number")
        return float(value)

    def flag(self, key: str, fallback: bool = False) -> bool:
        value = self.get(key, fallback)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise InputError(self.where, f"{key}: {value!r} is not true or false")
        return value

    def refuse_if(self, key: str, bad, why: str) -> None:
        """A field that changes the output in a way attncli does not implement: one line naming it."""
        value = self.get(key)
        if value is not None and bad(value):
            raise InputError(self.where, f"{key}: {value!r} is not supported", why)


def common_fields(f: Fields, eps_key: str = "rms_norm_eps", eps_fallback: float = 1e-6) -> dict:
    """The fields every reader reads: widths, layers, dtype, quantisation, the input norm's epsilon."""
    d, h = f.int("hidden_size"), f.int("num_attention_heads")
    torch_dtype = f.cfg.get("torch_dtype") or f.cfg.get("dtype")
    quant = f.cfg.get("quantization_config")
    fp8_block = None
    if quant:
        method = quant.get("quant_method") if isinstance(quant, dict) else quant
        if method != "fp8":
            raise InputError(f.where, f"quantization_config.quant_method: '{method}' is not supported",
                             "attncli reads unquantised or FP8 block-quantised (DeepSeek-V3) weights")  # fmt: skip
        block = quant.get("weight_block_size") or [128, 128]
        fp8_block = (int(block[0]), int(block[1]))
    eps = f.number(eps_key, fallback=eps_fallback)
    return dict(model_type=f.model_type, d_model=d, n_heads=h, n_layers=f.int("num_hidden_layers"),
                rms_norm_eps=eps, d_ff=f.int("intermediate_size", required=False),
                torch_dtype=torch_dtype if torch_dtype in DTYPE_BYTES else None, fp8_block=fp8_block)  # fmt: skip


def gqa_heads(f: Fields, d: int, h: int) -> tuple[int, int]:
    """(n_kv_heads, head_dim): num_key_value_heads (default: the class's, else num_attention_heads)
    and head_dim (default: the class's, else hidden_size / num_attention_heads)."""
    g = f.int("num_key_value_heads", fallback=h)
    hd = f.int("head_dim", required=False)
    if hd is None:
        if d % h:
            raise InputError(f.where, f"num_attention_heads: {h} does not divide hidden_size {d}", "set head_dim")
        hd = d // h
    if h % g:
        raise InputError(f.where, f"num_key_value_heads: {g} does not divide num_attention_heads {h}")
    return g, hd


def rope_of(f: Fields, head_dim: int, interleave: bool = False, partial_default: float = 1.0,
            allow_partial: bool = True, original_max: int | None = None,
            config: dict | None = None) -> rope_scaling.RopeSettings:  # fmt: skip
    """The model's RoPE (transformers 5's precedence, rope_scaling.parse) with the class's
    default_theta, rotating int(head_dim · partial_rotary_factor) elements of each head."""
    theta = f.defaults.get("rope_theta", 10000.0)
    return rope_scaling.parse(f.cfg if config is None else config, head_dim, f.where, interleave=interleave,
                              default_theta=theta, partial_default=partial_default, allow_partial=allow_partial,
                              original_max=original_max, max_position_embeddings=f.get("max_position_embeddings"))  # fmt: skip


def layer_types(f: Fields, n_layers: int, default_rule) -> list[str]:
    """`layer_types` (full_attention / sliding_attention per layer) as config.json gives it, else
    the config class's own rule, `default_rule(i)`."""
    given = f.cfg.get("layer_types")
    if given is None:
        return [default_rule(i) for i in range(n_layers)]
    if not isinstance(given, list) or len(given) != n_layers:
        raise InputError(f.where, f"layer_types: must list one type per layer ({n_layers})")
    for kind in given:
        if kind not in ("full_attention", "sliding_attention"):
            raise InputError(f.where, f"layer_types: '{kind}' is not supported", "full_attention or sliding_attention")
    return list(given)


# ------------------------------------------------------------------------------------------------
# readers


class Reader:
    """The Llama-shaped reader: `{q,k,v,o}_proj` under `…layers.N.self_attn.`, biases as the
    config says, q/k norms and sinks as ModelConfig says. Families override what differs."""

    model_types: tuple[str, ...] = ()
    layers_name = "layers"  # the layer list (`transformer.h` for Falcon: "h")
    attention_name = "self_attn"  # the attention module under each layer
    embed_name = "embed_tokens"
    input_norm: str | None = "input_layernorm"  # None: the layer sees the residual stream itself (OLMo-2)
    norm_kind = "rms"  # rms: x/rms·w; rms1p: x/rms·(1 + w) (Gemma); layer: LayerNorm (with bias when present)
    features = ""  # one line for docs/weights.md

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        raise NotImplementedError

    def norm_of(self, c: ModelConfig) -> str | None:
        """The input norm's module name under each layer (None: no norm before attention)."""
        return self.input_norm

    # -- tensors -----------------------------------------------------------------------------------

    def stored(self, c: ModelConfig) -> dict[str, tuple[tuple[int, ...], str]]:
        """The tensors of one attention layer as stored (names relative to the attention module)
        → (shape, the config fields that imply it)."""
        d, h, g, hd = c.d_model, c.n_heads, c.n_kv_heads, c.head_dim
        q = (h * hd, f"num_attention_heads {h} × head_dim {hd}")
        kv = (g * hd, f"num_key_value_heads {g} × head_dim {hd}")
        rows = {"q_proj": q, "k_proj": kv, "v_proj": kv}
        out = {f"{n}.weight": ((r, d), f"{why}, hidden_size {d}") for n, (r, why) in rows.items()}
        out["o_proj.weight"] = ((d, h * hd), f"hidden_size {d}, num_attention_heads {h} × head_dim {hd}")
        widths = {**rows, "o_proj": (d, f"hidden_size {d}")}
        for name in c.biases:
            n, why = widths[name]
            out[f"{name}.bias"] = ((n,), why)
        out.update(self.norm_tensors(c))
        if c.sinks:
            out["sinks"] = ((h,), f"num_attention_heads {h}")
        return out

    def norm_tensors(self, c: ModelConfig) -> dict:
        if not c.qk_norm:
            return {}
        h, g, hd = c.n_heads, c.n_kv_heads, c.head_dim
        if c.qk_norm_over == "proj":
            return {"q_norm.weight": ((h * hd,), f"num_attention_heads {h} × head_dim {hd}"),
                    "k_norm.weight": ((g * hd,), f"num_key_value_heads {g} × head_dim {hd}")}  # fmt: skip
        if c.qk_norm_type == "layer":
            return {"q_norm.weight": ((h, hd), f"num_attention_heads {h}, head_dim {hd}"),
                    "k_norm.weight": ((g, hd), f"num_key_value_heads {g}, head_dim {hd}")}  # fmt: skip
        return {"q_norm.weight": ((hd,), f"head_dim {hd}"), "k_norm.weight": ((hd,), f"head_dim {hd}")}

    def to_module(self, c: ModelConfig, tensors: dict) -> dict:
        """Stored tensors (by relative name) → the attncli module's state dict."""
        return dict(tensors)

    def ignored(self, rel: str) -> bool:
        """A stored tensor under the attention module that the transformers module does not use."""
        return rel.endswith("rotary_emb.inv_freq")  # old Llama files saved the RoPE buffer


def register(reader: Reader) -> Reader:
    for t in reader.model_types:
        READERS[t] = reader
    return reader


def _load_all() -> None:
    if not READERS:
        for name in FAMILY_MODULES:
            importlib.import_module(f"{__package__}.{name}")


def supported() -> tuple[str, ...]:
    _load_all()
    return tuple(READERS)


def reader_for(model_type, where: str) -> Reader:
    """The reader of a model_type, or exit 2 naming it and the supported list (before any tensor is read)."""
    _load_all()
    key = model_defaults.canonical(model_type) if isinstance(model_type, str) else model_type
    if key not in READERS:
        shown = f"'{model_type}'" if model_type is not None else "missing"
        raise InputError(where, f"model_type: {shown} is not supported", f"supported: {', '.join(READERS)}")
    return READERS[key]
