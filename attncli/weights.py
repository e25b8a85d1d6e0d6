"""Real weights: one attention layer of a local Hugging Face checkpoint, and the inputs it sees.

A checkpoint is a folder with `config.json` and `*.safetensors` (one file, or shards listed by
`model.safetensors.index.json`), or one `.safetensors` file with `config.json` beside it. Nothing
is downloaded. What each architecture stores and how its config fields map onto an attncli
layer is its reader's (attncli/models/<family>.py, registry in models/reader.py); this module
keeps the checkpoint mechanics: the index, the headers, dtypes, FP8 dequantisation, the inputs.

This module is pure Python at import: config.json and the safetensors headers (an 8-byte length
and a JSON table of names, dtypes and shapes) are read without torch, so an unsupported
model_type, a missing tensor, a shape that disagrees with the config or an unsupported
`rope_scaling` fails with exit 2 before torch loads and before any tensor is read. Tensors
themselves are read with the `safetensors` package.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from . import rope_scaling
from .errors import InputError, ResourceError, read_text, regular_file
from .models.defaults import text_config_type
from .models.reader import LayerAttn, ModelConfig, reader_for, supported  # noqa: F401 (ModelConfig: convert's type)
from .spec import AttentionSpec, GQASpec, MLASpec, PresetSpec, Shape

CONFIG_NAME = "config.json"
INDEX_NAME = "model.safetensors.index.json"
INSTALL_HINT = ("install it: pip install safetensors (a dependency of attncli; "
                "in a checkout: .venv/bin/pip install -e .)")
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit on the JSON header


def require_safetensors(option: str = "--weights") -> None:
    """Exit 3 (one line, with an install hint) when the safetensors package is missing."""
    if importlib.util.find_spec("safetensors") is None:
        raise ResourceError(option, "the safetensors package is not installed", INSTALL_HINT)


def parse_config(cfg: dict, where: str) -> ModelConfig:
    """Validate a config.json mapping with its architecture's reader and name the field at fault."""
    if not isinstance(cfg, dict):
        raise InputError(where, "is not a JSON object")
    return reader_for(cfg.get("model_type"), where).parse(cfg, where)


def attention_shapes(cfg: ModelConfig) -> dict[str, tuple[tuple[int, ...], str]]:
    """The tensors of one attention layer as stored (names relative to the attention module) →
    (shape, the config fields that imply it)."""
    return reader_for(cfg.model_type, cfg.model_type).stored(cfg)


# ------------------------------------------------------------------------------------------------
# safetensors files, read without torch


@dataclass(frozen=True)
class TensorInfo:
    file: Path
    dtype: str  # safetensors' name: F32, BF16, F8_E4M3, ...
    shape: tuple[int, ...]


def read_header(path: Path, where: str | None = None) -> dict[str, TensorInfo]:
    """Names, dtypes and shapes of the tensors in one .safetensors file (its JSON header)."""
    where = where or str(path)
    regular_file(path, where, "safetensors file")  # a FIFO or device would block or never end
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            size = path.stat().st_size
            if n <= 0 or n > MAX_HEADER_BYTES or n > size - 8:
                raise InputError(where, "is not a safetensors file (no valid header)")
            table = json.loads(f.read(n).decode("utf-8"))
    except FileNotFoundError:
        raise InputError(where, "no such file") from None
    except IsADirectoryError:
        raise InputError(where, "is a folder, not a .safetensors file") from None
    except PermissionError:
        raise InputError(where, "cannot be read (permission denied)") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(where, "is not a safetensors file (its header is not JSON)") from None
    if not isinstance(table, dict):
        raise InputError(where, "is not a safetensors file (its header is not a table)")
    out = {}
    for name, info in table.items():
        if name == "__metadata__":
            continue
        try:
            out[name] = TensorInfo(path, str(info["dtype"]), tuple(int(s) for s in info["shape"]))
        except (TypeError, KeyError, ValueError):
            raise InputError(where, f"tensor '{name}' has a malformed header entry") from None
    return out


FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")  # safetensors' names of float storage


def check_float(info: TensorInfo, name: str, where: str) -> None:
    """Weights and hidden states are floats: an integer or boolean tensor (a quantised format attncli
    does not read, or a mistake) is refused rather than measured as if it held the values."""
    if info.dtype not in FLOAT_DTYPES:
        raise InputError(where, f"tensor '{name}' is stored as {info.dtype}, not a float dtype",
                         f"attncli reads {', '.join(FLOAT_DTYPES)} tensors")  # fmt: skip


