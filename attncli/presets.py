"""Strict loading of presets and variant arguments into validated specs. Pure Python.

YAML is read with `yaml.safe_load` only (after a `yaml.compose` pass that rejects duplicate keys);
unknown keys are errors naming the key, the file and the closest valid key.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import math
import re
import types
import typing
from pathlib import Path

import yaml

from . import registry
from .errors import InputError, closest, did_you_mean, read_text
from .spec import (AttentionSpec, HybridSpec, LinearLayerSpec, ModelSpec, MoESpec, PresetSpec, check_layer_count,
                   check_positive_int)  # fmt: skip

DEFAULT_PRESET = "small"
PRESET_KEYS = tuple(f.name for f in dataclasses.fields(PresetSpec) if f.name != "path")
# A model preset's `model:` section: ModelSpec's fields, with `layer_pattern` (one period of layer
# kinds, repeated over n_layers) in place of the expanded `layer_types`.
MODEL_KEYS = tuple("layer_pattern" if f.name == "layer_types" else f.name for f in dataclasses.fields(ModelSpec))
SHAPE_KEYS = ("d_model", "n_heads", "head_dim")  # preset fields a variant may override
YAML_SUFFIXES = (".yaml", ".yml")


# ---------------------------------------------------------------------------------------------
# YAML files


def preset_dirs() -> list[Path]:
    """Where presets live: inside the installed wheel, or the checkout's top-level presets/."""
    here = Path(__file__).resolve().parent
    return [d for d in (here / "_presets", here.parent / "presets") if d.is_dir()]


def read_yaml_mapping(path: Path) -> dict:
    """A YAML file's top-level mapping, or an InputError naming the file and the problem."""
    where = str(path)
    if not path.exists():
        raise InputError(where, "no such file")
    if path.is_dir():
        raise InputError(where, "is a folder, not a YAML file")
    return parse_yaml_mapping(read_text(path, where, limit=MAX_YAML_BYTES), where)


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    quoted = re.search(r"tag '([^']*)'", problem)
    if isinstance(e, yaml.constructor.ConstructorError) and quoted:
        tag = quoted.group(1).replace("tag:yaml.org,2002:", "!!")
        return f"YAML tag '{tag}' is not allowed, plain YAML values only{at}"
    return f"malformed YAML: {problem}{at}"


def _check_duplicate_keys(node, where: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in seen:
                line = key_node.start_mark.line + 1
                raise InputError(where, f"duplicate key '{key}' (line {line})")
            seen.add(key)
            _check_duplicate_keys(value_node, where)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item, where)


# Limits on a YAML document, checked on the parser's event stream before anything is built (the
# parser keeps its own stack, so depth is counted without recursion). A preset or variant file is a
# few dozen nodes, two or three levels deep.
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 20_000
MAX_YAML_BYTES = 2**20


