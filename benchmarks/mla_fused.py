#!/usr/bin/env python
"""MLA on the CPU's fused SDPA kernel vs the old path (SDPA's math fallback), issue 17.

    python benchmarks/mla_fused.py [-p large] [--prefill 1024] [--decode 4096] [-b 1] [--rounds 3] [--threads N]

For each path (naive, absorbed) and mode (prefill of --prefill tokens; decode of one token against
--decode cached tokens), one module is timed with `attncli.variants.mla.FUSED_WIDTHS` False (the
old path: values narrower than keys, so SDPA runs its math kernel) and True (values padded to the
key width, or the whole latent as value: the flash kernel), alternately for --rounds rounds, with
attncli's timing function. Prints the medians, old / new per round (above 1: the new path is
faster) and the backend torch chose for each; both outputs are checked against each other.
"""

from __future__ import annotations

import argparse
import statistics

from _common import ROOT  # noqa: F401 - puts this checkout first on sys.path

import torch

from attncli import presets, registry
from attncli.measure.backend import probe
from attncli.measure.timing import time_fn
from attncli.variants import mla


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", "-p", default="large")
    ap.add_argument("--prefill", type=int, default=1024, help="prefill tokens")
    ap.add_argument("--decode", type=int, default=4096, help="cached tokens of the decode step")
    ap.add_argument("--batch", "-b", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    preset = presets.load_preset(a.preset)
    cpu = torch.device("cpu")
    print(f"preset {preset.name}, batch {a.batch}, float32, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'path':<22} {'mode':<14} {'old ms':>9} {'new ms':>9} {'old/new':>8}  rounds       SDPA old → new")
    with torch.inference_mode():
        for spec in presets.parse_variant_paths("mla", preset):  # naive, absorbed
            torch.manual_seed(0)
            m = registry.get("mla").build(spec).eval()
            for mode, n in (("prefill", a.prefill), ("decode", a.decode)):
                x = torch.randn(a.batch, n + 1, preset.d_model, generator=torch.Generator().manual_seed(n))
                if mode == "prefill":
                    x = x[:, :n]
                    run = lambda: m(x)[0]  # noqa: E731
                else:
                    cache = m.allocate_cache(a.batch, n + 1)
                    m.fill_cache(cache, x[:, :n])
                    run = lambda: m.step(x[:, n:], cache, n)  # noqa: E731
                used, outs, ms = [], [], {False: [], True: []}
                for fused in (False, True):
                    mla.FUSED_WIDTHS = fused
                    used.append(probe(run, "auto", spec.label))
                    outs.append(run())
                torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)
                for _ in range(a.rounds):  # alternate old and new, so a busy spell hits both
                    for fused in (False, True):
                        mla.FUSED_WIDTHS = fused
                        ms[fused].append(time_fn(run, cpu, min_run_time=a.min_time).median_ms)
                mla.FUSED_WIDTHS = True
                ratios = [o / f for o, f in zip(ms[False], ms[True])]
                print(f"{spec.label:<22} {mode + ' ' + str(n):<14} {statistics.median(ms[False]):>9.2f} "
                      f"{statistics.median(ms[True]):>9.2f} {statistics.median(ratios):>7.2f}×  "
                      f"{min(ratios):.2f}–{max(ratios):.2f}    {used[0]} → {used[1]}")  # fmt: skip


if __name__ == "__main__":
    main()
