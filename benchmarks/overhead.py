"""attncli's MHA layer vs bare torch (four nn.Linear + SDPA) on the same weights, same process.

    python benchmarks/overhead.py [--preset medium] [--seq-len 1024] [--rounds 8]

Both sides compute the same prefill (no RoPE: position=none, so the work is identical). Two bare
baselines are timed: one that keeps its keys and values (the KV cache a prefill produces, as
attncli's layer returns it) and one that drops them as soon as SDPA is done. They are timed
alternately with the same timing function, each going first in every other round (ABBA), and
the median of the per-round ratios is printed (target ≤ 1.05 on CPU at S=1024, medium).

Keeping K/V alive is not free on the CPU: the output projection can no longer reuse their freed
memory, and glibc serves the fresh multi-MiB buffer from new pages (page faults). The second
ratio shows that cost; setting MALLOC_MMAP_THRESHOLD_ high removes it from both.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from attncli import presets
from attncli.measure.timing import time_fn


class Bare(torch.nn.Module):
    def __init__(self, d, h, keep_kv: bool = False):
        super().__init__()
        self.h, self.keep_kv = h, keep_kv
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d, bias=False) for _ in range(4))

    def forward(self, x):
        B, T, d = x.shape
        split = lambda t: t.view(B, T, self.h, d // self.h).transpose(1, 2)  # noqa: E731  (B, h, T, hd)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, h, T, hd)
        if not self.keep_kv:
            del q, k, v  # freed before the output projection, which can then reuse their memory
            return self.o(o.transpose(1, 2).reshape(B, T, d))
        return self.o(o.transpose(1, 2).reshape(B, T, d)), k, v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--min-time", type=float, default=0.5)
    args = ap.parse_args()

    preset = presets.load_preset(args.preset)
    spec = presets.parse_variant("mha:position=none", preset)
    ours = presets.registry.get("mha").build(spec).eval()
    keep, drop = Bare(spec.d_model, spec.n_heads, keep_kv=True).eval(), Bare(spec.d_model, spec.n_heads).eval()
    with torch.no_grad():
        for bare in (keep, drop):
            for a, b in ((ours.q_proj, bare.q), (ours.k_proj, bare.k), (ours.v_proj, bare.v), (ours.o_proj, bare.o)):
                b.weight.copy_(a.weight)
    x = torch.randn(1, args.seq_len, spec.d_model)
    cpu = torch.device("cpu")
    sides = {"attncli": lambda: ours(x), "bare, keeps K/V": lambda: keep(x), "bare, drops K/V": lambda: drop(x)}
    with torch.inference_mode():
        torch.testing.assert_close(ours(x)[0], drop(x), rtol=1e-5, atol=1e-5)  # same computation
        ratios = {name: [] for name in sides if name != "attncli"}
        for i in range(args.rounds):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            t = {name: time_fn(sides[name], cpu, min_run_time=args.min_time).median_ms for name in order}
            for name in ratios:
                ratios[name].append(t["attncli"] / t[name])
            print("round: " + "   ".join(f"{name} {t[name]:7.2f} ms" for name in sides))
    print(f"preset {preset.name}, S={args.seq_len}, threads {torch.get_num_threads()}, torch {torch.__version__}")
    for name, values in ratios.items():
        print(f"median ratio attncli / {name} over {args.rounds} rounds: {statistics.median(values):.3f}")


if __name__ == "__main__":
    main()