def _check_events(text: str, where: str) -> None:
    """Refuse anchors and aliases (an alias bomb expands exponentially; a recursive anchor never
    ends), nesting deeper than MAX_YAML_DEPTH, and more than MAX_YAML_NODES nodes."""
    depth = nodes = 0
    # libyaml's parser when present (it builds nothing; the values are still built by yaml.safe_load)
    for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        at = f" (line {event.start_mark.line + 1})" if event.start_mark is not None else ""
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
            raise InputError(where, f"YAML anchors and aliases are not allowed ('{sign}{event.anchor}'{at})",
                             "write each value out")  # fmt: skip
        if isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            nodes += 1
            if nodes > MAX_YAML_NODES:
                raise InputError(where, f"holds more than {MAX_YAML_NODES:,} YAML values: not a preset")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise InputError(where, f"is nested more than {MAX_YAML_DEPTH} levels deep{at}")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def safe_yaml(text: str, where: str):
    """yaml.safe_load within the limits above (raises yaml.YAMLError for malformed text)."""
    _check_events(text, where)
    try:
        return yaml.safe_load(text)
    except InputError:
        raise
    except (ValueError, OverflowError) as e:  # an integer of more than 4,300 digits, a date out of range
        raise InputError(where, f"a value cannot be read ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.split(";")[0]


def parse_yaml_mapping(text: str, where: str) -> dict:
    try:
        _check_events(text, where)
        _check_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), where)
        data = safe_yaml(text, where)
    except yaml.YAMLError as e:
        raise InputError(where, _yaml_problem(e)) from None
    except RecursionError:  # not reached within MAX_YAML_DEPTH; kept so no input can make it an internal error
        raise InputError(where, "is nested too deeply") from None
    if data is None:
        raise InputError(where, "is empty")
    if not isinstance(data, dict):
        raise InputError(where, f"must be a mapping of key: value, not a {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise InputError(where, f"key {key!r} is not a name")
    return data


def check_keys(data: dict, valid, where: str, what: str = "key") -> None:
    for key in data:
        if key not in valid:
            best = closest(key, valid)
            hint = f"did you mean '{best}'?" if best else f"valid keys: {', '.join(valid)}"
            raise InputError(where, f"unknown {what} '{key}'", hint)


# ---------------------------------------------------------------------------------------------
# typed fields


INT_LIMIT = 2**63  # a YAML or override integer: what a C long (and a torch size) holds


def _short(value) -> str:
    """repr of a user value, cut to a readable length (a 10,000-digit integer is not echoed)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}… ({len(text):,} characters)"


def coerce(key: str, kind, value):
    """Check (and gently convert) one field value against its dataclass annotation."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise InputError("", f"{key}: {value!r} is not true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) >= INT_LIMIT:  # sizes beyond any machine; their products would overflow floats
                raise InputError("", f"{key}: {_short(value)} is out of range (at most 2^63 - 1)")
            return value
        raise InputError("", f"{key}: {_short(value)} is not an integer")
    if kind is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                raise InputError("", f"{key}: {_short(value)} is out of range") from None
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):
                raise InputError("", f"{key}: {value!r} is not a finite number")
            return number
        raise InputError("", f"{key}: {_short(value)} is not a number")
    if isinstance(value, Group) and kind is not tuple and typing.get_origin(kind) is not tuple:
        value = str(value)  # brackets only group: `softmax=[gqa:n_kv_heads=2,window=512]`
    if kind is str:
        if isinstance(value, str):
            return value
        raise InputError("", f"{key}: {value!r} is not a string")
    if typing.get_origin(kind) is tuple:  # a list of variant arguments, e.g. pattern
        if isinstance(value, Group):
            value = [_ungroup(item) for item in split_top(str(value), key)]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
            raise InputError("", f"{key}: {value!r} is not a list of names", f"e.g. {key}=[swa,gqa]")
        return tuple(v.strip() for v in value)
    if (typing.get_origin(kind) or kind) in (dict, collections.abc.Mapping):
        if isinstance(value, dict):
            return value
        raise InputError("", f"{key}: {value!r} is not a mapping")
    return value


def _field_types(cls) -> dict:
    return typing.get_type_hints(cls)


def _require_fields(cls, values: dict, skip=("family", "path")) -> None:
    """Fields without a default must be given: name the first one missing."""
    for f in dataclasses.fields(cls):
        if f.name not in skip and f.name not in values and f.default is dataclasses.MISSING \
                and f.default_factory is dataclasses.MISSING:  # fmt: skip
            raise InputError("", f"missing key '{f.name}'")


def _where(where: str, error: InputError) -> InputError:
    return InputError(where, error.what, error.hint)


# ---------------------------------------------------------------------------------------------
# presets


def preset_paths() -> dict[str, Path]:
    """Every shipped preset by name: size presets first, then models/ (first folder wins)."""
    found: dict[str, Path] = {}
    for folder in preset_dirs():
        for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("models/*.yaml")):
            found.setdefault(path.stem, path)
    return found


def _looks_like_path(text: str) -> bool:
    return text.endswith(YAML_SUFFIXES) or "/" in text


