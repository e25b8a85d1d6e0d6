"""MLA decode: the weight-absorbed path vs the naive path, one layer, over cache lengths.

    python benchmarks/mla_decode.py [--preset large] [--lengths 256:8192] [--rounds 10] [--min-time 0.2]

Both modules hold the same weights (the preset's default MLA, RoPE on) and share one latent cache
(it is the same for both paths); each length times one decode step of each path in alternating
order (ABBA), `--rounds` times, with attncli's timing function. It prints the median step time of
each path, the speed-up naive / absorbed taken round by round (above 1: absorbed is faster) as a
median with its p25–p75, and the analytic FLOP ratio from cost.py. The naive step up-projects all
L+1 cached latents into per-head keys and values; the absorbed step attends over the latent cache
as stored.
"""

from __future__ import annotations

import argparse

import torch
from _common import interleaved, machine_line, per_round, spread

from attncli import presets, registry
from attncli.measure.timing import time_fn
from attncli.options import parse_int_list
from attncli.rows import analytic_row
from attncli.spec import Shape


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="large")
    ap.add_argument("--lengths", default="256:8192", help="cache lengths: a list or a doubling range")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds of timed steps per path per round")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    preset = presets.load_preset(args.preset)
    specs = presets.parse_variant_paths("mla", preset)  # naive, absorbed
    modules = []
    for spec in specs:
        torch.manual_seed(0)  # the same weights for both paths
        modules.append(registry.get("mla").build(spec).eval())
    naive, absorbed = modules
    cpu = torch.device("cpu")
    lengths = parse_int_list(args.lengths, "--lengths")
    print(f"preset {preset.name}: {specs[0].label} / {specs[1].label}, float32, threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}; machine: {machine_line()}")  # fmt: skip
    print(f"{'cache L':>8} {'naive ms':>10} {'absorbed ms':>12}  {'naive/absorbed per round: median (p25–p75)':<44} "
          f"{'FLOP ratio':>10}")  # fmt: skip
    first_win = None
    with torch.inference_mode():
        for L in lengths:
            x = torch.randn(1, L + 1, preset.d_model, generator=torch.Generator().manual_seed(L))
            cache = naive.allocate_cache(1, L + 1)
            naive.fill_cache(cache, x[:, :L])
            new = x[:, L:]
            torch.testing.assert_close(absorbed.step(new, cache, L), naive.step(new, cache, L), rtol=1e-4, atol=1e-5)
            t = interleaved({  # alternate, so that a busy spell hits both paths
                "naive": lambda: time_fn(lambda: naive.step(new, cache, L), cpu, min_run_time=args.min_time).median_ms,
                "absorbed": lambda: time_fn(lambda: absorbed.step(new, cache, L), cpu, min_run_time=args.min_time).median_ms,
            }, args.rounds)  # fmt: skip
            tn, ta = spread(t["naive"]).median, spread(t["absorbed"]).median
            speedup = spread(per_round(t["naive"], t["absorbed"]))
            flops = [analytic_row(s, preset, Shape("decode", L), 1, "float32")["flops"] for s in specs]
            print(f"{L:>8} {tn:>10.3f} {ta:>12.3f}  {speedup.show('.2f', '×'):<44} {flops[0] / flops[1]:>9.1f}×")
            if first_win is None and speedup.median > 1:
                first_win = L
    where = f"from L = {first_win} (the shortest cache timed)" if first_win == lengths[0] else f"from L = {first_win}"
    print(f"absorbed is faster {where}" if first_win else "absorbed was not faster at any length timed")


if __name__ == "__main__":
    main()
