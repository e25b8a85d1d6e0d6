"""A model-level stack: layer modules following a HybridSpec's pattern, each feeding the next.

Attention layers only (no residual stream, norms or FFN), with the common module interface; the
cache is every layer's cache, its tensors named `<layer>.<name>`. `bench` does not run this
module: it measures each distinct layer kind alone and totals count × one layer (measure/stack.py).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import registry
from ..spec import HybridSpec
from .common import Cache


class HybridStack(nn.Module):
    def __init__(self, spec: HybridSpec, n_layers: int | None = None):
        super().__init__()
        self.spec = spec
        n = len(spec.layers) if n_layers is None else n_layers
        self.specs = [spec.layers[i % len(spec.layers)] for i in range(n)]
        self.layers = nn.ModuleList(registry.get(s.family).build(s) for s in self.specs)
        lengths = {m.memory_len for m in self.layers if getattr(m, "memory_len", 0)}
        if len(lengths) > 1:
            raise ValueError(f"the stack's cross-attention layers disagree on memory_len: {sorted(lengths)}")
        self.memory_len = lengths.pop() if lengths else 0

    def set_memory(self, memory: torch.Tensor) -> None:
        for layer in self.layers:
            if getattr(layer, "memory_len", 0):
                layer.set_memory(memory)

    @staticmethod
    def _part(cache: Cache, i: int) -> Cache:
        prefix = f"{i}."
        return Cache({name[len(prefix) :]: t for name, t in cache.items() if name.startswith(prefix)})

    def forward(self, x: torch.Tensor, math: bool = False):
        caches = Cache()
        for i, layer in enumerate(self.layers):
            x, cache = layer(x, math=math)  # (B, T, d_model)
            caches.update({f"{i}.{name}": t for name, t in cache.items()})
        return x, caches

    def allocate_cache(self, batch: int, capacity: int) -> Cache:
        caches = Cache()
        for i, layer in enumerate(self.layers):
            caches.update({f"{i}.{name}": t for name, t in layer.allocate_cache(batch, capacity).items()})
        return caches

    def fill_cache(self, cache: Cache, x: torch.Tensor) -> None:
        for i, layer in enumerate(self.layers):
            layer.fill_cache(self._part(cache, i), x)
            x, _ = layer(x)  # the next layer's prefix is this layer's output

    def step(self, x: torch.Tensor, cache: Cache, pos: int, math: bool = False) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer.step(x, self._part(cache, i), pos, math=math)  # (B, 1, d_model)
        return x