def resolve_preset_path(name: str) -> Path:
    if _looks_like_path(name):
        return Path(name)
    paths = preset_paths()
    if name not in paths:
        raise InputError("--preset", f"unknown preset '{name}'", did_you_mean(name, paths))
    return paths[name]


@functools.lru_cache(maxsize=None)
def _load_preset_file(path: Path) -> PresetSpec:
    where = str(path)
    data = read_yaml_mapping(path)
    check_keys(data, PRESET_KEYS, where)
    kinds = _field_types(PresetSpec)
    try:
        values = {k: coerce(k, kinds[k], v) for k, v in data.items()}
        values.setdefault("name", path.stem)
        variants = {}
        for family_name, fields in (values.get("variants") or {}).items():
            family = registry.get(family_name, where=f"variants")
            if not isinstance(fields, dict):
                raise InputError("", f"variants.{family_name}: must be a mapping of field: value")
            variants[family_name] = _check_family_fields(family, fields, prefix=f"variants.{family_name}.")
        values["variants"] = variants
        _require_fields(PresetSpec, values)
        if values.get("model") is not None:
            values["model"] = _model_section(values["model"], values.get("n_layers", 1))
        preset = PresetSpec(**values, path=where)
        if preset.head_dim is None and preset.d_model % preset.n_heads:
            raise InputError("", f"n_heads: {preset.n_heads} does not divide d_model {preset.d_model}",
                             "set head_dim explicitly")  # fmt: skip
        return preset
    except InputError as e:
        raise _where(where, e) from None


def _model_section(data, n_layers: int) -> ModelSpec:
    """A preset's `model:` mapping as a ModelSpec (strict keys, typed values)."""
    if not isinstance(data, dict):
        raise InputError("", f"model: {data!r} is not a mapping")
    data = dict(data)
    _check_nested_keys(data, MODEL_KEYS, "model")
    pattern = data.pop("layer_pattern", ["full"])
    if isinstance(pattern, str):
        pattern = [pattern]
    if not isinstance(pattern, list) or not pattern or not all(isinstance(k, str) for k in pattern):
        raise InputError("", f"model.layer_pattern: {pattern!r} is not a list of layer kinds", "e.g. [sliding, full]")
    kinds = _field_types(ModelSpec)
    values = {}
    for key, value in data.items():
        if key == "linear" and value is not None:
            value = _typed_mapping(LinearLayerSpec, value, "model.linear")
        elif key == "moe" and value is not None:
            value = _typed_mapping(MoESpec, value, "model.moe")
        else:
            value = coerce(f"model.{key}", kinds[key], value)
        values[key] = value
    try:
        check_layer_count(n_layers, "n_layers")  # before a tuple of n_layers kinds is built
        return ModelSpec(layer_types=tuple(pattern[i % len(pattern)] for i in range(n_layers)), **values)
    except InputError as e:
        raise InputError("", f"model.{e.what}", e.hint) from None


def _typed_mapping(cls, data, prefix: str):
    """A nested section (model.linear, model.moe) as its dataclass, keys checked and typed."""
    if not isinstance(data, dict):
        raise InputError("", f"{prefix}: {data!r} is not a mapping")
    _check_nested_keys(data, [f.name for f in dataclasses.fields(cls)], prefix)
    kinds = _field_types(cls)
    values = {k: coerce(f"{prefix}.{k}", kinds[k], v) for k, v in data.items()}
    try:
        _require_fields(cls, values, skip=())
        return cls(**values)
    except InputError as e:  # the spec names its fields `linear.heads`; the file says `model.linear.heads`
        what = e.what.replace("missing key '", f"missing key '{prefix}.")
        what = what if what.startswith(("missing", "model.")) else f"model.{what}"
        raise InputError("", what, e.hint) from None


def _check_nested_keys(data: dict, valid, prefix: str) -> None:
    for key in data:
        if key not in valid:
            best = closest(key, valid)
            hint = f"did you mean '{best}'?" if best else f"valid keys: {', '.join(valid)}"
            raise InputError("", f"unknown key '{prefix}.{key}'", hint)


