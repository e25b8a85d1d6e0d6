"""Megatron-style tensor-parallel shards of a built layer, as vLLM and Megatron-LM cut attention.

Rank r of T holds (vLLM's QKVParallelLinear / RowParallelLinear; Megatron-LM's ColumnParallel /
RowParallel linears):
- query heads r·h/T … (r+1)·h/T − 1: the rows of the query projection (column-parallel);
- KV heads: g/T of them, r·g/T …, while T ≤ g; beyond that one KV head, head r // (T/g), held by
  T/g ranks alike (vLLM: `num_kv_head_replicas = T / g`, `shard_id = tp_rank // num_kv_head_replicas`).
  Either way each local query head keeps the KV head it had in the whole layer;
- the columns of the output projection that read its heads (row-parallel): its output is a partial
  sum, and the all-reduce of the T partial sums is the layer's output.
MLA (DeepSeek-V2; vLLM's DeepseekV2MLAAttention): the query up-projection (`q_proj`, or `q_b_proj`
after the replicated `q_a_proj` and its norm) and `kv_b_proj` are column-parallel by head, `o_proj`
row-parallel; the latent (`kv_a_proj_with_mqa`, `kv_a_layernorm`) is whole on every rank, so each
rank caches all of it. Linear attention splits its heads (and so its state) the same way;
cross-attention shards as GQA, every rank holding the whole encoder memory.

Which layouts can be cut is `serving.group_of`'s rule (kv-memory --tp), checked before any rank
starts (`measure.tp.check_shardable`), so bench and kv-memory agree on what is valid and on the
KV heads per GPU.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .. import registry
from ..spec import AttentionSpec, GQASpec, LinearSpec, MLASpec


@dataclasses.dataclass(frozen=True)
class Layout:
    """What rank `rank` of `tp` holds, in heads of the whole layer."""

    rank: int
    tp: int
    q_heads: range  # query heads (of the whole layer) this rank holds
    kv_heads: range | None  # KV heads it holds (None: MLA's latent or linear attention, not split by KV head)


def layout(spec: AttentionSpec, rank: int, tp: int) -> Layout:
    h = spec.n_heads
    if h % tp:
        raise ValueError(f"tp {tp} does not divide n_heads {h}")  # check() refuses this first, as exit 2
    local = h // tp
    q = range(rank * local, (rank + 1) * local)
    if not isinstance(spec, GQASpec):  # MLA, linear: no separate KV heads
        return Layout(rank, tp, q, None)
    g = spec.n_kv_heads
    if tp <= g:
        kv = range(rank * (g // tp), (rank + 1) * (g // tp))
    else:
        kv = range(rank // (tp // g), rank // (tp // g) + 1)  # vLLM: shard_id = tp_rank // num_kv_head_replicas
    return Layout(rank, tp, q, kv)


def local_spec(spec: AttentionSpec, tp: int) -> AttentionSpec:
    """The spec of one rank's shard: its heads, the same widths (d_model, head_dim)."""
    heads = spec.n_heads // tp
    if isinstance(spec, GQASpec):
        return dataclasses.replace(spec, n_heads=heads, n_kv_heads=max(1, spec.n_kv_heads // tp))
    if isinstance(spec, (MLASpec, LinearSpec)):
        return dataclasses.replace(spec, n_heads=heads)
    raise ValueError(f"no tensor-parallel layout for family {spec.family}")


def _rows(weight: torch.Tensor, heads: range, per_head: int) -> torch.Tensor:
    """Rows of the heads `heads` of a projection whose output is heads × per_head wide (column-parallel)."""
    return weight[heads.start * per_head : heads.stop * per_head]  # (len(heads)·per_head, in)


def _cols(weight: torch.Tensor, heads: range, per_head: int) -> torch.Tensor:
    """Columns reading the heads `heads` of an output projection (row-parallel)."""
    return weight[:, heads.start * per_head : heads.stop * per_head]  # (out, len(heads)·per_head)


def shard(full: nn.Module, spec: AttentionSpec, rank: int, tp: int) -> nn.Module:
    """Rank `rank`'s shard of the built layer `full` (CPU, any dtype): a module of the same family
    built for its heads, holding copies of the whole layer's weight slices."""
    lay = layout(spec, rank, tp)
    part = local_spec(spec, tp)
    local = registry.get(spec.family).build(part).to(dtype=next(full.parameters()).dtype)
    full_state = full.state_dict()
    state = {}
    for name, w in full_state.items():
        state[name] = _slice(name, w, spec, lay)
    missing = set(local.state_dict()) - set(state)
    if missing:
        raise ValueError(f"shard of {spec.label} lacks {sorted(missing)}")
    local.load_state_dict(state)
    if getattr(full, "alibi", None) is not None:  # each head keeps its own ALiBi slope (a buffer, not in state_dict)
        local.alibi = full.alibi[lay.q_heads.start : lay.q_heads.stop].clone()  # (h/T,)
    for attr in ("scale",):  # MLA's softmax scale (a checkpoint's YaRN scale may replace it)
        if hasattr(full, attr):
            setattr(local, attr, getattr(full, attr))
    if getattr(full, "rope", None) is not None:
        local.rope = full.rope  # the same frequencies (a checkpoint may have set scaled ones)
    return local.eval()


def _slice(name: str, w: torch.Tensor, spec: AttentionSpec, lay: Layout) -> torch.Tensor:
    """The part of the whole layer's tensor `name` that rank `lay.rank` holds."""
    param = name.rsplit(".", 1)[0]
    if isinstance(spec, MLASpec):
        qk = spec.qk_nope_head_dim + spec.qk_rope_head_dim
        if param in ("q_proj", "q_b_proj"):
            return _rows(w, lay.q_heads, qk).clone()
        if param == "kv_b_proj":
            return _rows(w, lay.q_heads, spec.qk_nope_head_dim + spec.v_head_dim).clone()
        if param == "o_proj":
            return _cols(w, lay.q_heads, spec.v_head_dim).clone()
        return w.clone()  # q_a_proj, q_a_layernorm, kv_a_proj_with_mqa, kv_a_layernorm: replicated
    hd = spec.head_dim
    if name == "sinks":  # one learned logit per query head (GPT-OSS)
        return w[lay.q_heads.start : lay.q_heads.stop].clone()  # (h/T,)
    if param in ("q_norm", "k_norm"):  # q/k norms over each head: shared weights (h_d,), or per head (heads, h_d)
        heads = lay.q_heads if param == "q_norm" else lay.kv_heads
        return w.clone() if w.dim() == 1 else w[heads.start : heads.stop].clone()
    if param == "q_proj":
        return _rows(w, lay.q_heads, hd).clone()
    if param in ("k_proj", "v_proj"):
        return _rows(w, lay.kv_heads if lay.kv_heads is not None else lay.q_heads, hd).clone()
    if param == "o_proj":
        return _cols(w, lay.q_heads, hd).clone()
    raise ValueError(f"no tensor-parallel rule for {spec.family} tensor '{name}'")
