"""attncli's MHA layer vs bare torch (four nn.Linear + SDPA) on the same weights, same process.

    python benchmarks/overhead.py [--preset medium] [--seq-len 1024] [--rounds 7]

Both sides compute the same prefill (no RoPE: position=none, so the work is identical). The two
are timed alternately in several rounds with the same timing function, and the ratio of medians
is printed: attncli / bare (target ≤ 1.05 on CPU at S=1024, medium).
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from attncli import presets
from attncli.measure.timing import time_fn


class Bare(torch.nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d, bias=False) for _ in range(4))

    def forward(self, x):
        B, T, d = x.shape
        split = lambda t: t.view(B, T, self.h, d // self.h).transpose(1, 2)  # noqa: E731  (B, h, T, hd)
        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)), is_causal=True)
        return self.o(y.transpose(1, 2).reshape(B, T, d))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.5)
    args = ap.parse_args()

    preset = presets.load_preset(args.preset)
    spec = presets.parse_variant("mha:position=none", preset)
    ours = presets.registry.get("mha").build(spec).eval()
    bare = Bare(spec.d_model, spec.n_heads).eval()
    with torch.no_grad():
        for a, b in ((ours.q_proj, bare.q), (ours.k_proj, bare.k), (ours.v_proj, bare.v), (ours.o_proj, bare.o)):
            b.weight.copy_(a.weight)
    x = torch.randn(1, args.seq_len, spec.d_model)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x)[0], bare(x), rtol=1e-5, atol=1e-5)  # same computation
        ratios = []
        for _ in range(args.rounds):
            t_ours = time_fn(lambda: ours(x), torch.device("cpu"), min_run_time=args.min_time).median_ms
            t_bare = time_fn(lambda: bare(x), torch.device("cpu"), min_run_time=args.min_time).median_ms
            ratios.append(t_ours / t_bare)
            print(f"round: attncli {t_ours:8.2f} ms   bare torch {t_bare:8.2f} ms   ratio {t_ours / t_bare:.3f}")
    print(f"preset {preset.name}, S={args.seq_len}, threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"median ratio attncli / bare torch over {args.rounds} rounds: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
