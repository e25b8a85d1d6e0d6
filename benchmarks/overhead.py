"""attncli's MHA layer vs bare torch (four nn.Linear + SDPA) on the same weights, same process.

    python benchmarks/overhead.py [--preset medium] [--seq-len 1024] [--rounds 10]

Both sides compute the same causal prefill. The headline is the configuration users get by
default, RoPE on: the bare side then rotates q and k the usual way (precomputed cos/sin tables,
x·cos + rotate_half(x)·sin, as transformers' Llama does). The same comparison without RoPE
(position=none) follows, with a second bare baseline that drops its keys and values as soon as
SDPA is done instead of keeping them (the KV cache a prefill produces, as attncli's layer returns
it). All sides are timed in every round with the same timing function, in alternating order
(ABBA), and the per-round ratios are summarised as a median with its p25–p75 (target ≤ 1.05 on
CPU at S=1024, medium).

Keeping K/V alive is not free on the CPU: the output projection can no longer reuse their freed
memory, and glibc serves the fresh multi-MiB buffer from new pages (page faults). The last ratio
shows that cost; setting MALLOC_MMAP_THRESHOLD_ high removes it from both.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _common import interleaved, machine_line, per_round, spread

from attncli import presets
from attncli.measure.timing import time_fn


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class Bare(torch.nn.Module):
    def __init__(self, d, h, keep_kv: bool = False, rope_theta: float | None = None, max_len: int = 0):
        super().__init__()
        self.h, self.keep_kv = h, keep_kv
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d, bias=False) for _ in range(4))
        self.cos = self.sin = None
        if rope_theta is not None:  # tables once, as a serving stack keeps them
            hd = d // h
            inv = rope_theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
            angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv)
            angles = torch.cat([angles, angles], dim=-1)  # (max_len, hd)
            self.cos, self.sin = angles.cos().float(), angles.sin().float()

    def forward(self, x):
        B, T, d = x.shape
        split = lambda t: t.view(B, T, self.h, d // self.h).transpose(1, 2)  # noqa: E731  (B, h, T, hd)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        if self.cos is not None:
            cos, sin = self.cos[:T], self.sin[:T]
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, h, T, hd)
        if not self.keep_kv:
            del q, k, v  # freed before the output projection, which can then reuse their memory
            return self.o(o.transpose(1, 2).reshape(B, T, d))
        return self.o(o.transpose(1, 2).reshape(B, T, d)), k, v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--min-time", type=float, default=0.5)
    args = ap.parse_args()

    preset = presets.load_preset(args.preset)
    cpu = torch.device("cpu")
    x = torch.randn(1, args.seq_len, preset.d_model)
    sides, checks = {}, []
    for position in ("rope", "none"):
        spec = presets.parse_variant(f"mha:position={position}", preset)
        ours = presets.registry.get("mha").build(spec).eval()
        theta = spec.rope_theta if position == "rope" else None
        bares = {"keeps K/V": Bare(spec.d_model, spec.n_heads, True, theta, args.seq_len).eval()}
        if position == "none":
            bares["drops K/V"] = Bare(spec.d_model, spec.n_heads, False).eval()
        with torch.no_grad():
            for bare in bares.values():
                for a, b in ((ours.q_proj, bare.q), (ours.k_proj, bare.k), (ours.v_proj, bare.v), (ours.o_proj, bare.o)):
                    b.weight.copy_(a.weight)
        sides[f"attncli, {position}"] = ours
        for name, bare in bares.items():
            sides[f"bare {name}, {position}"] = bare
            checks.append((ours, bare))
    with torch.inference_mode():
        for ours, bare in checks:  # the same computation on both sides
            y = bare(x)
            torch.testing.assert_close(ours(x)[0], y[0] if isinstance(y, tuple) else y, rtol=1e-4, atol=1e-5)
        timers = {name: (lambda m=m: time_fn(lambda: m(x), cpu, min_run_time=args.min_time).median_ms)
                  for name, m in sides.items()}  # fmt: skip
        show = lambda i, t: print(f"round {i + 1:>2}: " + "  ".join(f"{n} {v:.2f} ms" for n, v in t.items()))  # noqa: E731
        t = interleaved(timers, args.rounds, on_round=show)
    print(f"preset {preset.name}, S={args.seq_len}, causal prefill, float32, threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}; machine: {machine_line()}")  # fmt: skip
    print(f"ratio attncli / bare torch, per round, median over {args.rounds} rounds (p25–p75):")
    for ours, bare, what in (("attncli, rope", "bare keeps K/V, rope", "RoPE (default), bare keeps K/V"),
                             ("attncli, none", "bare keeps K/V, none", "no RoPE, bare keeps K/V"),
                             ("attncli, none", "bare drops K/V, none", "no RoPE, bare drops K/V")):  # fmt: skip
        print(f"  {what:<32} {spread(per_round(t[ours], t[bare])).show()}")


if __name__ == "__main__":
    main()