def _read_json(path: Path) -> dict:
    try:
        return json.loads(read_text(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(str(path), f"is not valid JSON ({e.__class__.__name__})") from None
    except OSError as e:
        raise InputError(str(path), f"cannot be read ({e.strerror or e})") from None


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


# ------------------------------------------------------------------------------------------------
# a checkpoint


class Checkpoint:
    """A local checkpoint: its config, and where every tensor lives. Reads no tensor data until
    asked; `layer_tensors` and `hidden_states` import torch."""

    def __init__(self, path: str, option: str = "--weights"):
        require_safetensors(option)
        self.where = path
        p = Path(path).expanduser()
        if not p.exists():
            raise InputError(option, f"'{path}' does not exist", "give a folder with config.json and *.safetensors")
        folder = p if p.is_dir() else p.parent
        config_path = folder / CONFIG_NAME
        if not config_path.is_file():
            raise InputError(path, f"no {CONFIG_NAME} in {folder}",
                             "attncli reads the layer's shape from config.json beside the weights")  # fmt: skip
        self.folder, self.config_path = folder, config_path
        self.raw_config = _read_json(config_path)
        if not isinstance(self.raw_config, dict):
            raise InputError(str(config_path), "is not a JSON object")
        config, self.text_prefix = self.raw_config, None
        text_type = text_config_type(config.get("model_type"))
        if text_type is not None and isinstance(config.get("text_config"), dict):
            # a multimodal wrapper (gemma3): its language model's config, under its text model type
            config = {**config["text_config"], "model_type": text_type}
            self.text_prefix = "language_model"
        self.reader = reader_for(config.get("model_type"), str(config_path))  # before any tensor
        self.config = self.reader.parse(config, str(config_path))
        self.tensors = self._index(p)
        self.prefix = self._prefix()
        self._last: tuple = (None, None)  # ((layer, dtype), tensors) of the last layer read

    # -- where the tensors are -------------------------------------------------------------------

    def _index(self, p: Path) -> dict[str, TensorInfo]:
        if p.is_file():
            return read_header(p)
        index = p / INDEX_NAME
        tensors: dict[str, TensorInfo] = {}
        if index.is_file():
            weight_map = _read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise InputError(str(index), "has no 'weight_map' of tensor name → file")
            headers = {}
            for name, file in weight_map.items():
                shard = p / str(file)
                if shard not in headers:
                    if not shard.is_file():
                        raise InputError(str(index), f"names shard '{file}' (for '{name}'), which is not in {p}")
                    headers[shard] = read_header(shard)
                if name not in headers[shard]:
                    raise InputError(str(shard), f"missing tensor '{name}' (listed in {INDEX_NAME})")
                tensors[name] = headers[shard][name]
            return tensors
        files = sorted(p.glob("*.safetensors"))
        if not files:
            raise InputError(str(p), "holds no .safetensors file",
                             "attncli reads safetensors checkpoints (save_pretrained writes them)")  # fmt: skip
        for file in files:
            tensors.update(read_header(file))
        return tensors

    def _prefix(self) -> str:
        """What comes before `layers.N.self_attn.` (`model.` for *ForCausalLM, '' for a bare model;
        `gpt_neox.` before `layers.N.attention.`, `transformer.` before `h.N.self_attention.`)."""
        r = self.reader
        found: dict[str, int] = {}
        pattern = re.compile(rf"^(.*?){re.escape(r.layers_name)}\.\d+\.{re.escape(r.attention_name)}\.")
        for name in self.tensors:
            m = pattern.match(name)
            if m and (self.text_prefix is None or self.text_prefix in m.group(1)):  # not a vision tower's layers
                found[m.group(1)] = found.get(m.group(1), 0) + 1
        if not found:
            raise InputError(self.where, f"holds no attention layer (no tensor named "
                                         f"'…{r.layers_name}.N.{r.attention_name}.…')")  # fmt: skip
        return max(found, key=found.get)

    def layer_prefix(self, layer: int) -> str:
        return f"{self.prefix}{self.reader.layers_name}.{layer}."

    def name(self, layer: int, rel: str) -> str:
        return f"{self.layer_prefix(layer)}{self.reader.attention_name}.{rel}"

    def check_layer(self, layer: int, option: str = "--layer") -> None:
        """Every tensor the layer needs is present with the shape the config implies, and none is
        left over (a tensor attncli would ignore means a layer it does not understand)."""
        n = self.config.n_layers
        if not 0 <= layer < n:
            raise InputError(option, f"layer {layer} is out of range: the checkpoint has {n} layers (0–{n - 1})")
        expected = attention_shapes(self.config)
        for rel, (shape, why) in expected.items():
            full = self.name(layer, rel)
            info = self.tensors.get(full)
            if info is None:
                raise InputError(self.where, f"missing tensor '{full}'")
            if info.shape != shape:
                raise InputError(self.where, f"tensor '{full}' has shape {_shape_text(info.shape)} but config.json "
                                             f"implies {_shape_text(shape)} ({why})")  # fmt: skip
            check_float(info, full, self.where)
        own = self.name(layer, "")
        for full in self.tensors:
            if full.startswith(own):
                rel = full[len(own) :]
                if rel in expected or self.reader.ignored(rel):
                    continue
                if rel.endswith("_scale_inv") and rel[: -len("_scale_inv")] in expected and self.config.fp8_block:
                    continue
                raise InputError(self.where, f"unexpected tensor '{full}': not part of a {self.config.model_type} "
                                             "attention layer as attncli reads it")  # fmt: skip

    def _checked(self, name: str, shape: tuple[int, ...] | None, why: str, hint: str | None = None) -> TensorInfo:
        info = self.tensors.get(name)
        if info is None:
            raise InputError(self.where, f"missing tensor '{name}'", hint)
        if shape is not None and info.shape != shape:
            raise InputError(self.where, f"tensor '{name}' has shape {_shape_text(info.shape)} but config.json implies "
                                         f"{_shape_text(shape)} ({why})")  # fmt: skip
        check_float(info, name, self.where)
        return info

    def norm_name(self, layer: int, part: str = "weight") -> str | None:
        norm = self.reader.norm_of(self.config)
        return None if norm is None else f"{self.layer_prefix(layer)}{norm}.{part}"

    def embed_name(self) -> str:
        return f"{self.prefix}{self.reader.embed_name}.weight"

    def check_inputs(self, layer: int) -> None:
        """The tensors the default inputs need: the token embeddings and the layer's input norm."""
        hint = "the default inputs are the checkpoint's embeddings through the layer's input norm; or give --inputs"
        d = self.config.d_model
        info = self._checked(self.embed_name(), None, "", hint)
        if len(info.shape) != 2 or info.shape[1] != d:
            raise InputError(self.where, f"tensor '{self.embed_name()}' has shape {_shape_text(info.shape)} but "
                                         f"config.json implies [vocab, {d}] (hidden_size {d})")  # fmt: skip
        if self.norm_name(layer) is not None:
            self._checked(self.norm_name(layer), (d,), f"hidden_size {d}", hint)

    # -- specs -----------------------------------------------------------------------------------

    def specs(self, layer: int) -> list[AttentionSpec]:
        """The layer as attncli specs: one for MHA/GQA/MQA; MLA's naive and absorbed paths."""
        c = self.config
        label = f"{c.model_type}-L{layer}"
        if c.family == "gqa":
            family = "mha" if c.n_kv_heads == c.n_heads else "mqa" if c.n_kv_heads == 1 else "gqa"
            at = c.layer(layer)
            rope = at.rope
            rotary = rope.dim if rope is not None and rope.dim < c.head_dim else None
            # the label names what the layer adds (`gemma2-L0-w4096-cap50`, `smollm3-L3-nope`)
            parts = [label, f"w{at.window}" if at.window else "", "nope" if rope is None else "",
                     "qknorm" if c.qk_norm else "", f"cap{c.softcap:g}" if c.softcap else "",
                     "sinks" if c.sinks else "", f"rot{rotary}" if rotary else ""]  # fmt: skip
            return [GQASpec(family=family, d_model=c.d_model, n_heads=c.n_heads, head_dim=c.head_dim,
                            n_kv_heads=c.n_kv_heads, position="rope" if rope is not None else "none",
                            rope_theta=rope.theta if rope is not None else 10000.0, window=at.window,
                            qk_norm=c.qk_norm, qk_norm_over=c.qk_norm_over, qk_norm_type=c.qk_norm_type,
                            norm_eps=c.norm_eps, softcap=c.softcap, sinks=c.sinks, rotary_dim=rotary,
                            scale=c.scale, label="-".join(p for p in parts if p))]  # fmt: skip
        return [MLASpec(family="mla", d_model=c.d_model, n_heads=c.n_heads, kv_lora_rank=c.kv_lora_rank,
                        q_lora_rank=c.q_lora_rank, qk_nope_head_dim=c.qk_nope_head_dim,
                        qk_rope_head_dim=c.qk_rope_head_dim, v_head_dim=c.v_head_dim, absorb=absorb,
                        rope_theta=c.rope.theta, label=f"{label}-{'absorb' if absorb else 'naive'}")
                for absorb in (False, True)]  # fmt: skip

    def preset(self) -> PresetSpec:
        c = self.config
        return PresetSpec(name=self.folder.name or c.model_type, d_model=c.d_model, n_heads=c.n_heads,
                          head_dim=c.head_dim, n_layers=c.n_layers, d_ff=c.d_ff,
                          description=f"{c.model_type} checkpoint", source=str(self.where))  # fmt: skip

    # -- tensors (torch) -------------------------------------------------------------------------

    def read(self, names: list[str]) -> dict:
        """Tensors by full name, as stored (FP8 block-quantised weights dequantised to float32)."""
        from safetensors import safe_open

        by_file: dict[Path, list[str]] = {}
        for name in names:
            by_file.setdefault(self.tensors[name].file, []).append(name)
            scale = f"{name}_scale_inv"
            if self.config.fp8_block and self.tensors[name].dtype.startswith("F8") and scale in self.tensors:
                by_file.setdefault(self.tensors[scale].file, []).append(scale)
        raw = {}
        for file, group in by_file.items():
            try:
                with safe_open(str(file), framework="pt") as f:
                    for name in group:
                        raw[name] = f.get_tensor(name)
            except Exception as e:  # noqa: BLE001 - a corrupt or truncated file: one line naming it
                why = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise InputError(str(file), f"cannot be read by safetensors ({why})") from None
        return {name: self._dequantised(name, raw) for name in names}

    def _dequantised(self, name: str, raw: dict):
        import torch

        t = raw[name]
        scale = raw.get(f"{name}_scale_inv")
        if scale is None:
            if t.dtype in (getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None)):
                raise InputError(self.where, f"tensor '{name}' is FP8 without '{name}_scale_inv'")
            return t
        # DeepSeek-V3's FP8 release: one float32 scale per (b0 × b1) block of the weight (its `weight_dequant`)
        b0, b1 = self.config.fp8_block
        rows, cols = t.shape
        full = scale.float().repeat_interleave(b0, dim=0)[:rows].repeat_interleave(b1, dim=1)[:, :cols]  # (rows, cols)
        return t.float() * full

    def layer_tensors(self, layer: int, dtype=None) -> dict:
        """The layer's attention tensors, keyed as the attncli module names its parameters. The
        last layer read is kept (MLA's two paths share one read; a model's layers are not all
        held at once)."""
        import torch

        key = (layer, dtype or torch.float32)
        if self._last[0] != key:
            self.check_layer(layer)
            rels = list(self.reader.stored(self.config))
            read = self.read([self.name(layer, rel) for rel in rels])
            state = self.reader.to_module(self.config, {rel: read[self.name(layer, rel)] for rel in rels})
            self._last = (key, {name: t.to(key[1]) for name, t in state.items()})
        return self._last[1]

    def module(self, spec: AttentionSpec, layer: int, dtype=None):
        """The attncli module of `spec` holding this layer's weights (CPU, float32 unless `dtype`)."""
        import torch

        from . import registry

        module = registry.get(spec.family).build(spec)
        configure(module, self.config, self.config.layer(layer))
        module.to(dtype or torch.float32)  # before loading: load_state_dict copies into the parameters' dtype
        module.load_state_dict(self.layer_tensors(layer, dtype), strict=True)
        return module.eval()

    def hidden_states(self, layer: int, batch: int, tokens: int, seed: int):
        """Default inputs, float64 (batch, tokens, d_model): the token embeddings of seeded random
        ids (times the model's embedding scale: Gemma's sqrt(d_model), Granite's
        embedding_multiplier) passed through the layer's input norm, as the reader names it:
        RMSNorm x / sqrt(mean(x²) + eps) · w (Zhang & Sennrich 2019; Llama, DeepSeek), Gemma's
        · (1 + w), or LayerNorm (x − mean) / sqrt(var + eps) · w + b (Ba et al. 2016; GPT-NeoX,
        Phi, Falcon, StableLM, Starcoder2, Cohere); no norm where the layer sees the residual
        stream itself (OLMo-2 normalises after attention)."""
        import torch

        self.check_inputs(layer)
        embed = self.tensors[self.embed_name()]
        gen = torch.Generator().manual_seed(seed)
        ids = torch.randint(embed.shape[0], (batch, tokens), generator=gen)  # (B, T)
        rows = self._embedding_rows(ids.unique().tolist())  # {id: (d,)}
        x = torch.stack([rows[i] for i in ids.flatten().tolist()]).view(batch, tokens, -1)  # (B, T, d)
        x = x * self.config.embed_scale
        name = self.norm_name(layer)
        if name is None:
            return x
        w = self.read([name])[name].to(torch.float64)  # (d,)
        eps, kind = self.config.rms_norm_eps, self.reader.norm_kind
        if kind == "layer":
            bias_name = self.norm_name(layer, "bias")
            b = self.read([bias_name])[bias_name].to(torch.float64) if bias_name in self.tensors else 0.0
            centred = x - x.mean(-1, keepdim=True)
            return centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps) * w + b  # (B, T, d)
        scale = 1.0 + w if kind == "rms1p" else w
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * scale  # (B, T, d)

    def _embedding_rows(self, ids: list[int]) -> dict:
        """Rows of the embedding table, read one slice at a time (the table can be gigabytes)."""
        import torch
        from safetensors import safe_open

        name = self.embed_name()
        with safe_open(str(self.tensors[name].file), framework="pt") as f:
            table = f.get_slice(name)
            return {i: table[i : i + 1][0].to(torch.float64) for i in ids}  # each (d,)


