"""RoPE frequencies as Hugging Face checkpoints define them: `rope_theta` and the `rope_scaling`
types that Llama-, Qwen2- and DeepSeek-style configs ship. Pure Python (the `math` module, float64),
so a config can be checked before torch is imported.

Both spellings of a config are read: the older top-level `rope_theta` + `rope_scaling` (with
`type` or `rope_type`), and transformers >= 5's `rope_parameters` (with `rope_type` and
`rope_theta` inside). Supported types and their formulas, per frequency pair i = 0 … dim/2 − 1:

- `default`: inv_i = θ^(−2i/dim) (Su et al. 2021, RoFormer §3.4.2).
- `linear`: inv_i / factor (position interpolation, Chen et al. 2023, arXiv:2306.15595 §2.3).
- `llama3`: wavelengths λ_i = 2π / inv_i shorter than L/high_freq_factor keep inv_i, longer than
  L/low_freq_factor become inv_i / factor, and those in between blend the two with
  s = (L/λ_i − low_freq_factor) / (high_freq_factor − low_freq_factor):
  (1 − s)·inv_i/factor + s·inv_i, L = original_max_position_embeddings (Meta's Llama 3.1
  reference `apply_scaling`; transformers' `_compute_llama3_parameters`).
- `yarn`: NTK-by-parts (Peng et al. 2023, arXiv:2309.00071 §3.2): the ramp
  γ_i = clamp((i − lo)/(hi − lo), 0, 1) between the dimensions lo, hi where the pre-training
  length L turns beta_fast and beta_slow times, d(n) = dim·ln(L/(2πn)) / (2 ln θ) (floor/ceil
  unless `truncate: false`), gives inv_i = γ_i·inv_i/factor + (1 − γ_i)·inv_i; cos and sin are
  multiplied by the attention factor (§3.4): `attention_factor` if given, else
  m(factor, mscale)/m(factor, mscale_all_dim) when both are set (DeepSeek), else m(factor),
  with m(s, k) = 0.1·k·ln s + 1 for s > 1 and 1 otherwise. DeepSeek's attention also multiplies
  its softmax scale by m(factor, mscale_all_dim)² (`softmax_scale_factor`; DeepSeek-V2's
  modeling code and transformers' `yarn_apply_mscale`).

- `dynamic` (dynamic NTK; transformers' `_compute_dynamic_ntk_parameters`) and `longrope`
  (Phi-3; `_compute_longrope_parameters`): frequencies that depend on the length of each call,
  see `freq_at`; longrope multiplies cos and sin by sqrt(1 + ln s / ln L).

Partial rotary (`partial_rotary_factor`, GPT-NeoX's `rotary_pct`) rotates the first
int(head_dim · factor) elements of each head. Any other type is an `InputError` naming the
field: never a silent default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import InputError

SUPPORTED = ("default", "linear", "llama3", "yarn", "dynamic", "longrope")


@dataclass(frozen=True)
class RopeSettings:
    """How one checkpoint rotates queries and keys."""

    type: str  # one of SUPPORTED
    theta: float  # base θ
    dim: int  # rotated elements per head (even)
    interleave: bool = False  # True: pairs (2i, 2i+1), DeepSeek; False: pairs (i, i + dim/2), Llama
    params: dict = field(default_factory=dict, compare=False)  # the scaling fields that the type reads

    @property
    def summary(self) -> str:
        """A short description for rows: `yarn×40`, `llama3×8`, `default`."""
        factor = self.params.get("factor")
        if self.type == "default" or factor is None:
            return self.type
        return f"{self.type}×{factor:g}"


def _number(params: dict, key: str, where: str, field_name: str, default=None, positive: bool = True) -> float:
    value = params.get(key, default)
    if value is None:
        raise InputError(where, f"{field_name}.{key}: missing (needed by rope type '{params.get('_type')}')")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(where, f"{field_name}.{key}: {value!r} is not a number")
    if positive and not value > 0:
        raise InputError(where, f"{field_name}.{key}: {value} must be positive")
    return float(value)


def source(config: dict) -> tuple[str, object]:
    """(field name, mapping) of the RoPE fields transformers 5 reads: a non-empty `rope_scaling`
    wins over `rope_parameters` (`RotaryEmbeddingConfigMixin.convert_rope_params_to_dict`:
    `self.rope_parameters = rope_scaling or self.rope_parameters`), so a config resaved by
    transformers 5 and then given a `rope_scaling` (as Qwen's model cards tell users to) runs with
    the `rope_scaling`; an empty or null one leaves `rope_parameters` in charge."""
    scaling = config.get("rope_scaling")
    if scaling:
        return "rope_scaling", scaling
    if config.get("rope_parameters") is not None:
        return "rope_parameters", config["rope_parameters"]
    return "rope_scaling", scaling if scaling is not None else {}


def parse(config: dict, dim: int, where: str, interleave: bool = False, default_theta: float = 10000.0,
          partial_default: float = 1.0, allow_partial: bool = True, original_max: int | None = None,
          max_position_embeddings: int | None = None) -> RopeSettings:  # fmt: skip
    """The RoPE settings of a config.json mapping, for heads of `dim` elements.

    `default_theta`: the config class's; `partial_default`: the partial_rotary_factor the class
    fills in when config.json has none (Phi 0.5, StableLM 0.25, GLM-4 0.5, GPT-NeoX's rotary_pct
    0.25); the rotated width is int(dim · factor), as transformers' rotary modules take it.
    `original_max`: the class's own `original_max_position_embeddings` (Phi-3 declares the field,
    so its default 4096 applies even when config.json has none); for the others a top-level key
    counts when config.json has one."""
    name, raw = source(config)
    if not isinstance(raw, dict):
        raise InputError(where, f"{name}: {raw!r} is not a mapping")
    if raw and all(isinstance(v, dict) or v is None for v in raw.values()):
        raise InputError(where, f"{name}: per-layer-type RoPE ({', '.join(raw)}) is not supported")
    type_key = "rope_type" if "rope_type" in raw else "type" if "type" in raw else "rope_type"
    kind = raw.get(type_key) or "default"
    if kind not in SUPPORTED:
        raise InputError(where, f"{name}.{type_key}: unsupported rope_scaling type '{kind}'",
                         f"supported: {', '.join(SUPPORTED)}")  # fmt: skip
    theta_where = f"{name}.rope_theta" if "rope_theta" in raw else "rope_theta"
    # transformers: the chosen mapping's own rope_theta, else a top-level rope_theta, else the config
    # class's `default_theta`; a rope_theta inside a rope_parameters that lost to rope_scaling is dropped.
    theta = raw.get("rope_theta", config.get("rope_theta", default_theta))
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 1:
        raise InputError(where, f"{theta_where}: {theta!r} must be a number above 1")
    partial_where = f"{name}.partial_rotary_factor" if "partial_rotary_factor" in raw else "partial_rotary_factor"
    partial = raw.get("partial_rotary_factor", config.get("partial_rotary_factor", partial_default))
    partial = 1.0 if partial is None else partial
    if isinstance(partial, bool) or not isinstance(partial, (int, float)) or not 0 < partial <= 1:
        raise InputError(where, f"{partial_where}: {partial!r} must be a number in (0, 1]")
    if partial != 1 and not allow_partial:
        raise InputError(where, f"{partial_where}: {partial!r} is not supported", "attncli rotates the whole RoPE part")
    rotated = int(dim * partial)
    if rotated % 2 or rotated == 0:
        raise InputError(where, f"{partial_where}: {partial:g} × head_dim {dim} = {dim * partial:g} rotated elements; "
                                "attncli needs an even, positive number")  # fmt: skip
    params = {k: v for k, v in raw.items() if k not in (type_key, "rope_theta", "partial_rotary_factor")}
    params["_type"] = kind
    max_pos = config.get("max_position_embeddings", max_position_embeddings)
    if kind in ("linear", "llama3", "yarn", "dynamic"):
        _number(params, "factor", where, name)
    if kind in ("llama3", "yarn", "longrope"):
        # transformers' rope init functions re-run standardize_rope_params on the built config, where
        # an original_max_position_embeddings attribute (a top-level config.json key, or a field the
        # class declares: Phi-3's, default 4096) overrides the mapping's own; else the mapping's,
        # else max_position_embeddings.
        key = "original_max_position_embeddings"
        top = original_max if original_max is not None else config.get(key)
        params[key] = top if top is not None else params.get(key) or max_pos
        _number(params, key, where, name)
    if kind in ("dynamic", "longrope"):
        params["max_position_embeddings"] = max_pos
        _number(params, "max_position_embeddings", where, "config")
    if kind == "llama3":
        low = _number(params, "low_freq_factor", where, name)
        high = _number(params, "high_freq_factor", where, name)
        if not high > low:
            raise InputError(where, f"{name}.high_freq_factor: {high:g} must exceed low_freq_factor {low:g}")
    if kind == "yarn":
        for key in ("beta_fast", "beta_slow", "mscale", "mscale_all_dim", "attention_factor"):
            if params.get(key) is not None:
                _number(params, key, where, name, positive=key.startswith("beta") or key == "attention_factor")
    if kind == "longrope":
        for key in ("short_factor", "long_factor"):
            values = params.get(key)
            if not isinstance(values, list) or len(values) != rotated // 2 or \
                    not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):  # fmt: skip
                raise InputError(where, f"{name}.{key}: must list {rotated // 2} positive numbers (one per rotated pair)")
        for key in ("factor", "attention_factor"):
            if params.get(key) is not None:
                _number(params, key, where, name)
    return RopeSettings(type=kind, theta=float(theta), dim=rotated, interleave=interleave, params=params)


def _mscale(scale: float, k: float = 1.0) -> float:
    """YaRN's attention temperature m(s, k) = 0.1·k·ln s + 1 (Peng et al. 2023 §3.4; DeepSeek's k)."""
    return 1.0 if scale <= 1 else 0.1 * k * math.log(scale) + 1.0


def inv_freq(rope: RopeSettings) -> list[float]:
    """Angular frequency per rotated pair, radians per position: dim/2 values, float64."""
    dim, theta, p = rope.dim, rope.theta, rope.params
    base = [theta ** (-2 * i / dim) for i in range(dim // 2)]  # RoFormer's θ_i
    if rope.type == "default":
        return base
    if rope.type in ("dynamic", "longrope"):  # at positions within the pre-training length
        return freq_at(rope)(0)
    factor = float(p["factor"])
    if rope.type == "linear":
        return [f / factor for f in base]
    L = float(p["original_max_position_embeddings"])
    if rope.type == "llama3":
        low_f, high_f = float(p["low_freq_factor"]), float(p["high_freq_factor"])
        out = []
        for f in base:
            wavelen = 2 * math.pi / f
            if wavelen < L / high_f:  # high frequencies: unchanged
                out.append(f)
            elif wavelen > L / low_f:  # low frequencies: interpolated by the factor
                out.append(f / factor)
            else:  # a smooth blend in between
                s = (L / wavelen - low_f) / (high_f - low_f)
                out.append((1 - s) * f / factor + s * f)
        return out
    # yarn (NTK-by-parts)
    beta_fast, beta_slow = float(p.get("beta_fast") or 32), float(p.get("beta_slow") or 1)

    def dim_of(rotations: float) -> float:  # the dimension whose wavelength fits `rotations` times into L
        return dim * math.log(L / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    lo, hi = dim_of(beta_fast), dim_of(beta_slow)
    if p.get("truncate", True):
        lo, hi = math.floor(lo), math.ceil(hi)
    lo, hi = max(lo, 0), min(hi, dim - 1)
    if lo == hi:
        hi += 0.001  # as transformers: avoid a zero-width ramp
    out = []
    for i, f in enumerate(base):
        ramp = min(1.0, max(0.0, (i - lo) / (hi - lo)))  # 0: extrapolate (keep f), 1: interpolate (f / factor)
        out.append(ramp * f / factor + (1 - ramp) * f)
    return out


def freq_at(rope: RopeSettings):
    """For types whose frequencies depend on the call (transformers' `dynamic_rope_update`, from
    max(position_ids) + 1 = seq_len): seq_len → frequencies (dim/2 values, float64); None otherwise.

    - `dynamic` (dynamic NTK, `_compute_dynamic_ntk_parameters`): up to max_position_embeddings M
      the plain θ_i; beyond, base θ' = θ·(factor·seq_len/M − (factor − 1))^(dim/(dim − 2)).
    - `longrope` (`_compute_longrope_parameters`, Phi-3): θ_i / short_factor_i while
      seq_len ≤ original_max_position_embeddings, θ_i / long_factor_i beyond.
    attncli's modules call it with the end of each prefill or decode step, as transformers'
    rotary module sees them (lengths only grow, so transformers' cached state agrees)."""
    dim, theta, p = rope.dim, rope.theta, rope.params
    if rope.type == "dynamic":
        factor, M = float(p["factor"]), float(p["max_position_embeddings"])

        def dynamic(seq_len: int) -> list[float]:
            seq = max(seq_len, M)
            base = theta * ((factor * seq / M) - (factor - 1)) ** (dim / (dim - 2))
            return [base ** (-2 * i / dim) for i in range(dim // 2)]

        return dynamic
    if rope.type == "longrope":
        L = float(p["original_max_position_embeddings"])

        def longrope(seq_len: int) -> list[float]:
            ext = p["long_factor"] if seq_len > L else p["short_factor"]
            return [theta ** (-2 * i / dim) / float(e) for i, e in enumerate(ext)]

        return longrope
    return None


def attention_factor(rope: RopeSettings) -> float:
    """The factor that multiplies cos and sin (YaRN's temperature, LongRoPE's; 1 for the others)."""
    p = rope.params
    if rope.type == "longrope":  # sqrt(1 + ln s / ln L) with s = factor, else M / L (Phi-3's rule)
        if p.get("attention_factor") is not None:
            return float(p["attention_factor"])
        L = float(p["original_max_position_embeddings"])
        factor = float(p["factor"]) if p.get("factor") is not None else float(p["max_position_embeddings"]) / L
        return 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(L))
    if rope.type != "yarn":
        return 1.0
    if p.get("attention_factor") is not None:
        return float(p["attention_factor"])
    factor = float(p["factor"])
    if p.get("mscale") and p.get("mscale_all_dim"):
        return _mscale(factor, float(p["mscale"])) / _mscale(factor, float(p["mscale_all_dim"]))
    return _mscale(factor)


def softmax_scale_factor(rope: RopeSettings) -> float:
    """DeepSeek's extra softmax-scale multiplier under YaRN: m(factor, mscale_all_dim)²."""
    k = rope.params.get("mscale_all_dim") if rope.type != "default" else None
    return _mscale(float(rope.params["factor"]), float(k)) ** 2 if k else 1.0
