"""Read a Hugging Face `config.json` with the standard library and normalise it into a model preset.

No `transformers` needed: the file is read with `json` and the fields that real families use are
mapped onto attncli's vocabulary the way vLLM's `ModelConfig` does (get_total_num_kv_heads,
get_head_size, the sliding-window switches, MLA detection). The result is a `PresetSpec` whose
`model` (spec.ModelSpec) says what each layer is: `full`, `sliding` (capped at `window` tokens),
`chunked`, `linear` (a recurrent state), `mamba` (a Mamba state) or `none`; a pure state-space
model (Mamba, Mamba-2, Falcon-Mamba) is `mamba` on every layer, so nothing is cached per token.
Unknown or contradictory fields are errors that name the file and the field; nothing is guessed
silently. Every row built from the result says which field gave
the KV head count (`kv_heads_from`).

Pure standard library plus attncli's own pure-Python spec and error modules, so the weights
loader can share it.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError, read_text
from .models import defaults as type_defaults
from .spec import MAMBA_STATE_DTYPES, MAX_LAYERS, LinearLayerSpec, MambaLayerSpec, ModelSpec, MoESpec, PresetSpec

CONFIG_NAME = "config.json"

# Aliases of one quantity across families; when several are present they must agree.
HIDDEN = ("hidden_size", "n_embd", "d_model")
HEADS = ("num_attention_heads", "n_head", "num_heads", "n_heads")
LAYERS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
# KV head fields in vLLM's order of precedence (get_total_num_kv_heads): Falcon, Falcon, Llama, ChatGLM.
KV_HEADS = ("n_head_kv", "num_kv_heads", "num_key_value_heads", "multi_query_group_num")
FALCON_TYPES = ("falcon", "RefinedWeb", "RefinedWebModel")
MLA_FIELDS = ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
# transformers' names for layer kinds (layer_types) → attncli's
LAYER_TYPE_NAMES = {"full_attention": "full", "sliding_attention": "sliding", "linear_attention": "linear"}
# transformers' layer kind names in layer_types (and their legacy spellings, which
# configuration_utils._LEGACY_LAYER_TYPE_REMAP maps: mamba → linear_attention, attention → full_attention)
# → attncli's. In a model type with Mamba layers, `linear_attention` and `mamba` are Mamba-2/Mamba layers.
LAYER_TYPE_NAMES.update({"chunked_attention": "chunked", "attention": "full", "mamba": "mamba"})
MAMBA_TYPES = ("nemotron_h", "jamba", "zamba2", "falcon_h1", "granitemoehybrid", "bamba")
# Fields that mean Mamba layers: in a model type whose Mamba state attncli does not know, refused
# by name (never sized as attention layers).
MAMBA_FIELDS = ("hybrid_override_pattern", "layers_block_type", "attn_layer_period", "mamba_d_state", "ssm_cfg",
                "mamba_n_heads", "mamba_num_heads", "ssm_state_size", "mamba_expand")
# Pure state-space models, every layer a Mamba block and none attention (vLLM's IsAttentionFree
# MambaForCausalLM, which also serves falcon_mamba, and Mamba2ForCausalLM)
PURE_SSM_TYPES = ("mamba", "mamba2", "falcon_mamba")
SSM_KV_FROM = "none (a state-space model: no attention layer, nothing cached per token)"
# Types whose KV cache the Llama reading sizes but whose MLP it does not read: parameter and FLOP
# counts are refused for them (kv-memory is not). ERNIE-4.5-MoE's experts are moe_num_experts / moe_k,
# HunYuan-MoE's moe_topk; the others' MLPs have two matrices, biases or widths of their own.
MLP_UNREAD = {"ernie4_5_moe": "its experts (moe_num_experts, moe_k) are", "hunyuan_v1_moe": "its experts (moe_topk) are",
              "apertus": "its xIELU MLP is", "persimmon": "its squared-ReLU MLP is", "opt": "its MLP (ffn_dim) is",
              "gptj": "its MLP (n_inner) is", "bloom": "its MLP is"}  # fmt: skip
# Nemotron-H's hybrid_override_pattern (NemotronHConfig._pattern_to_list): Mamba-2, attention, MLP, MoE
NEMOTRON_H_PATTERN = {"M": "mamba", "*": "full", "-": "none", "E": "none"}


# ---------------------------------------------------------------------------------------------
# reading


def config_path(path: str | Path) -> Path:
    """The config.json itself, given the file or the folder holding it."""
    p = Path(path)
    if not p.exists():
        raise InputError(str(path), "no such file or folder", "give a config.json or the folder holding one")
    if p.is_dir():
        inside = p / CONFIG_NAME
        if not inside.is_file():
            raise InputError(str(path), f"folder holds no {CONFIG_NAME}")
        return inside
    return p


def read_config(path: str | Path) -> tuple[dict, str]:
    """(the parsed mapping, the file's name for messages)."""
    p = config_path(path)
    where = str(p)
    text = read_text(p, where)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates(where))
    except json.JSONDecodeError as e:
        raise InputError(where, f"unreadable JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise InputError(where, "unreadable JSON: nested too deeply") from None
    except InputError:
        raise
    except ValueError as e:  # an integer of more than 4,300 digits
        raise InputError(where, f"unreadable JSON: {str(e).split(';')[0]}") from None
    if not isinstance(data, dict):
        raise InputError(where, f"must hold a JSON object of fields, not a {type(data).__name__}")
    return data, where


def _no_duplicates(where: str):
    """json.loads' object hook refusing a key given twice (json keeps the last silently; a config
    whose two values disagree has no right one)."""

    def pairs(items):
        seen = {}
        for key, value in items:
            if key in seen:
                raise InputError(where, f"duplicate key '{key}' in the JSON", "keep one value")
            seen[key] = value
        return seen

    return pairs


def load(path: str | Path, name: str | None = None) -> PresetSpec:
    """A model preset from a config.json (or a folder holding one)."""
    data, where = read_config(path)
    return normalise(data, where, name or model_name(data, Path(where)))


def model_name(data: dict, path: Path) -> str:
    """The model's name: its folder's, unless the folder says nothing (a Hugging Face cache
    snapshot, named by a commit hash), then the repository the cache path names
    (models--org--name/snapshots/<hash>), else `_name_or_path`, else `architectures[0]`."""
    folder = path.parent.name if path.name == CONFIG_NAME and path.parent.name else path.stem
    if not _is_hash(folder):
        return folder
    parts = path.parent.parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3].removeprefix("models--").replace("--", "/")
    named = data.get("_name_or_path")
    if isinstance(named, str) and named.strip() and not _is_hash(Path(named).name):
        return named.strip().rstrip("/")
    archs = data.get("architectures")
    if isinstance(archs, list) and archs and isinstance(archs[0], str):
        return archs[0]
    return folder