def load_preset(name: str | None = None) -> PresetSpec:
    """A preset by name (`small`), or from a YAML file path."""
    return _load_preset_file(resolve_preset_path(name or DEFAULT_PRESET).resolve())


DERIVED_FIELDS = ("family", "layers")  # set by the loader, never by a user


def _check_family_fields(family: registry.Family, fields: dict, prefix: str = "") -> dict:
    valid = [f.name for f in dataclasses.fields(family.spec_cls) if f.name not in DERIVED_FIELDS]
    for key in fields:
        if key not in valid:
            best = closest(key, valid)
            hint = f"did you mean '{best}'?" if best else f"valid keys: {', '.join(valid)}"
            raise InputError("", f"unknown key '{prefix}{key}' for {family.name}", hint)
        if key in family.fixed:
            raise InputError("", f"{prefix}{key}: {family.name} fixes {key}", family.fixed_hint or None)
    kinds = _field_types(family.spec_cls)
    return {k: coerce(f"{prefix}{k}", kinds[k], v) for k, v in fields.items()}


# ---------------------------------------------------------------------------------------------
# variants

# Suffixes that make a row label say which fields differ from the family default.
_LABEL_SUFFIX = {
    "causal": lambda v: "causal" if v else "bidir",
    "position": lambda v: "nope" if v == "none" else str(v),
    "d_model": lambda v: f"d{v}",
    "n_heads": lambda v: f"h{v}",
    "head_dim": lambda v: f"hd{v}",
    "rope_theta": lambda v: f"theta{v:g}",
    "n_kv_heads": lambda v: f"kv{v}",
    "absorb": lambda v: "absorb" if v else "naive",
    "q_lora_rank": lambda v: "qfull" if v is None else f"q{v}",
    "qk_nope_head_dim": lambda v: f"nope{v}",
    "qk_rope_head_dim": lambda v: f"rope{v}",
    "v_head_dim": lambda v: f"v{v}",
    "window": lambda v: "nowindow" if v is None else f"w{v}",
    "memory_len": lambda v: f"m{v}",
    "chunk_size": lambda v: f"c{v}",
    "qk_norm": lambda v: "qknorm" if v else "noqknorm",
    "qk_norm_over": lambda v: f"norm-{v}",
    "qk_norm_type": lambda v: f"norm-{v}",
    "norm_eps": lambda v: f"eps{v:g}",
    "softcap": lambda v: "nocap" if v is None else f"cap{v:g}",
    "sinks": lambda v: "sinks" if v else "nosinks",
    "rotary_dim": lambda v: "rotfull" if v is None else f"rot{v}",
    "scale": lambda v: "scaledefault" if v is None else f"scale{v:g}",
}


class Group(str):
    """The text inside `[...]` in an override value: one variant argument for a text field
    (`softmax=[gqa:n_kv_heads=2,window=512]`), or a comma list for a list field (`pattern=[swa,gqa]`)."""