def configure(module, cfg: ModelConfig, at: LayerAttn | None = None) -> None:
    """Give a freshly built attncli module the checkpoint's conventions: bias parameters, the
    layer's RoPE layout and frequencies (scaled, partial, or called per length), and DeepSeek's
    softmax scale."""
    import torch
    from torch import nn

    from .variants.common import Rope

    for name in cfg.biases:
        linear = getattr(module, name)
        linear.bias = nn.Parameter(torch.zeros(linear.out_features))  # filled by load_state_dict
    if getattr(module, "rope", None) is not None:
        r = (at or cfg.layer(0)).rope or cfg.rope
        module.rope = Rope(r.dim, r.theta, inv_freq=rope_scaling.inv_freq(r),
                           attention_factor=rope_scaling.attention_factor(r), interleave=r.interleave,
                           freq_at=rope_scaling.freq_at(r))  # fmt: skip
    if cfg.family == "mla":
        module.scale = module.scale * cfg.softmax_scale_factor


# ------------------------------------------------------------------------------------------------
# --layer, --inputs, --save-io


def parse_layers(text: str, n_layers: int, option: str = "--layer") -> list[int]:
    """`0`, `0,3,5`, or `all` → layer indices, each checked against the checkpoint."""
    key = str(text).strip().lower()
    if key == "all":
        return list(range(n_layers))
    out = []
    for item in key.split(","):
        try:
            value = int(item.strip())
        except ValueError:
            raise InputError(option, f"'{item.strip()}' is not a layer index",
                             "a number from 0, a comma list, or all") from None  # fmt: skip
        if not 0 <= value < n_layers:
            raise InputError(option, f"layer {value} is out of range: "
                                     f"the checkpoint has {n_layers} layers (0–{n_layers - 1})")  # fmt: skip
        out.append(value)
    return list(dict.fromkeys(out))


