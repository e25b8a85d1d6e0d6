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
from .spec import AttentionSpec, GQASpec, PresetSpec


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
    label_fields: tuple[str, ...] = ()  # fields the base label already shows (no suffix for them)
    # Optional overrides; None uses the generic rule in rows.py (byte_columns, math_path_flops).
    layer_bytes: Callable | None = None  # (spec, Shape, dtype_bytes) -> cost.LayerBytes, whole batch
    math_flops: Callable | None = None  # (spec, Shape) -> cost.LayerFlops of the plain-math path

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
        return {"n_kv_heads": default_kv_heads(shape["n_heads"])}  # preset defaults override this

    return defaults


_GQA_COST = dict(flops=cost.gqa_flops, params=cost.gqa_params, kv_elements_per_token=cost.gqa_kv_elements_per_token)
_GQA_MODULE = "attncli.variants.gqa:GQAAttention"

register(Family("mha", "multi-head attention: one KV head per query head (Vaswani et al. 2017)",
                GQASpec, _GQA_MODULE, defaults=_gqa_defaults("mha"), base_label=lambda s: "mha",
                fixed=("n_kv_heads",), **_GQA_COST))  # fmt: skip
register(Family("mqa", "multi-query attention: one KV head shared by all query heads (Shazeer 2019)",
                GQASpec, _GQA_MODULE, defaults=_gqa_defaults("mqa"), base_label=lambda s: "mqa",
                fixed=("n_kv_heads",), **_GQA_COST))  # fmt: skip
register(Family("gqa", "grouped-query attention: n_kv_heads groups of query heads (Ainslie et al. 2023)",
                GQASpec, _GQA_MODULE, defaults=_gqa_defaults("gqa"),
                base_label=lambda s: f"gqa-kv{s.n_kv_heads}", label_fields=("n_kv_heads",), **_GQA_COST))  # fmt: skip