def split_top(text: str, where: str) -> list[str]:
    """Split on the commas outside square brackets: `a=1,b=[x,y]` → ['a=1', 'b=[x,y]']."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise InputError(where, f"unbalanced ']' in '{text}'", "brackets group a nested value: softmax=[gqa:n_kv_heads=2]")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise InputError(where, f"unclosed '[' in '{text}'", "brackets group a nested value: softmax=[gqa:n_kv_heads=2]")
    items.append(text[start:])
    return items


def _ungroup(text: str) -> str:
    """One list item, with the brackets that group it removed: `[swa:window=512,n_kv_heads=2]` → its inside."""
    text = text.strip()
    return text[1:-1].strip() if text.startswith("[") and text.endswith("]") else text


def _parse_value(text: str):
    if text.startswith("[") and text.endswith("]"):
        return Group(text[1:-1].strip())
    if ":" in text:  # a nested variant argument (`softmax=gqa:n_kv_heads=8`), never a YAML mapping
        return text
    try:
        return safe_yaml(text, text) if text.strip() else None
    except yaml.YAMLError:
        return text


def parse_overrides(text: str, where: str) -> dict:
    """`n_kv_heads=2,causal=false` → {'n_kv_heads': 2, 'causal': False} (values read as YAML scalars).

    The rule for nested values: commas outside square brackets always separate this variant's own
    overrides, and each override splits at its first '='. So `hybrid:softmax_every=8,softmax=gqa:n_kv_heads=8`
    gives softmax the text `gqa:n_kv_heads=8`; a nested variant with several overrides, and a list,
    go in brackets: `softmax=[gqa:n_kv_heads=8,window=4096]`, `pattern=[swa,swa,gqa]`."""
    overrides: dict = {}
    for item in split_top(text, where):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise InputError(where, f"override '{item}' is not key=value", "e.g. gqa:n_kv_heads=2,causal=false")
        if key in overrides:
            raise InputError(where, f"override '{key}' is given twice")
        overrides[key] = _parse_value(value.strip())
    return overrides


def build_spec(family_name: str, preset: PresetSpec, overrides: dict, where: str) -> AttentionSpec:
    """Resolve preset shape < family defaults < preset's per-family defaults < overrides."""
    family = registry.get(family_name, where=where)
    try:
        given = _check_family_fields(family, overrides)
        preset_shape = {"d_model": preset.d_model, "n_heads": preset.n_heads, "head_dim": preset.head_dim}
        shape = {**preset_shape, **{k: given[k] for k in SHAPE_KEYS if k in given}}
        for key in SHAPE_KEYS:  # before they divide or size anything (n_heads=0 divided d_model)
            if shape[key] is not None:
                check_positive_int(shape[key], key)
        if shape["head_dim"] is None:
            if shape["d_model"] % shape["n_heads"]:
                raise InputError("", f"n_heads: {shape['n_heads']} does not divide d_model {shape['d_model']}",
                                 "head_dim is derived as d_model / n_heads; set head_dim to choose it")  # fmt: skip
            shape["head_dim"] = shape["d_model"] // shape["n_heads"]
        defaults = {**shape, **family.defaults(shape, preset), **preset.variants.get(family_name, {})}
        values = {**defaults, **given}
        if issubclass(family.spec_cls, HybridSpec):
            values["layers"] = _stack_layers(values, given, preset)
        _require_fields(family.spec_cls, values)
        spec = family.spec_cls(family=family_name, **values)
    except InputError as e:
        raise _where(where, e) from None
    if not spec.label:
        base = family.base_label(spec)
        suffixes = [
            _LABEL_SUFFIX.get(k, lambda v, k=k: f"{k}{v}")(v)
            for k, v in given.items()
            if k != "label" and k not in family.label_fields
            and (v != _default_of(family, k, {**defaults, **preset_shape}) or k == _path_field(family))  # a path is always named
        ]
        spec = dataclasses.replace(spec, label="-".join([base, *suffixes]))
    return spec


def model_variant(preset: PresetSpec) -> str:
    """The VARIANT argument that builds a model preset's own layers for flops, bench and compare:
    its attention family when every layer is full; `family:window=W` when every layer slides;
    otherwise a `hybrid` stack whose pattern lists one period of the layers, sliding layers as
    `family:window=W` and linear layers as `linear` (the stack families: swa/linear/hybrid).
    kv-memory does not need this: serving.py sizes the layer kinds itself."""
    model = preset.model
    kinds = model.layer_types
    period = smallest_period(kinds)
    item = {"full": model.attention, "sliding": f"{model.attention}:window={model.window}", "linear": "linear"}
    if period == 1:
        return item[kinds[0]]
    return "hybrid:pattern=[" + ",".join(item[k] for k in kinds[:period]) + "]"


def smallest_period(items) -> int:
    """The least p with items[i] == items[i % p] for every i (the period may be cut at the end), in
    O(n): n minus the longest proper prefix that is also a suffix (Knuth–Morris–Pratt's failure
    function). The search the naive way is O(n²): minutes on a model of a million layers."""
    n = len(items)
    fail = [0] * n
    k = 0
    for i in range(1, n):
        while k and items[i] != items[k]:
            k = fail[k - 1]
        if items[i] == items[k]:
            k += 1
        fail[i] = k
    return n - fail[-1] if n else 1