def inputs_shape(path: str, d_model: int, option: str = "--inputs") -> tuple[int, int]:
    """(batch, seq) of a hidden-states file, checked without torch."""
    require_safetensors()
    tensors = read_header(Path(path), where=path)
    name = inputs_tensor(tensors)
    info = tensors.get(name)
    if info is None:
        listed = ", ".join(sorted(tensors)[:8]) or "none"
        raise InputError(option, f"{path} has no tensor 'hidden_states' (tensors: {listed})")
    check_float(info, "hidden_states", path)
    if len(info.shape) != 3 or info.shape[2] != d_model or 0 in info.shape:
        raise InputError(option, f"tensor '{name}' in {path} has shape {_shape_text(info.shape)}; "
                                 f"expected [batch, seq, {d_model}] (hidden_size {d_model})")  # fmt: skip
    return info.shape[0], info.shape[1]


def inputs_tensor(names) -> str:
    """The tensor --inputs reads: `hidden_states`, or the `input` of a file --save-io wrote (it holds
    `input`, `output` and `output_float64`), so a saved run can be fed back."""
    if "hidden_states" not in names and {"input", "output_float64"} <= set(names):
        return "input"
    return "hidden_states"


def read_inputs(path: str):
    """The `hidden_states` tensor of a file (or a --save-io file's `input`), float64 (batch, seq, d_model)."""
    import torch
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return f.get_tensor(inputs_tensor(list(f.keys()))).to(torch.float64)


