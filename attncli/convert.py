"""Convert a checkpoint's MHA/GQA attention layer and measure what the conversion costs in accuracy
against what it saves in KV cache (`attncli convert`).

Targets:
- `gqa:n_kv_heads=G` (and `mqa`, G = 1): mean-pool the key and value projection heads within each
  group of g/G adjacent KV heads (Ainslie et al. 2023, "GQA", §2.1: the mean-pooled checkpoint
  they uptrain from). RoPE rotates each head by the same angles, so pooling before or after it is
  the same; biases are pooled with their weights.
- `mla:kv_lora_rank=R[,rope_dims=P]`: MHA2MLA (Ji et al. 2025, arXiv:2502.14837 §3), the
  partial-RoPE and joint-SVD initialisation:
  * partial RoPE, S_high: each head keeps its rotation on the P/2 highest-frequency pairs (P
    elements per head; default head_dim/8, as MHA2MLA's 16 of 128). The keys of those pairs are
    cached as they are, per KV head. Every other pair loses its rotation (becomes position-free,
    "NoPE"): this changes the layer's function even at full rank; MHA2MLA recovers it by
    fine-tuning, which attncli does not do, so the error is the converted layer's before any
    fine-tuning.
  * SVD_joint: the non-rotated key rows and all value rows, stacked over the KV heads,
    M = [W_k,nope; W_v] (g·(2·head_dim − P) × d_model), are factored by a truncated SVD,
    M ≈ (U_R Σ_R^½)(Σ_R^½ V_Rᵀ) = W_up · W_down (Eckart–Young: the best rank-R approximation);
    each token caches the latent c = W_down x (R elements) and its rotated RoPE keys (g·P).
    Key and value biases move to the up-projection, so they stay exact.
  At R = rank(M) with every pair kept rotated, or on a layer without RoPE, the converted layer
  reproduces the original (up to rounding).

The error of a converted layer is measured against the original layer on the same inputs, both
through the plain-math path, in float64 by default: max |y − y_orig|, the relative L2 error
‖y − y_orig‖ / ‖y_orig‖, and the mean over tokens of the cosine between y_t and y_orig_t.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from . import cost, presets
from .errors import InputError, did_you_mean
from .spec import DTYPE_BYTES, GQASpec
from .weights import Checkpoint, ModelConfig, fmt_layers

TARGETS = ("gqa", "mqa", "mla")
METHODS = {"gqa": "gqa-mean-pool", "mla": "mha2mla-svd-joint"}


@dataclass(frozen=True)
class Target:
    text: str  # as given to --to
    kind: str  # gqa (mqa is gqa with n_kv_heads 1) or mla
    n_kv_heads: int | None = None  # gqa: KV heads after pooling
    kv_lora_rank: int | None = None  # mla: latent width R
    rope_dims: int | None = None  # mla: rotated elements kept per head (P)


def default_rope_dims(head_dim: int) -> int:
    """MHA2MLA's usual share of rotated elements: head_dim / 8 (16 of 128), even, at least 2."""
    return max(2, head_dim // 8 // 2 * 2)


def full_rank(cfg: ModelConfig, rope_dims: int) -> int:
    """Rank bound of M = [W_k,nope; W_v]: min(d_model, its rows g·(2·head_dim − P))."""
    return min(cfg.d_model, cfg.n_kv_heads * (2 * cfg.head_dim - rope_dims))


def parse_target(text: str, cfg: ModelConfig) -> Target:
    """`gqa:n_kv_heads=2`, `mqa`, `mla:kv_lora_rank=64[,rope_dims=4]`, checked against the layer."""
    where = f"--to {text}"
    head, colon, rest = text.partition(":")
    kind = head.strip().lower()
    if kind not in TARGETS:
        raise InputError("--to", f"unknown target '{head.strip()}'", did_you_mean(head.strip(), TARGETS))
    given = presets.parse_overrides(rest, where) if colon and rest.strip() else {}
    valid = {"gqa": ("n_kv_heads",), "mqa": (), "mla": ("kv_lora_rank", "rope_dims")}[kind]
    if given and not valid:
        raise InputError(where, "mqa takes no fields", "use gqa:n_kv_heads=N for another KV head count")
    presets.check_keys(given, valid, where)
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(where, f"{key}: {value!r} is not an integer")
    g, hd = cfg.n_kv_heads, cfg.head_dim
    if kind in ("gqa", "mqa"):
        G = 1 if kind == "mqa" else given.get("n_kv_heads")
        if G is None:
            raise InputError(where, "missing n_kv_heads", "e.g. gqa:n_kv_heads=2")
        if not 0 < G <= g:
            raise InputError(where, f"n_kv_heads: {G} must be between 1 and the checkpoint's num_key_value_heads {g}")
        if g % G:
            raise InputError(where, f"n_kv_heads: {G} does not divide the checkpoint's num_key_value_heads {g}",
                             "mean-pooling merges whole groups of KV heads")  # fmt: skip
        return Target(text, "gqa", n_kv_heads=G)
    check_mla_source(cfg, where)
    R = given.get("kv_lora_rank")
    if R is None:
        raise InputError(where, "missing kv_lora_rank", "e.g. mla:kv_lora_rank=64")
    P = given.get("rope_dims", default_rope_dims(hd))
    if P < 0 or P > hd or P % 2:
        raise InputError(where, f"rope_dims: {P} must be even and between 0 and head_dim {hd}")
    top = full_rank(cfg, P)
    if not 0 < R <= top:
        raise InputError(where, f"kv_lora_rank: {R} must be between 1 and the full rank {top} of [W_k,nope; W_v]",
                         f"min(hidden_size {cfg.d_model}, num_key_value_heads {g} × (2·head_dim {hd} − rope_dims {P}))")  # fmt: skip
    return Target(text, "mla", kv_lora_rank=R, rope_dims=P)


def default_targets(cfg: ModelConfig) -> list[Target]:
    """Every KV head count that mean-pooling can reach: the divisors of n_kv_heads below it."""
    g = cfg.n_kv_heads
    return [Target(f"gqa:n_kv_heads={G}", "gqa", n_kv_heads=G) for G in range(g - 1, 0, -1) if g % G == 0]


def check_mla_source(cfg: ModelConfig, where: str) -> None:
    """MHA2MLA factors linear keys and values of plain softmax attention with full-head RoPE: a
    layer with anything else is refused, naming the field (mean-pooling to GQA takes them all)."""
    rope = cfg.rope
    blockers = {
        "qk_norm": cfg.qk_norm,  # a normalised key is not linear in x: no joint SVD of [W_k; W_v]
        "softcap": cfg.softcap is not None, "sinks": cfg.sinks,
        "partial_rotary_factor": rope is not None and rope.dim < cfg.head_dim,
        "sliding_window": any(cfg.layer(i).window for i in range(cfg.n_layers)),
        "scale": cfg.scale is not None,
    }
    for name, present in blockers.items():
        if present:
            raise InputError(where, f"{cfg.model_type} layers have {name}: the MHA2MLA conversion (mla target) "
                                    "takes plain softmax attention with full-head RoPE",
                             "convert to gqa or mqa instead")  # fmt: skip


def check_source(ckpt: Checkpoint) -> None:
    c = ckpt.config
    if c.family != "gqa":
        raise InputError(ckpt.where, f"convert takes an MHA/GQA layer; this checkpoint ({c.model_type}) is MLA already")


# ------------------------------------------------------------------------------------------------
# the analytic side: KV bytes and parameters before and after (pure Python)


def kv_elements(cfg: ModelConfig, target: Target | None) -> int:
    """Cached elements per token per layer: 2·G·head_dim after pooling; R + g·P after MHA2MLA."""
    if target is None:
        return 2 * cfg.n_kv_heads * cfg.head_dim
    if target.kind == "gqa":
        return 2 * target.n_kv_heads * cfg.head_dim
    return target.kv_lora_rank + cfg.n_kv_heads * target.rope_dims


def params(cfg: ModelConfig, target: Target | None) -> int:
    """Projection weights (no biases, as `cost.py` counts): W_q, the key/value side, W_o."""
    d, h, g, hd = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    if target is None or target.kind == "gqa":
        G = g if target is None else target.n_kv_heads
        return cost.gqa_params(GQASpec(family="gqa", d_model=d, n_heads=h, head_dim=hd, n_kv_heads=G))
    R, P = target.kv_lora_rank, target.rope_dims
    # W_q, the RoPE keys (g·P rows), W_down (R rows), W_up (g·(2·hd − P) × R), W_o
    return d * h * hd + d * g * P + d * R + R * g * (2 * hd - P) + h * hd * d


# ------------------------------------------------------------------------------------------------
# the conversions (torch)


def pool_heads(w, g: int, G: int, hd: int):
    """Mean of each group of g/G adjacent KV heads: (g·hd, …) → (G·hd, …) (Ainslie et al. 2023)."""
    return w.reshape(G, g // G, hd, *w.shape[1:]).mean(dim=1).reshape(G * hd, *w.shape[1:])  # (G·hd, …)


def to_gqa(src, cfg: ModelConfig, G: int):
    """The source GQAAttention with its K and V heads mean-pooled to G."""
    from . import registry
    from .weights import configure

    s = src.spec
    spec = dataclasses.replace(s, family="mqa" if G == 1 else "gqa", n_kv_heads=G, label=f"{s.label}-kv{G}")
    module = registry.get(spec.family).build(spec)
    configure(module, cfg)
    module.rope = src.rope  # the very same rotation (None for a layer without RoPE)
    module.to(src.q_proj.weight.dtype)
    state = dict(src.state_dict())
    for name in ("k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias"):
        if name in state:
            state[name] = pool_heads(state[name], s.n_kv_heads, G, s.head_dim)
    w = state.get("k_norm.weight")
    if w is not None and w.numel() == s.n_kv_heads * s.head_dim:  # per-KV-head norm weights pool with their heads
        state["k_norm.weight"] = pool_heads(w.reshape(-1), s.n_kv_heads, G, s.head_dim).reshape(
            (G, s.head_dim) if w.dim() == 2 else (G * s.head_dim,))
    module.load_state_dict(state, strict=True)
    return module.eval()


def rope_element_indices(pairs: list[int], head_dim: int, interleave: bool) -> list[int]:
    """The elements of a head that the given frequency pairs rotate: (i, i + hd/2) half-split,
    (2i, 2i + 1) interleaved."""
    if interleave:
        return sorted(e for i in pairs for e in (2 * i, 2 * i + 1))
    return sorted(e for i in pairs for e in (i, i + head_dim // 2))


@functools.lru_cache(maxsize=None)
def _latent_module_class():
    """The converted layer's module class, defined here so that importing this module needs no torch."""
    import torch
    from torch import nn

    from .variants.common import Rope, math_attention

    class PartialRopeLatent(nn.Module):
        """An MHA/GQA layer after MHA2MLA's conversion (module docstring): queries as before;
        keys [W_up,k c, RoPE keys] and values W_up,v c from the cached latent c = W_down x."""

        def __init__(self, src, rank: int, rope_dims: int):
            super().__init__()
            s = src.spec
            h, g, hd, d = s.n_heads, s.n_kv_heads, s.head_dim, s.d_model
            self.spec, self.rank = s, rank
            rope_dims = rope_dims if src.rope is not None else 0
            kept = []
            if rope_dims:
                order = torch.argsort(src.rope.inv_freq, descending=True, stable=True)  # S_high: fastest first
                kept = sorted(order[: rope_dims // 2].tolist())
            interleave = bool(getattr(src.rope, "interleave", False))
            rope_idx = rope_element_indices(kept, hd, interleave)
            nope_idx = [i for i in range(hd) if i not in set(rope_idx)]
            self.rope_idx, self.nope_idx = rope_idx, nope_idx
            P, N = len(rope_idx), len(nope_idx)
            self.q_proj, self.o_proj = src.q_proj, src.o_proj  # unchanged (shared, not copied)
            wk = src.k_proj.weight.detach().view(g, hd, d)  # (g, hd, d)
            wv = src.v_proj.weight.detach().view(g * hd, d)  # (g·hd, d)
            bk, bv = src.k_proj.bias, src.v_proj.bias
            self.k_rope = None
            if P:
                self.k_rope = nn.Linear(d, g * P, bias=bk is not None).to(wk.dtype)
                with torch.no_grad():
                    self.k_rope.weight.copy_(wk[:, rope_idx].reshape(g * P, d))  # (g·P, d)
                    if bk is not None:
                        self.k_rope.bias.copy_(bk.detach().view(g, hd)[:, rope_idx].reshape(-1))
            M = torch.cat([wk[:, nope_idx].reshape(g * N, d), wv])  # (g·(hd − P) + g·hd, d)
            U, S, Vh = torch.linalg.svd(M, full_matrices=False)  # M = U diag(S) Vh
            root = S[:rank].sqrt()  # (R,)
            has_bias = bk is not None or bv is not None
            self.kv_down = nn.Linear(d, rank, bias=False).to(wk.dtype)
            self.kv_up = nn.Linear(rank, M.shape[0], bias=has_bias).to(wk.dtype)
            with torch.no_grad():
                self.kv_down.weight.copy_(root[:, None] * Vh[:rank])  # W_down = Σ^½ Vᵀ: (R, d)
                self.kv_up.weight.copy_(U[:, :rank] * root)  # W_up = U Σ^½: (g·(2hd − P), R)
                if has_bias:
                    b_k = bk.detach().view(g, hd)[:, nope_idx].reshape(-1) if bk is not None else wk.new_zeros(g * N)
                    b_v = bv.detach() if bv is not None else wv.new_zeros(g * hd)
                    self.kv_up.bias.copy_(torch.cat([b_k, b_v]))  # (g·(2hd − P),)
            self.rope = None
            if src.rope is not None:
                mask = torch.zeros(hd // 2, dtype=torch.float64)
                mask[kept] = 1.0
                r = src.rope  # dropped pairs rotate by angle 0: position-free, same scaling
                self.rope = Rope(hd, r.theta, inv_freq=r.inv_freq * mask, attention_factor=r.attention_factor,
                                 interleave=interleave)  # fmt: skip

        def cache_elements_per_token(self) -> int:
            return self.rank + (self.k_rope.out_features if self.k_rope is not None else 0)

        def forward(self, x, math: bool = True):
            s = self.spec
            B, T, _ = x.shape
            h, g, hd = s.n_heads, s.n_kv_heads, s.head_dim
            N, P = len(self.nope_idx), len(self.rope_idx)
            q = self.q_proj(x).view(B, T, h, hd).transpose(1, 2)  # (B, h, T, hd)
            c = self.kv_down(x)  # the cached latent: (B, T, R)
            k_nope, v = self.kv_up(c).split([g * N, g * hd], dim=-1)  # (B, T, g·N), (B, T, g·hd)
            k = x.new_empty(B, T, g, hd)  # (B, T, g, hd)
            k[..., self.nope_idx] = k_nope.view(B, T, g, N)
            if P:
                k[..., self.rope_idx] = self.k_rope(x).view(B, T, g, P)  # the cached RoPE keys
            k, v = k.transpose(1, 2), v.view(B, T, g, hd).transpose(1, 2)  # (B, g, T, hd) each
            if self.rope is not None:
                q, k = self.rope(q, 0), self.rope(k, 0)
            o = math_attention(q, k, v, causal=s.causal and T > 1)  # (B, h, T, hd)
            return self.o_proj(o.transpose(1, 2).reshape(B, T, h * hd)), None  # (B, T, d_model)

    return PartialRopeLatent


def to_mla(src, rank: int, rope_dims: int):
    """The source GQAAttention converted by MHA2MLA (partial RoPE S_high + joint SVD)."""
    return _latent_module_class()(src, rank, rope_dims).eval()


def convert_layer(src, cfg: ModelConfig, target: Target):
    if target.kind == "gqa":
        return to_gqa(src, cfg, target.n_kv_heads)
    return to_mla(src, target.kv_lora_rank, target.rope_dims)


def compare_outputs(y, y_orig) -> dict | None:
    """max |y − y_orig|, ‖y − y_orig‖ / ‖y_orig‖, and the mean over tokens of cos(y_t, y_orig_t);
    float64 on the CPU. None when y holds NaN or Inf."""
    import torch

    from .measure.error import error_metrics

    err = error_metrics(y, y_orig)
    if err is None:
        return None
    a, b = y.detach().to("cpu", torch.float64), y_orig.detach().to("cpu", torch.float64)
    d = a.shape[-1]
    cos = torch.nn.functional.cosine_similarity(a.reshape(-1, d), b.reshape(-1, d), dim=-1)  # (B·T,)
    return {"max_abs": err["max_abs"], "rel_l2": err["rel_l2"], "cos": cos.mean().item()}


# ------------------------------------------------------------------------------------------------
# rows


def convert_rows(ckpt: Checkpoint, layers: list[int], targets: list[Target], *, batch: int, seq_len: int,
                 seed: int, dtype: str, kv_dtype: str, inputs: str | None = None, advance=None) -> list[dict]:  # fmt: skip
    """One row per target: errors over `layers` (relative L2 and cosine averaged, max abs the
    largest), KV bytes per token and parameters before and after, summed over the layers."""
    import torch

    from .measure.device import device_name
    from .weights import read_inputs

    cfg = ckpt.config
    dt = getattr(torch, dtype)
    found: dict[str, list[dict | None]] = {t.text: [] for t in targets}
    with torch.inference_mode():
        for layer in layers:
            if advance:
                advance(f"layer {layer}")
            spec = ckpt.specs(layer)[0]
            src = ckpt.module(spec, layer, dtype=dt)
            if inputs:
                x = read_inputs(inputs).to(dt)  # (B, T, d_model)
            else:
                x = ckpt.hidden_states(layer, batch, seq_len, seed + 1).to(dt)  # (B, T, d_model)
            y_orig, _ = src(x, math=True)
            for t in targets:
                y, _ = convert_layer(src, cfg, t)(x, math=True)
                found[t.text].append(compare_outputs(y, y_orig))
            del src
    B, T = (x.shape[0], x.shape[1])
    n = len(layers)
    base = f"{cfg.model_type}-{fmt_layers(layers)}"
    bytes_per = DTYPE_BYTES[kv_dtype]
    kv_before = kv_elements(cfg, None) * bytes_per * n
    params_before = params(cfg, None) * n
    out = []
    for t in targets:
        errs = found[t.text]
        ok = all(e is not None for e in errs)
        kv_after = kv_elements(cfg, t) * bytes_per * n
        row = {
            "label": f"{base}-{_suffix(t)}",
            "family": "mla" if t.kind == "mla" else "mqa" if t.n_kv_heads == 1 else "gqa",
            "preset": ckpt.preset().name, "mode": "prefill", "seq_len": T, "batch": B, "layers": n, "cache_tokens": T,
            "dtype": dtype, "device": "cpu", "d_model": cfg.d_model, "n_heads": cfg.n_heads,
            "n_kv_heads": t.n_kv_heads if t.kind == "gqa" else cfg.n_kv_heads, "head_dim": cfg.head_dim,
            "causal": True, "position": "rope",
            **({"kv_lora_rank": t.kv_lora_rank, "q_lora_rank": None, "qk_nope_head_dim": cfg.head_dim - t.rope_dims,
                "qk_rope_head_dim": t.rope_dims, "v_head_dim": cfg.head_dim} if t.kind == "mla" else {}),
            "params": params(cfg, t) * n, "kv_bytes_per_token": kv_after, "kv_cache_bytes": kv_after * T * B,
            "device_name": device_name(torch.device("cpu")), "torch_version": torch.__version__,
            "threads": torch.get_num_threads(), "seed": seed,
            "status": "ok" if ok else "nan",
            "base_label": base, "kv_ratio_vs_base": kv_after / kv_before,
            "weights": str(ckpt.where), "layer": layers[0] if n == 1 else None,
            "inputs": inputs or f"embeddings (seed {seed + 1})", "rope_scaling": cfg.rope.summary,
            "method": METHODS[t.kind], "kv_dtype": kv_dtype, "kv_bytes_per_token_before": kv_before,
            "params_before": params_before,
            "conv_err_max_abs": max(e["max_abs"] for e in errs) if ok else None,
            "conv_err_rel_l2": sum(e["rel_l2"] for e in errs) / n if ok else None,
            "conv_err_cos": sum(e["cos"] for e in errs) / n if ok else None,
        }  # fmt: skip
        out.append(row)
    return out


def _suffix(t: Target) -> str:
    if t.kind == "mla":
        return f"mla-r{t.kv_lora_rank}-rope{t.rope_dims}"
    return "mqa" if t.n_kv_heads == 1 else f"gqa-kv{t.n_kv_heads}"