def _stack_layers(values: dict, given: dict, preset: PresetSpec) -> tuple[AttentionSpec, ...]:
    """One period of a stack's pattern as specs. Each layer variant is read like a VARIANT argument
    against the preset, with the stack's own d_model, n_heads and head_dim."""
    if "pattern" in given and given["pattern"] is not None and "softmax_every" in given:
        raise InputError("", "give pattern or softmax_every, not both")
    if values.get("pattern") is not None and "softmax_every" not in given:
        args = [("pattern", arg) for arg in values["pattern"]]
    else:
        k = values.get("softmax_every", 8)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InputError("", f"softmax_every: {k!r} must be a positive integer")
        check_layer_count(k, "softmax_every")  # before a list of k layers is built
        args = [("linear", values.get("linear", "linear"))] * (k - 1) + [("softmax", values.get("softmax", "gqa"))]
    layer_preset = dataclasses.replace(preset, d_model=values["d_model"], n_heads=values["n_heads"],
                                       head_dim=values["head_dim"])  # fmt: skip
    parsed: dict[str, AttentionSpec] = {}
    for key, arg in args:
        if arg not in parsed:
            try:
                parsed[arg] = parse_variant(arg, layer_preset)
            except InputError as e:
                raise InputError("", f"{key}: '{arg}': {e.what}", e.hint) from None
            if isinstance(parsed[arg], HybridSpec):
                raise InputError("", f"{key}: '{arg}' is itself a stack; a stack's layers are single layers")
    return tuple(parsed[arg] for _, arg in args)


def _default_of(family: registry.Family, key: str, defaults: dict):
    if key in defaults:
        return defaults[key]
    return {f.name: f for f in dataclasses.fields(family.spec_cls)}[key].default


def _path_field(family: registry.Family) -> str | None:
    return family.paths[0] if family.paths else None


def parse_variant(arg: str, preset: PresetSpec) -> AttentionSpec:
    """A VARIANT argument: `gqa`, `gqa:n_kv_heads=2,causal=false`, or `my.yaml[:overrides]`."""
    family_name, overrides, where = _split_variant(arg)
    return build_spec(family_name, preset, overrides, where)


def parse_variant_paths(arg: str, preset: PresetSpec) -> list[AttentionSpec]:
    """Like `parse_variant`, but one spec per computation path of a family that has several
    (mla: naive and absorbed) when neither the argument nor the preset picks one."""
    family_name, overrides, where = _split_variant(arg)
    family = registry.get(family_name, where=where)
    field, values = family.paths or (None, ())
    if field is None or field in overrides or field in preset.variants.get(family_name, {}):
        return [build_spec(family_name, preset, overrides, where)]
    specs = []
    for value in values:
        given = {**overrides, field: value}
        if "label" in overrides:  # a chosen label still tells the rows apart
            given["label"] = f"{overrides['label']}-{_LABEL_SUFFIX.get(field, str)(value)}"
        specs.append(build_spec(family_name, preset, given, where))
    return specs


def _split_variant(arg: str) -> tuple[str, dict, str]:
    """(family, overrides, where) of a VARIANT argument, read but not yet resolved."""
    head, colon, rest = arg.partition(":")
    head = head.strip()
    overrides = parse_overrides(rest, arg) if colon and rest.strip() else {}
    if colon and not rest.strip():
        raise InputError(arg, "nothing after ':'", "e.g. gqa:n_kv_heads=2")
    if _looks_like_path(head):
        data = read_yaml_mapping(Path(head))
        if "family" not in data:
            raise InputError(head, "missing key 'family'", did_you_mean("", registry.FAMILIES))
        family = data.pop("family")
        if not isinstance(family, str):
            raise InputError(head, f"family: {family!r} is not a name")
        return family, {**data, **overrides}, head if not overrides else arg
    if not head:
        raise InputError(arg, "empty variant name", did_you_mean("", registry.FAMILIES))
    return head, overrides, arg