def check_output_path(path: str, option: str = "--save-io") -> None:
    from .output import check_path

    check_path(option, path)


class LayerSource:
    """One layer of a checkpoint as the thing a measured row runs: its module, its inputs, and
    the columns that say where they came from. `bench.measure_row` uses it in place of a seeded
    random module and random inputs."""

    def __init__(self, ckpt: Checkpoint, layer: int, inputs: str | None = None, save_io: str | None = None):
        self.ckpt, self.layer, self.inputs_path, self.save_io = ckpt, layer, inputs, save_io
        self._saved = False

    def columns(self, seed: int) -> dict:
        return {"weights": str(self.ckpt.where), "layer": self.layer,
                "inputs": self.inputs_path or f"embeddings (seed {seed + 1})",
                "rope_scaling": self.ckpt.config.rope.summary}  # fmt: skip

    def module(self, spec: AttentionSpec):
        return self.ckpt.module(spec, self.layer)

    def inputs(self, shape: Shape, seed: int):
        """Float64 (batch, tokens, d_model) at positions 0…tokens-1: the prefill sequence, or the
        cached prefix and the new token."""
        tokens = shape.seq_len + (1 if shape.mode == "decode" else 0)
        if self.inputs_path:
            x = read_inputs(self.inputs_path)
            return x[: shape.batch, :tokens]
        return self.ckpt.hidden_states(self.layer, shape.batch, tokens, seed)

    def record(self, shape: Shape, x, y, y_ref) -> None:
        """--save-io: the first prefill row's input and outputs (run dtype, and the float64 reference)."""
        if not self.save_io or self._saved or shape.mode != "prefill":
            return
        from safetensors.torch import save

        from .output import write

        meta = {"weights": str(self.ckpt.where), "layer": str(self.layer), "positions": f"0..{shape.seq_len - 1}",
                "causal": "true", "dtype": str(y.dtype).replace("torch.", "")}  # fmt: skip
        tensors = {"input": x, "output": y, "output_float64": y_ref}
        data = save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, metadata=meta)
        write(self.save_io, data, "--save-io")  # the one writer: links, FIFOs, atomic replace, mode kept
        self._saved = True


