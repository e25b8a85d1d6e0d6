"""One registry: variant family name → spec class, defaults, cost functions and torch module.

A new family is one module under `variants/` plus one `register(Family(...))` line here. Nothing
in this file imports torch; `Family.build` imports the module only when a row is measured.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from . import cost
from .errors import InputError, did_you_mean
from .spec import AttentionSpec, CrossSpec, GQASpec, HybridSpec, LinearSpec, MLASpec, PresetSpec


@dataclass(frozen=True)
class Family:
    name: str
    summary: str  # one line for `attncli presets`
    spec_cls: type[AttentionSpec]
    module: str  # "package.module:Class" of the torch module, imported lazily
    flops: Callable  # (spec, Shape) -> cost.LayerFlops, one layer, one sequence
    params: Callable  # spec -> parameter count of one layer
    kv_elements_per_token: Callable  # spec -> cached elements per token per layer
    defaults: Callable[[dict, PresetSpec], dict]  # (resolved shape fields, preset) -> field defaults
    base_label: Callable[[AttentionSpec], str]  # the label before override suffixes
    fixed: tuple[str, ...] = ()  # fields the family pins (mha's n_kv_heads); overriding them is an error
    fixed_hint: str = ""  # what to do instead of overriding a fixed field
    label_fields: tuple[str, ...] = ()  # fields the base label already shows (no suffix for them)
    # A field whose values are alternative computations of the same layer (same weights, same
    # output, different cost), and those values. `flops`, `bench` and `compare` show
    # one row per value unless the variant argument or the preset picks one; the label always
    # names the value (mla's absorb: `mla-r512-naive`, `mla-r512-absorb`).
    paths: tuple[str, tuple] | None = None
    # Token caches hold kv_elements_per_token for each of cache_tokens(spec, tokens seen) tokens
    # (a window caps them, cross-attention holds its memory); a recurrent layer holds a fixed state.
    cache_tokens: Callable[[AttentionSpec, int], int] = lambda spec, tokens: tokens
    state_elements: Callable[[AttentionSpec], int] = lambda spec: 0  # per layer per sequence
    memory_proj_flops: Callable[[AttentionSpec], int] | None = None  # one-off work outside the per-step FLOPs
    # Optional overrides; None uses the generic rule in rows.py (byte_columns, math_path_flops).
    layer_bytes: Callable | None = None  # (spec, Shape, dtype_bytes) -> cost.LayerBytes, whole batch
    # (spec, Shape, element bytes) -> cost.LayerFlops the plain-math path runs (its query blocks
    # depend on the element size); None: the family's `flops` (a math path scoring only what its
    # mask lets through).
    math_flops: Callable | None = None

    def build(self, spec: AttentionSpec):
        """The torch module for `spec` (float32, CPU; the caller casts and moves it)."""
        mod_name, cls_name = self.module.split(":")
        return getattr(importlib.import_module(mod_name), cls_name)(spec)


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


def get(name: str, where: str = "variant") -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise InputError(where, f"unknown variant '{name}'", did_you_mean(name, FAMILIES)) from None


def default_kv_heads(n_heads: int) -> int:
    """GQA's fallback group count when a preset names none: the most KV heads that still gives
    groups of at least 4 query heads (Llama-3-8B: 32 query heads over 8 KV heads)."""
    return max(d for d in range(1, n_heads + 1) if n_heads % d == 0 and d <= max(1, n_heads // 4))


def _gqa_defaults(family: str):
    def defaults(shape: dict, preset: PresetSpec) -> dict:
        if family == "mha":
            return {"n_kv_heads": shape["n_heads"]}
        if family == "mqa":
            return {"n_kv_heads": 1}
        if family == "swa":  # MHA with a window unless n_kv_heads is set
            return {"n_kv_heads": shape["n_heads"], "window": SWA_DEFAULT_WINDOW}
        if family == "cross":  # MHA-shaped, as in Whisper and T5; no mask, no position on this layer
            return {"n_kv_heads": shape["n_heads"], "causal": False, "position": "none"}
        return {"n_kv_heads": default_kv_heads(shape["n_heads"])}  # preset defaults override this

    return defaults


# Gemma 3's local layers attend to 1024 tokens (Gemma Team 2025, §2.1); Mistral 7B used 4096.
SWA_DEFAULT_WINDOW = 1024


_GQA_COST = dict(flops=cost.gqa_flops, params=cost.gqa_params, kv_elements_per_token=cost.gqa_kv_elements_per_token,
                 cache_tokens=lambda s, t: t if s.window is None else min(t, s.window),  # a window caps the cache
                 math_flops=cost.gqa_math_flops)
_GQA_MODULE = "attncli.variants.gqa:GQAAttention"
_KV_HINT = "use gqa:n_kv_heads=N for another KV head count"

register(Family("mha", "multi-head attention: one KV head per query head (Vaswani et al. 2017)",
                GQASpec, _GQA_MODULE, defaults=_gqa_defaults("mha"), base_label=lambda s: "mha",
                fixed=("n_kv_heads",), fixed_hint=_KV_HINT, **_GQA_COST))  # fmt: skip
register(Family("mqa", "multi-query attention: one KV head shared by all query heads (Shazeer 2019)",
                GQASpec, _GQA_MODULE, defaults=_gqa_defaults("mqa"), base_label=lambda s: "mqa",
                fixed=("n_kv_heads",), fixed_hint=_KV_HINT, **_GQA_COST))  # fmt: skip
register(Family("gqa", "grouped-query attention: n_kv_heads groups of query heads (Ainslie et al. 2023)",
                GQASpec, _GQA_MODULE, defaults=_gqa_defaults("gqa"),
                base_label=lambda s: f"gqa-kv{s.n_kv_heads}", label_fields=("n_kv_heads",), **_GQA_COST))  # fmt: skip


def _mla_defaults(shape: dict, preset: PresetSpec) -> dict:
    """MLA's fallback for presets that name none, from the per-head width d_h = head_dim by
    DeepSeek-V2's rules (§2.1.4 and §3.1.2: d_c = 4·d_h, d_h^R = d_h / 2, nope = v = d_h) and
    V2-Lite's full-rank query. head_dim itself is derived by MLASpec (nope + rope)."""
    hd = shape["head_dim"]
    return {"head_dim": None, "kv_lora_rank": 4 * hd, "q_lora_rank": None, "qk_nope_head_dim": hd,
            "qk_rope_head_dim": 2 * max(1, hd // 4), "v_head_dim": hd}  # fmt: skip


register(Family("mla", "multi-head latent attention: a cached latent + one shared RoPE key (DeepSeek-V2 2024)",
                MLASpec, "attncli.variants.mla:MLAAttention", flops=cost.mla_flops, params=cost.mla_params,
                kv_elements_per_token=cost.mla_kv_elements_per_token, defaults=_mla_defaults,
                base_label=lambda s: f"mla-r{s.kv_lora_rank}", label_fields=("kv_lora_rank",),
                fixed=("head_dim",), fixed_hint="mla derives it as qk_nope_head_dim + qk_rope_head_dim; set those",
                paths=("absorb", (False, True)), math_flops=cost.mla_math_flops, layer_bytes=cost.mla_layer_bytes))  # fmt: skip


register(Family("swa", "sliding-window attention: each query sees its last `window` keys (Beltagy et al. 2020)",
                GQASpec, _GQA_MODULE, defaults=_gqa_defaults("swa"), base_label=lambda s: f"swa-w{s.window}",
                label_fields=("window",), **_GQA_COST))  # fmt: skip
register(Family("cross", "cross-attention: decoder queries, keys/values from an encoder memory (Vaswani et al. 2017)",
                CrossSpec, "attncli.variants.cross:CrossAttention", flops=cost.cross_flops, params=cost.gqa_params,
                kv_elements_per_token=cost.gqa_kv_elements_per_token, defaults=_gqa_defaults("cross"),
                base_label=lambda s: f"cross-m{s.memory_len}", label_fields=("memory_len",),
                cache_tokens=lambda s, t: s.memory_len, memory_proj_flops=cost.cross_memory_proj_flops))  # fmt: skip
register(Family("linear", "linear attention: elu+1 feature map, constant-size recurrent state (Katharopoulos et al. 2020)",
                LinearSpec, "attncli.variants.linear:LinearAttention", flops=cost.linear_flops,
                params=cost.linear_params, kv_elements_per_token=lambda s: 0, defaults=lambda shape, p: {"position": "none"},
                base_label=lambda s: "linear", cache_tokens=lambda s, t: 0, state_elements=lambda s: s.state_elements,
                math_flops=cost.linear_math_flops))  # fmt: skip


def _stack_only(*_):
    raise TypeError("a stack has no per-layer FLOPs: expand it with rows.layer_kinds")


def _largest_layer(cost_of: str):
    """A stack's params or cached elements per token, as its largest layer kind's: the bound a
    per-layer check needs (bench measures one layer at a time). Model totals never use this:
    rows.py expands a stack into its layer kinds and sums them."""

    def largest(spec: HybridSpec) -> int:
        return max(getattr(get(layer.family), cost_of)(layer) for layer in spec.layers)

    return largest


def _hybrid_label(spec: HybridSpec) -> str:
    """`hybrid-7×linear+gqa-kv2`: one period of the pattern, run-length encoded."""
    runs: list[list] = []
    for layer in spec.layers:
        if runs and runs[-1][0] == layer.label:
            runs[-1][1] += 1
        else:
            runs.append([layer.label, 1])
    return "hybrid-" + "+".join(label if n == 1 else f"{n}×{label}" for label, n in runs)


register(Family("hybrid", "a layer stack: a repeating pattern of variants, e.g. 7 linear + 1 softmax (MiniMax-01)",
                HybridSpec, "attncli.variants.hybrid:HybridStack", flops=_stack_only, params=_largest_layer("params"),
                kv_elements_per_token=_largest_layer("kv_elements_per_token"), defaults=lambda shape, p: {},
                base_label=_hybrid_label,
                label_fields=("softmax_every", "softmax", "linear", "pattern"),
                fixed=("causal", "position", "rope_theta"),
                fixed_hint="set it on the layer variants, e.g. softmax=[gqa:causal=false]"))  # fmt: skip