def _is_hash(name: str) -> bool:
    """A git commit hash (what a Hugging Face cache names its snapshot folders)."""
    return len(name) in (40, 64) and all(c in "0123456789abcdef" for c in name)


# ---------------------------------------------------------------------------------------------
# field access


class _Fields:
    """Typed access to a config's fields; every error names the file and the field.

    A field the config leaves out takes the default of its model type's config class
    (models/defaults.py), as transformers fills it in; an explicit null stays null. With no
    defaults for the type (`defaults` None), an absent field is absent."""

    def __init__(self, data: dict, where: str, prefix: str = "", model_type: str = "", defaults: dict | None = None):
        self.data, self.where, self.prefix = data, where, prefix
        self.model_type, self.defaults = model_type, defaults

    def fail(self, key: str, what: str, hint: str | None = None):
        raise InputError(self.where, f"{self.prefix}{key}: {what}", hint)

    def value(self, key: str):
        """The config's own value, else its type's default (None when neither gives one)."""
        if key in self.data:
            return self.data[key]
        return (self.defaults or {}).get(key)

    def explicit(self, key: str) -> bool:
        return self.data.get(key) is not None

    def defaulted(self, key: str) -> bool:
        """The value comes from the type's defaults, not from the config itself."""
        return key not in self.data and (self.defaults or {}).get(key) is not None

    def has(self, key: str) -> bool:
        return self.value(key) is not None

    def raw(self, key: str, default=None):
        value = self.value(key)
        return default if value is None else value

    def int(self, key: str, default=None, minimum: int = 1):
        value = self.value(key)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(key, f"{value!r} is not a whole number")
        if value < minimum:
            self.fail(key, f"{value} must be {'positive' if minimum == 1 else f'at least {minimum}'}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.value(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"{value!r} is not true or false")
        return value

    def str(self, key: str, default: str = "") -> str:
        value = self.value(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.fail(key, f"{value!r} is not a string")
        return value

    def source(self) -> str:
        """Where absent fields' defaults come from, for messages: `LlamaConfig's default`."""
        cls = type_defaults.source_of(self.model_type) or "its config class"
        return f"{cls.removeprefix('transformers.').split(' ')[0]}'s default"

    def no_defaults(self, key: str, what: str):
        """Refuse an absent field that only a type's defaults could supply."""
        kind = f"model_type '{self.model_type}'" if self.model_type else "a config without model_type"
        self.fail(key, f"missing, and {kind} has no defaults table in attncli ({what})",
                  f"add {self.prefix}{key} to the config, or the type to attncli/models/defaults.py")  # fmt: skip

    def one_of(self, keys: tuple[str, ...], what: str, required: bool = True, minimum: int = 1):
        """(field used, value) of the first alias the config gives; aliases given together must
        agree. With none given, the first alias its type's defaults fill in."""
        found = [(k, self.int(k, minimum=minimum)) for k in keys if self.explicit(k)]
        if not found:
            for key in keys:
                if self.defaulted(key):
                    return key, self.int(key, minimum=minimum)
            if required:
                self.fail(keys[0], f"missing: no {what} field ({', '.join(self.prefix + k for k in keys)})")
            return None, None
        for key, value in found[1:]:
            if value != found[0][1]:
                self.fail(found[0][0], f"{found[0][1]} disagrees with {self.prefix}{key} = {value}",
                          "a config must give one value for one quantity")  # fmt: skip
        return found[0]


# ---------------------------------------------------------------------------------------------
# normalising


def normalise(data: dict, where: str, name: str) -> PresetSpec:
    """The model preset a config.json describes (see the module docstring for the rules)."""
    top = _fields(data, where, "", data.get("model_type"))
    if data.get("text_config") is not None:  # multimodal wrappers: the language model's fields (vLLM's hf_text_config)
        if not isinstance(data["text_config"], dict):
            top.fail("text_config", "is not a JSON object of fields")
        text = data["text_config"]
        # the wrapper's own text model type (Gemma3Config → gemma3_text) wins; LLaVA's text_config names its type
        text_type = type_defaults.text_config_type(top.model_type) or text.get("model_type")
        if top.model_type == "llava" and isinstance(text.get("model_type"), str):
            text_type = text["model_type"]
        f = _fields(text, where, "text_config.", text_type)
    elif type_defaults.text_config_type(top.model_type):  # a wrapper without text_config: all its text defaults
        f = _fields({}, where, "text_config.", type_defaults.text_config_type(top.model_type))
    else:
        f = top
    if f.bool("is_encoder_decoder", False):
        f.fail("is_encoder_decoder", "encoder-decoder models are not supported; attncli sizes decoder-only models")

    model_type = f.model_type or ""
    if model_type in PURE_SSM_TYPES:
        return _state_space(f, top, where, name)
    if model_type not in MAMBA_TYPES:
        for key in MAMBA_FIELDS:
            if f.explicit(key):
                f.fail(key, f"Mamba layers of model_type '{model_type or '(none)'}' are not supported; attncli sizes "
                       f"those of {', '.join(MAMBA_TYPES)}")  # fmt: skip
    if model_type.startswith("hunyuan") and f.bool("use_cla", False):  # layers sharing one KV cache: unsized
        f.fail("use_cla", "cross-layer attention (layers sharing a KV cache) is not supported")
    _, d_model = f.one_of(HIDDEN, "hidden size")
    heads_key, n_heads = f.one_of(HEADS, "attention head count")
    layout = _layout(f, model_type)
    n_layers = len(layout["layer_types"])
    if model_type == "zamba2":  # Zamba2's shared attention reads [hidden, embedding]: 2·hidden wide (Zamba2Config)
        head_dim, head_dim_given = f.int("attention_head_dim", 2 * d_model // n_heads), True
    else:
        head_dim, head_dim_given = _head_dim(f, d_model, n_heads, heads_key)
    if model_type == "bamba" and head_dim != d_model // n_heads:  # BambaConfig has no head_dim field
        f.fail("head_dim", f"{head_dim} is not read by vLLM's Bamba attention, whose heads are hidden_size / "
               f"{heads_key} = {d_model // n_heads} wide")  # fmt: skip

    if f.has("kv_lora_rank"):
        family, fields, kv_from = _mla(f, n_heads)
    else:
        if layout.get("layer_kv_heads") is not None:  # Nemotron-NAS: per-layer GQA from block_configs
            counts = [k for k in layout["layer_kv_heads"] if k is not None]
            n_kv, kv_from = max(set(counts), key=counts.count), layout["kv_from"]
        else:
            n_kv, kv_from = _kv_heads(f, model_type, n_heads, heads_key)
        family = "mha" if n_kv == n_heads else "mqa" if n_kv == 1 else "gqa"
        fields = {"n_kv_heads": n_kv} if family == "gqa" else {}
    rope_theta = f.raw("rope_theta")
    if isinstance(rope_theta, (int, float)) and not isinstance(rope_theta, bool) and rope_theta > 0:
        fields["rope_theta"] = float(rope_theta)

    layer_types = layout["layer_types"]
    linear = _linear(f, model_type, n_heads, head_dim) if "linear" in layer_types else None
    mamba = _mamba(f, model_type, d_model) if "mamba" in layer_types or layout.get("parallel_mamba") else None
    # The MLP enters parameter and FLOP counts only: a field they need and the config lacks is
    # recorded (ModelSpec.unsized) and refused there, never by kv-memory.
    unsized = list(layout.get("unsized", ()))
    try:
        moe = _moe(f)
        mlp, dense_d_ff = _mlp(f, model_type, d_model, moe)
    except InputError as e:
        moe, mlp, dense_d_ff = None, "gated", None
        unsized.append((e.what.split(":")[0], e.what))
    if model_type in MLP_UNREAD:  # their KV cache is sized; their MLP would be counted wrong
        unsized.insert(0, ("model_type", f"model_type '{model_type}': {MLP_UNREAD[model_type]} not read, so parameters "
                           "and FLOPs are not counted (kv-memory sizes its cache)"))  # fmt: skip
    if mamba is not None:  # first: the reason a count of such a model is refused
        unsized.insert(0, ("mamba", "mamba layers: their parameters and FLOPs are not counted (kv-memory sizes their state)"))
    model = ModelSpec(
        attention=family,
        layer_types=layer_types,
        window=layout.get("window"),
        linear=linear,
        vocab_size=f.int("vocab_size") if f.has("vocab_size") else top.int("vocab_size"),
        tie_embeddings=f.bool("tie_word_embeddings", top.bool("tie_word_embeddings", True)),  # PretrainedConfig's default
        mlp=mlp,
        dense_d_ff=dense_d_ff,
        moe=moe,
        qkv_bias=f.bool("attention_bias", False) or model_type in ("qwen2", "qwen2_moe")
        or (model_type in FALCON_TYPES and f.bool("bias", False)),
        attn_output_gate=model_type == "qwen3_next" and f.bool("attn_output_gate", True),
        max_position_embeddings=f.int("max_position_embeddings") or f.int("n_positions"),
        kv_heads_from=kv_from,
        chunk=layout.get("chunk"),
        mamba=mamba,
        parallel_mamba=bool(layout.get("parallel_mamba")),
        layer_kv_heads=layout.get("layer_kv_heads"),
        unsized=tuple(unsized),
    )  # fmt: skip
    archs = top.raw("architectures", [])
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else model_type or "model"
    try:
        return PresetSpec(
            name=name, d_model=d_model, n_heads=n_heads, head_dim=head_dim if head_dim_given else None,
            n_layers=n_layers, d_ff=_token_d_ff(dense_d_ff, moe), variants={family: fields},
            description=f"{arch}: {model.describe()}", source=where, model=model, path=where,
        )  # fmt: skip
    except InputError as e:
        raise InputError(where, e.what, e.hint) from None


def _fields(data: dict, where: str, prefix: str, model_type) -> _Fields:
    if model_type is not None and not isinstance(model_type, str):
        raise InputError(where, f"{prefix}model_type: {model_type!r} is not a string")
    model_type = type_defaults.canonical(model_type or "")
    return _Fields(data, where, prefix, model_type, type_defaults.defaults_for(model_type))


def _state_space(f: _Fields, top: _Fields, where: str, name: str) -> PresetSpec:
    """A pure state-space model (transformers' MambaConfig, Mamba2Config, FalconMambaConfig; vLLM's
    attention-free MambaForCausalLM and Mamba2ForCausalLM): every layer a Mamba block holding a
    constant state, none attention, so nothing is cached per token. The preset's attention is a
    stand-in no layer uses (one head, labelled with the Mamba version); its rows say so in
    `kv_heads_from`."""
    _, d_model = f.one_of(HIDDEN, "hidden size")
    key, n_layers = f.one_of(LAYERS, "layer count")
    if n_layers > MAX_LAYERS:
        f.fail(key, f"{n_layers:,} layers is more than attncli handles ({MAX_LAYERS:,})")
    for listed in ("layer_types", "layers_block_type"):  # transformers: a property, every layer linear_attention
        values = f.raw(listed)
        if values is not None and (not isinstance(values, list) or any(v not in ("mamba", "linear_attention")
                                                                       for v in values)):  # fmt: skip
            cls = (type_defaults.source_of(f.model_type) or "its config class").removeprefix("transformers.")
            f.fail(listed, f"model_type '{f.model_type}' has only Mamba layers ({cls} lists every layer "
                   "linear_attention)")  # fmt: skip
    mamba = _mamba(f, f.model_type, d_model)
    model = ModelSpec(
        attention="mha",
        layer_types=("mamba",) * n_layers,
        vocab_size=f.int("vocab_size"),
        tie_embeddings=f.bool("tie_word_embeddings", top.bool("tie_word_embeddings", True)),
        max_position_embeddings=f.int("max_position_embeddings"),  # the Mamba classes have none: no position limit
        kv_heads_from=SSM_KV_FROM,
        mamba=mamba,
        unsized=(("mamba", "mamba layers: their parameters and FLOPs are not counted (kv-memory sizes their state)"),),
    )  # fmt: skip
    archs = top.raw("architectures", [])
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else f.model_type
    try:
        return PresetSpec(
            name=name, d_model=d_model, n_heads=1, n_layers=n_layers,
            variants={"mha": {"label": f"mamba{mamba.version}"}}, description=f"{arch}: {model.describe()}",
            source=where, model=model, path=where,
        )  # fmt: skip
    except InputError as e:
        raise InputError(where, e.what, e.hint) from None


def _head_dim(f: _Fields, d_model: int, n_heads: int, heads_key: str) -> tuple[int, bool]:
    """head_dim as given, else its type's default (Gemma 256, Qwen3 128); where the class leaves it
    unset, hidden_size / heads (its __post_init__, vLLM's get_head_size), which must divide."""
    if f.has("head_dim"):
        return f.int("head_dim"), True
    if f.defaults is None:
        f.no_defaults("head_dim", "some classes default it to other than hidden_size / heads")
    if d_model % n_heads:
        f.fail("head_dim", f"missing, and {n_heads} heads ({f.prefix}{heads_key}) do not divide the hidden size {d_model}",
               "add head_dim to the config")  # fmt: skip
    return d_model // n_heads, False


def _kv_heads(f: _Fields, model_type: str, n_heads: int, heads_key: str) -> tuple[int, str]:
    """KV heads as vLLM's get_total_num_kv_heads reads them, and the field they came from."""
    new_arch = model_type in FALCON_TYPES and f.bool("new_decoder_architecture", False)
    if f.bool("multi_query", False) and not new_arch:
        ignored = [k for k in KV_HEADS if f.explicit(k)]
        note = f" ({', '.join(ignored)} ignored, as in transformers)" if ignored else ""
        return 1, f"multi_query{note}"
    key, n_kv = f.one_of(KV_HEADS, "KV head", required=False)
    if key is None:
        if f.defaults is None:
            f.no_defaults("num_key_value_heads", "the KV head count")
        return n_heads, f"{heads_key} (no KV head field; {f.source()}: one KV head per query head)"
    if f.defaulted(key):
        kv_from = f"{key} ({f.source()})"
    else:
        kv_from = key
    given = f" ({f.source()}; the config gives none)" if f.defaulted(key) else ""
    if n_kv > n_heads:
        f.fail(key, f"{n_kv} KV heads{given} exceed the {n_heads} attention heads")
    if n_heads % n_kv:
        f.fail(key, f"{n_kv} KV heads{given} do not divide the {n_heads} attention heads")
    return n_kv, kv_from


def _mla(f: _Fields, n_heads: int) -> tuple[str, dict, str]:
    """DeepSeek-V2/V3-style multi-head latent attention: the `mla` family's fields, same names."""
    fields = {"kv_lora_rank": f.int("kv_lora_rank")}
    for key in MLA_FIELDS:
        if not f.has(key):
            f.fail(key, "missing: kv_lora_rank makes this an MLA config, which needs qk_nope_head_dim, "
                        "qk_rope_head_dim and v_head_dim")  # fmt: skip
        fields[key] = f.int(key)
    fields["q_lora_rank"] = f.int("q_lora_rank")  # null: full-rank query projection (V2-Lite)
    return "mla", fields, "kv_lora_rank (mla: one latent per token, shared by every head)"


def _layer_types(f: _Fields, model_type: str, n_layers: int) -> tuple[tuple[str, ...], int | None]:
    """The kind of every layer and the sliding window, from the most explicit field present."""
    window = f.int("sliding_window") if f.has("sliding_window") else None
    # Qwen2-style switches: use_sliding_window false (the default where max_window_layers exists) disables it
    qwen_style = f.has("use_sliding_window") or f.has("max_window_layers")
    enabled = f.bool("use_sliding_window", False) if qwen_style else True
    if f.has("layer_types"):
        kinds = _listed_kinds(f, n_layers)
        if "sliding" in kinds:
            if window is None:
                f.fail("layer_types", "lists sliding_attention layers but sliding_window is not set")
            if not enabled:
                f.fail("layer_types", "lists sliding_attention layers but use_sliding_window is false")
            return kinds, window
        return kinds, None
    if f.has("attn_type_list"):  # MiniMax-01: 0 = lightning (linear) attention, 1 = softmax attention
        values = f.raw("attn_type_list")
        if not isinstance(values, list) or len(values) != n_layers or any(v not in (0, 1) for v in values):
            f.fail("attn_type_list", f"must list 0 (linear) or 1 (softmax) for each of the {n_layers} layers")
        return tuple("full" if v == 1 else "linear" for v in values), None
    if f.has("full_attention_interval"):  # Qwen3-Next: every k-th layer softmax, the others linear
        k = f.int("full_attention_interval")
        return tuple("full" if (i + 1) % k == 0 else "linear" for i in range(n_layers)), None
    if window is None or not enabled:
        return ("full",) * n_layers, None
    if "sliding_window_pattern" in (f.defaults or {}):  # Gemma-2/3, Cohere2, gpt-oss: every period-th layer global
        period = f.int("sliding_window_pattern")
        return tuple("full" if (i + 1) % period == 0 else "sliding" for i in range(n_layers)), window
    if qwen_style:  # Qwen2: layers from max_window_layers on slide (transformers' Qwen2Config)
        first = f.int("max_window_layers", 0, minimum=0)
        return tuple("sliding" if i >= first else "full" for i in range(n_layers)), window
    return ("sliding",) * n_layers, window  # Mistral-7B-v0.1, Phi-3, Starcoder2: every layer


def _layout(f: _Fields, model_type: str) -> dict:
    """The kind of every layer and what the kinds need: {layer_types, window, chunk, parallel_mamba,
    layer_kv_heads + kv_from (per-layer KV heads), unsized}, from the most explicit field present."""
    if model_type == "nemotron-nas" or f.explicit("block_configs"):
        return _block_configs(f)
    if model_type == "nemotron_h" and not f.explicit("layers_block_type") and not f.explicit("layer_types"):
        pattern = f.raw("hybrid_override_pattern")
        if not isinstance(pattern, str) or not pattern or any(c not in NEMOTRON_H_PATTERN for c in pattern):
            f.fail("hybrid_override_pattern", f"{pattern!r} must be a string of {', '.join(NEMOTRON_H_PATTERN)} "
                   "(Mamba-2, attention, MLP, MoE), one per layer")  # fmt: skip
        if f.explicit("num_hidden_layers") and f.int("num_hidden_layers") != len(pattern):
            f.fail("num_hidden_layers", f"{f.int('num_hidden_layers')} disagrees with hybrid_override_pattern's "
                   f"{len(pattern)} layers")  # fmt: skip
        return {"layer_types": tuple(NEMOTRON_H_PATTERN[c] for c in pattern)}
    listed = next((k for k in ("layer_types", "layers_block_type") if f.explicit(k)), None)
    key, n_layers = f.one_of(LAYERS, "layer count")
    if n_layers > MAX_LAYERS:  # before a tuple of n_layers layer kinds is built
        f.fail(key, f"{n_layers:,} layers is more than attncli handles ({MAX_LAYERS:,})")
    if model_type == "bamba":
        return _bamba_layers(f, listed, n_layers)
    if model_type == "jamba" and not listed:  # JambaConfig.layers_block_type: attention where i % period == offset
        period, offset = f.int("attn_layer_period"), f.int("attn_layer_offset", minimum=0)
        if offset >= period:
            f.fail("attn_layer_offset", f"{offset} must be below attn_layer_period {period}")
        return {"layer_types": tuple("full" if i % period == offset else "mamba" for i in range(n_layers))}
    if model_type == "falcon_h1":  # FalconH1Config.layers_block_type: every layer `hybrid` (attention ∥ Mamba-2)
        return {"layer_types": ("full",) * n_layers, "parallel_mamba": True}
    if model_type == "granitemoehybrid" and not listed:
        return {"layer_types": ("mamba",) * n_layers}  # GraniteMoeHybridConfig: no layer_types → every layer Mamba-2
    if model_type in MAMBA_TYPES and (listed or model_type == "zamba2"):
        return _mamba_kinds(f, model_type, listed, n_layers)
    if "attention_chunk_size" in (f.defaults or {}) and not listed:
        return _chunked(f, n_layers)
    if model_type == "minimax" and not listed and not f.explicit("attn_type_list"):
        # MiniMaxConfig.__post_init__: with no layer_types, full and linear layers alternate, full first
        return {"layer_types": tuple("full" if (i + 1) % 2 else "linear" for i in range(n_layers))}
    layer_types, window = _layer_types(f, model_type, n_layers)
    out = {"layer_types": layer_types, "window": window}
    if "chunked" in layer_types:  # an explicit layer_types with chunked_attention layers
        if not f.has("attention_chunk_size"):
            f.fail("layer_types", "lists chunked_attention layers but attention_chunk_size is not set")
        out["chunk"] = f.int("attention_chunk_size")
    if "mamba" in layer_types:
        f.fail("layer_types", f"lists mamba layers, but model_type '{model_type}' has no known Mamba state",
               f"known: {', '.join(MAMBA_TYPES)}")  # fmt: skip
    return out


def _chunked(f: _Fields, n_layers: int) -> dict:
    """Llama 4 (Llama4TextConfig.__post_init__, vLLM's Llama4Attention): a layer that uses RoPE
    (no_rope_layers[i] = 1) attends within its chunk of attention_chunk_size tokens; the NoPE
    layers (0) attend to every token. An empty or absent no_rope_layers makes every
    no_rope_layer_interval-th layer NoPE."""
    chunk = f.int("attention_chunk_size")
    flags = f.raw("no_rope_layers")
    if not flags:
        interval = f.int("no_rope_layer_interval")
        if f.explicit("nope_layer_interval") and f.int("nope_layer_interval") != interval:
            f.fail("nope_layer_interval", f"{f.int('nope_layer_interval')} disagrees with no_rope_layer_interval {interval}, "
                   "which transformers reads")  # fmt: skip
        flags = [int((i + 1) % interval != 0) for i in range(n_layers)]
    if not isinstance(flags, list) or len(flags) != n_layers or any(v not in (0, 1) for v in flags):
        f.fail("no_rope_layers", f"must list 0 (NoPE) or 1 (RoPE) for each of the {n_layers} layers")
    if chunk is None:
        return {"layer_types": ("full",) * n_layers}
    return {"layer_types": tuple("chunked" if v else "full" for v in flags), "chunk": chunk}


def _bamba_layers(f: _Fields, listed: str | None, n_layers: int) -> dict:
    """Bamba (BambaConfig.layers_block_type, which vLLM's BambaModel reads): full attention at the
    attn_layer_indices, Mamba-2 on every other layer; none listed, every layer Mamba-2."""
    if listed:  # a read-only property of BambaConfig (layer_types maps onto it): the indices decide
        f.fail(listed, "is derived by BambaConfig from attn_layer_indices, which it would contradict",
               "give attn_layer_indices: the layers with attention")  # fmt: skip
    indices = f.raw("attn_layer_indices", [])
    if not isinstance(indices, list) or any(not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n_layers
                                            for i in indices):  # fmt: skip
        f.fail("attn_layer_indices", f"{indices!r} must list layer indices from 0 to {n_layers - 1}")
    return {"layer_types": tuple("full" if i in indices else "mamba" for i in range(n_layers))}


def _mamba_kinds(f: _Fields, model_type: str, listed: str | None, n_layers: int) -> dict:
    """A hybrid Mamba model's listed layers (Granite-4.0-H, Nemotron-H layers_block_type, Zamba2):
    mamba/linear_attention → mamba, attention/full_attention → full, mlp/moe → none; Zamba2's
    `hybrid` layers run its shared attention block beside their Mamba-2 block."""
    if listed is None:  # Zamba2Config.__post_init__'s default list
        values = (["linear_attention"] + (["linear_attention"] * 5 + ["hybrid"]) * 7 + ["linear_attention"] * 4
                  + ["hybrid"] + ["linear_attention"] * 3 + ["hybrid"] + ["linear_attention"] * 2)  # fmt: skip
        listed = "layers_block_type"
    else:
        values = f.raw(listed)
    names = {"mamba": "mamba", "linear_attention": "mamba", "attention": "full", "full_attention": "full",
             "mlp": "none", "moe": "none", "hybrid": "hybrid"}  # fmt: skip
    if not isinstance(values, list) or len(values) != n_layers:
        f.fail(listed, f"must list one kind for each of the {n_layers} layers")
    kinds = []
    for i, v in enumerate(values):
        if v not in names or (v == "hybrid" and model_type != "zamba2"):
            f.fail(f"{listed}[{i}]", f"unknown layer kind {v!r} for model_type '{model_type}'",
                   f"known: {', '.join(names)}")  # fmt: skip
        kinds.append(names[v])
    if model_type == "zamba2":  # a hybrid layer = shared attention + Mamba-2; the others Mamba-2 alone
        return {"layer_types": tuple("full" if k == "hybrid" else k for k in kinds), "parallel_mamba": True}
    return {"layer_types": tuple(kinds)}


def _block_configs(f: _Fields) -> dict:
    """Nemotron-NAS (DeciLM) per-layer blocks, as vLLM's DeciLMDecoderLayer reads them: a layer
    whose attention is `no_op` (or `replace_with_linear`, a plain linear map) holds no cache; the
    others have num_attention_heads / n_heads_in_group KV heads."""
    blocks = f.raw("block_configs")
    _, n_heads = f.one_of(HEADS, "attention head count")
    if not isinstance(blocks, list) or not blocks:
        f.fail("block_configs", "must list one block (attention, ffn) per layer")
    if f.explicit("num_hidden_layers") and f.int("num_hidden_layers") != len(blocks):
        f.fail("block_configs", f"lists {len(blocks)} blocks for num_hidden_layers {f.int('num_hidden_layers')}")
    kinds, kv = [], []
    for i, block in enumerate(blocks):
        attention = block.get("attention") if isinstance(block, dict) else None
        key = f"block_configs[{i}].attention"
        if not isinstance(attention, dict):
            f.fail(key, "missing: each block needs an attention section")
        if attention.get("no_op") or attention.get("replace_with_linear"):
            kinds.append("none")
            kv.append(None)
            continue
        if attention.get("window_length") is not None or attention.get("num_sink_tokens") is not None:
            f.fail(f"{key}.window_length", "per-layer windows and sink tokens are not supported")
        group = attention.get("n_heads_in_group")
        if not isinstance(group, int) or isinstance(group, bool) or group < 1 or n_heads % group:
            f.fail(f"{key}.n_heads_in_group", f"{group!r} must be a positive divisor of the {n_heads} attention heads")
        kinds.append("full")
        kv.append(n_heads // group)
    if "full" not in kinds:
        f.fail("block_configs", "no block has attention: nothing would cache")
    return {"layer_types": tuple(kinds), "layer_kv_heads": tuple(kv),
            "kv_from": "block_configs[].attention.n_heads_in_group (num_attention_heads / n_heads_in_group per layer; "
                       "no_op and replace_with_linear layers cache nothing)",
            "unsized": (("block_configs", "block_configs: per-layer FFN widths (ffn.ffn_mult) are not counted"),)}


def _mamba(f: _Fields, model_type: str, d_model: int) -> MambaLayerSpec:
    """The Mamba layers' state sizes, as each model's vLLM class reads them
    (get_mamba_state_shape_from_config of NemotronH, Jamba, Zamba2, FalconH1, GraniteMoeHybrid,
    Bamba, Mamba2; MambaMixer.get_state_shape for Mamba and Falcon-Mamba)."""
    need = lambda key: _needed(f, key)  # noqa: E731
    if model_type in ("mamba", "falcon_mamba"):
        # Mamba-1. MambaConfig/FalconMambaConfig.__post_init__ set intermediate_size = expand × hidden_size
        # unless the config gives it (Falcon-Mamba-7B: 8192, though expand 16 × 4096 would be 65536);
        # vLLM's MambaMixer and its state shape read config.intermediate_size
        if f.explicit("intermediate_size"):
            d_inner, width = f.int("intermediate_size"), "intermediate_size"
        else:
            d_inner, width = need("expand") * d_model, "expand × hidden_size"
        return MambaLayerSpec(version=1, d_inner=d_inner, d_state=need("state_size"), d_conv=need("conv_kernel"),
                              width_from=width)  # fmt: skip
    if model_type == "mamba2":
        # vLLM's Mamba2ForCausalLM sizes the state from expand × hidden_size; its layers take intermediate_size
        # when the config gives one, so the two must agree; Mamba2Config.validate_architecture: heads × head_dim
        d_inner = need("expand") * d_model
        if f.explicit("intermediate_size") and f.int("intermediate_size") != d_inner:
            f.fail("intermediate_size", f"{f.int('intermediate_size')} disagrees with expand × hidden_size = {d_inner}, "
                   "from which vLLM sizes the Mamba-2 state")  # fmt: skip
        heads, head_dim = need("num_heads"), need("head_dim")
        if heads * head_dim != d_inner:
            f.fail("num_heads", f"{heads} heads × head_dim {head_dim} is not expand × hidden_size = {d_inner} "
                   "(Mamba2Config requires it)")  # fmt: skip
        return MambaLayerSpec(version=2, d_inner=d_inner, d_state=need("state_size"), d_conv=need("conv_kernel"),
                              n_groups=need("n_groups"), heads=heads, head_dim=head_dim,
                              width_from="expand × hidden_size", heads_from="num_heads", groups_from="n_groups")  # fmt: skip
    if model_type == "bamba":
        # vLLM's BambaForCausalLM: intermediate = mamba_expand × hidden_size; mamba_d_head `auto` =
        # intermediate // mamba_n_heads (BambaConfig.__post_init__), and validate_architecture wants heads × d_head
        d_inner, heads = need("mamba_expand") * d_model, need("mamba_n_heads")
        if d_inner % heads:
            f.fail("mamba_n_heads", f"{heads} heads do not divide mamba_expand × hidden_size = {d_inner}")
        head_dim = d_inner // heads if f.raw("mamba_d_head") == "auto" else need("mamba_d_head")
        if heads * head_dim != d_inner:
            f.fail("mamba_d_head", f"{head_dim} × mamba_n_heads {heads} is not mamba_expand × hidden_size = {d_inner} "
                   "(BambaConfig requires it)")  # fmt: skip
        return MambaLayerSpec(version=2, d_inner=d_inner, d_state=need("mamba_d_state"), d_conv=need("mamba_d_conv"),
                              n_groups=need("mamba_n_groups"), heads=heads, head_dim=head_dim,
                              width_from="mamba_expand × hidden_size", heads_from="mamba_n_heads",
                              groups_from="mamba_n_groups")  # fmt: skip
    if model_type == "nemotron_h":  # intermediate = mamba_num_heads × mamba_head_dim (expand is not read)
        heads, head_dim = f.int("mamba_num_heads"), f.int("mamba_head_dim")
        groups_key = "mamba_n_groups" if f.explicit("mamba_n_groups") else "n_groups"  # legacy spelling first
        conv = f.int("mamba_d_conv") if f.explicit("mamba_d_conv") else f.int("conv_kernel")
        ssm_dtype = _nemotron_h_ssm_dtype(f)
        return MambaLayerSpec(version=2, d_inner=heads * head_dim, d_state=f.int("ssm_state_size"), d_conv=conv,
                              n_groups=f.int(groups_key), heads=heads, head_dim=head_dim,
                              width_from="mamba_num_heads × mamba_head_dim", heads_from="mamba_num_heads",
                              groups_from=groups_key, ssm_dtype=ssm_dtype)  # fmt: skip
    if model_type == "jamba":  # Mamba-1: intermediate = mamba_expand × hidden_size
        return MambaLayerSpec(version=1, d_inner=f.int("mamba_expand") * d_model, d_state=f.int("mamba_d_state"),
                              d_conv=f.int("mamba_d_conv"), width_from="mamba_expand × hidden_size")  # fmt: skip
    if model_type == "zamba2":  # head_dim = intermediate // n_mamba_heads (Zamba2Config.mamba_headdim)
        d_inner, heads = f.int("mamba_expand") * d_model, f.int("n_mamba_heads")
        return MambaLayerSpec(version=2, d_inner=d_inner, d_state=f.int("mamba_d_state"), d_conv=f.int("mamba_d_conv"),
                              n_groups=f.int("mamba_ngroups"), heads=heads, head_dim=d_inner // heads,
                              width_from="mamba_expand × hidden_size", heads_from="n_mamba_heads",
                              groups_from="mamba_ngroups")  # fmt: skip
    # Falcon-H1 (mamba_d_ssm when set) and Granite-4.0-H: mamba_d_head `auto` = intermediate // mamba_n_heads
    d_ssm = model_type == "falcon_h1" and f.has("mamba_d_ssm")
    d_inner = f.int("mamba_d_ssm") if d_ssm else f.int("mamba_expand") * d_model
    heads = f.int("mamba_n_heads")
    head_dim = d_inner // heads if f.raw("mamba_d_head") == "auto" else f.int("mamba_d_head")
    return MambaLayerSpec(version=2, d_inner=d_inner, d_state=f.int("mamba_d_state"), d_conv=f.int("mamba_d_conv"),
                          n_groups=f.int("mamba_n_groups"), heads=heads, head_dim=head_dim,
                          width_from="mamba_d_ssm" if d_ssm else "mamba_expand × hidden_size",
                          heads_from="mamba_n_heads", groups_from="mamba_n_groups")  # fmt: skip


# vLLM's NemotronHForCausalLMConfig (vllm/model_executor/models/config.py) is registered in
# MODELS_CONFIG_MAP for these architectures only
NEMOTRON_H_HOOKED = ("NemotronHForCausalLM", "NemotronHPuzzleForCausalLM")


def _nemotron_h_ssm_dtype(f: _Fields) -> str | None:
    """The SSM state's dtype of a Nemotron-H model as vLLM serves it (None: the model dtype).

    vLLM's NemotronHForCausalLMConfig.update_mamba_ssm_cache_dtype (models/config.py): with
    mamba_ssm_cache_dtype `auto` (vLLM's default) it takes getattr(hf_config,
    "mamba_ssm_cache_dtype", "float32") ("Only float32 is known to have no accuracy issues by
    default"); transformers' NemotronHConfig declares the field with the same default (defaults.py).
    MambaStateDtypeCalculator._mamba_state_dtype then stores the temporal (SSM) state at it, or at
    the convolution state's dtype (the model's) for `auto`; the convolution state is untouched.
    Any other value vLLM cannot store (an explicit null included) is refused by name."""
    archs = f.raw("architectures")
    if isinstance(archs, list) and archs and not any(a in NEMOTRON_H_HOOKED for a in archs):
        f.fail("architectures", f"{archs!r} names none of {', '.join(NEMOTRON_H_HOOKED)}, the architectures "
               "vLLM's Nemotron-H hook sets the SSM state dtype for, so attncli cannot tell that dtype")  # fmt: skip
    value = f.value("mamba_ssm_cache_dtype")
    if value == "auto":
        return None
    if value not in MAMBA_STATE_DTYPES:
        f.fail("mamba_ssm_cache_dtype", f"{value!r} is not a dtype vLLM stores the SSM state in",
               f"choices: auto, {', '.join(MAMBA_STATE_DTYPES)}")  # fmt: skip
    return value


def _needed(f: _Fields, key: str) -> int:
    """A whole-number field a Mamba state needs: the config's, else its type's default; absent from
    both (an explicit null), refused by name."""
    value = f.int(key)
    if value is None:
        f.fail(key, f"missing: the Mamba state of model_type '{f.model_type}' needs it")
    return value


def _listed_kinds(f: _Fields, n_layers: int) -> tuple[str, ...]:
    values = f.raw("layer_types")
    if not isinstance(values, list) or len(values) != n_layers:
        f.fail("layer_types", f"must list one kind for each of the {n_layers} layers")
    kinds = []
    for i, v in enumerate(values):
        if not isinstance(v, str) or v not in LAYER_TYPE_NAMES:  # a list or mapping is not a kind (nor hashable)
            f.fail(f"layer_types[{i}]", f"unknown layer kind {v!r}", f"known: {', '.join(LAYER_TYPE_NAMES)}")
        kinds.append(LAYER_TYPE_NAMES[v])
    return tuple(kinds)


def _linear(f: _Fields, model_type: str, n_heads: int, head_dim: int) -> LinearLayerSpec:
    """The recurrent state of the linear layers, by family."""
    if f.has("linear_num_value_heads") or model_type == "qwen3_next":  # Gated DeltaNet
        need = ("linear_num_value_heads", "linear_num_key_heads", "linear_key_head_dim", "linear_value_head_dim")
        for key in need:
            if not f.has(key):
                f.fail(key, "missing: Qwen3-Next's linear (Gated DeltaNet) layers need it")
        return LinearLayerSpec(kind="gated_deltanet", heads=f.int("linear_num_value_heads"),
                               key_heads=f.int("linear_num_key_heads"), key_dim=f.int("linear_key_head_dim"),
                               value_dim=f.int("linear_value_head_dim"),
                               conv_kernel=f.int("linear_conv_kernel_dim", 4))  # fmt: skip
    if f.has("attn_type_list") or model_type.startswith("minimax"):  # lightning attention: heads × d × d
        return LinearLayerSpec(kind="lightning", heads=n_heads, key_dim=head_dim, value_dim=head_dim)
    f.fail("layer_types", f"lists linear_attention layers, but model_type '{model_type}' has no known linear-attention state",
           "known: MiniMax-01 lightning attention, Qwen3-Next Gated DeltaNet")  # fmt: skip


def _moe(f: _Fields) -> MoESpec | None:
    """Mixture-of-experts MLPs: DeepSeek (n_routed_experts), Mixtral/MiniMax (num_local_experts),
    Qwen-MoE (num_experts); None for a dense model."""
    key, experts = f.one_of(("n_routed_experts", "num_local_experts", "num_experts"), "expert count",
                            required=False, minimum=0)  # fmt: skip
    if key is None or experts <= 1:
        return None
    if f.raw("mlp_only_layers"):
        f.fail("mlp_only_layers", "dense layers listed among MoE layers are not supported")
    top_k = f.int("num_experts_per_tok")
    if top_k is None:
        f.fail("num_experts_per_tok", f"missing: {f.prefix}{key} makes this a mixture-of-experts model")
    if key == "num_local_experts":  # Mixtral, MiniMax: intermediate_size is each expert's width
        d_ff = f.int("intermediate_size")
        shared_ff = f.int("shared_intermediate_size", 0, minimum=0)
        shared = 1 if shared_ff else 0
    else:
        d_ff = f.int("moe_intermediate_size")
        if d_ff is None:
            f.fail("moe_intermediate_size", f"missing: {f.prefix}{key} makes this a mixture-of-experts model")
        if f.has("shared_expert_intermediate_size"):  # Qwen-MoE: one shared expert of this width
            shared_ff = f.int("shared_expert_intermediate_size", minimum=0)
            shared = 1 if shared_ff else 0
        else:  # DeepSeek: n_shared_experts experts of the routed width
            shared, shared_ff = f.int("n_shared_experts", 0, minimum=0), None
    if top_k > experts:
        f.fail("num_experts_per_tok", f"{top_k} exceeds the {experts} experts ({f.prefix}{key})")
    return MoESpec(experts=experts, experts_per_token=top_k, d_ff=d_ff, shared_experts=shared,
                   shared_d_ff=shared_ff or None, first_dense=f.int("first_k_dense_replace", 0, minimum=0),
                   every=f.int("moe_layer_freq") or f.int("decoder_sparse_step") or 1)  # fmt: skip


def _mlp(f: _Fields, model_type: str, d_model: int, moe: MoESpec | None) -> tuple[str, int | None]:
    """(dense MLP kind, its hidden width). Falcon and GPT-2-style models use a plain 4·d GELU MLP."""
    if model_type in FALCON_TYPES or model_type in ("gpt2", "gpt_bigcode"):
        width = f.int("ffn_hidden_size") or f.int("n_inner") or 4 * d_model
        return "plain", width
    return "gated", f.int("intermediate_size") or f.int("ffn_hidden_size")


def _token_d_ff(dense_d_ff: int | None, moe: MoESpec | None) -> int | None:
    """The FFN width one token passes through (rows' ffn_flops): the dense MLP's, or for MoE the
    routed experts it uses plus the shared ones."""
    if moe is None:
        return dense_d_ff
    return moe.experts_per_token * moe.d_ff + moe.shared_experts * (moe.shared_d_ff or moe.d_ff)