def rows_for_checkpoint(weights: str, layer_text: str, inputs: str | None, save_io: str | None, modes: list[str],
                        seq_lens: list[int], batches: list[int], shape_given: bool):  # fmt: skip
    """(preset, [(spec, shape, source)]) for `bench`/`compare --weights`; everything checked
    before torch is imported."""
    ckpt = Checkpoint(weights)
    c = ckpt.config
    layers = parse_layers(layer_text, c.n_layers)
    for layer in layers:
        ckpt.check_layer(layer)
        if not inputs:
            ckpt.check_inputs(layer)
    if save_io:
        check_output_path(save_io)
        if "prefill" not in modes:
            raise InputError("--save-io", "writes a prefill row's input and output", "add --mode prefill")
    if inputs:
        if shape_given:
            raise InputError("--inputs", "the file fixes batch and seq-len", "drop -s/--seq-len and -b/--batch")
        batch, seq = inputs_shape(inputs, c.d_model)
        shapes = []
        for m in modes:
            if m == "decode" and seq < 2:
                raise InputError("--inputs", "decode needs at least 2 tokens (a cached prefix and a new one); "
                                             f"{inputs} has {seq}")  # fmt: skip
            shapes.append(Shape(m, seq if m == "prefill" else seq - 1, batch))
    else:
        shapes = [Shape(m, L, b) for m in modes for L in seq_lens for b in batches]
    sources = {layer: LayerSource(ckpt, layer, inputs, save_io if layer == layers[0] else None) for layer in layers}
    # Ordered as the variant rows are (mode, seq-len, batch, then layer and path), so compare's
    # ratios refer to the first layer's row of each shape.
    work = [(spec, shape, sources[layer]) for shape in shapes for layer in layers for spec in ckpt.specs(layer)]
    return ckpt.preset(), work


def fmt_layers(layers: list[int]) -> str:
    """`L3`, `L0..31` (a contiguous run), or `L0,2,5`."""
    if len(layers) == 1:
        return f"L{layers[0]}"
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f"L{layers[0]}..{layers[-1]}"
    return "L" + ",".join(map(str, layers))

