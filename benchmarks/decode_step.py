#!/usr/bin/env python
"""A GQA layer's decode step in one C call (cdecode.gqa_step) against the same step op by op
(the module's own step: the same C kernels for the attention and the projections, with torch's
ops between them), and against a read-only pass over the bytes the step reads (issue 17,
acceptance 2; docs/backends.md, "The whole step in one call").

On the decode bandwidth benchmark's shape by default (large preset, 8,192 cached tokens + the
new one, batch 4, float32, the CPU cache layout), times in interleaved rounds: `step` (one call),
`op by op`, and `read` (the KV cache's and the four weights' `.sum()`). Each side sweeps the whole
cache, so each finds the CPU's caches as a real step does: holding the other side's last bytes.
Prints each side's GB/s of the step's bytes, the per-round time ratios, and each side's relative
L2 error against the float64 plain-math step. Exits 3 when the kernels cannot be built here.

    python benchmarks/decode_step.py [--variant gqa] [-p large] [-s 8192] [-b 4] [--rounds 20] [--threads N]
"""

from __future__ import annotations

import argparse
import sys

from _common import decode_kernels_missing, interleaved, print_header, print_ratio, print_sides, timed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="gqa", help="a variant with grouped query heads (gqa, mqa, gqa-kv2, ...)")
    ap.add_argument("--preset", "-p", default="large")
    ap.add_argument("--seq-len", "-s", type=int, default=8192, help="cached tokens before the new one")
    ap.add_argument("--batch", "-b", type=int, default=4, help="sequences, one new token each")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    missing = decode_kernels_missing(a.threads)
    if missing:
        return missing
    import torch

    from attncli import presets, registry
    from attncli.variants import cdecode

    spec = presets.parse_variant(a.variant, presets.load_preset(a.preset))
    torch.manual_seed(0)
    layer = registry.get(spec.family).build(spec).eval()
    if not getattr(layer, "_one_call", False):
        print(f"{spec.label} does not take the one-call step (a window, ALiBi, q/k norms, soft-capping, sinks, "
              "or one query head per KV head)")  # fmt: skip
        return 2
    S, B = a.seq_len, a.batch
    cache = layer.allocate_cache(B, S + 1)
    cache.k.normal_(), cache.v.normal_()
    x = torch.randn(B, 1, spec.d_model)

    def one_call():
        return layer.step(x, cache, S)

    def op_by_op():
        layer._one_call = False
        try:
            return layer.step(x, cache, S)
        finally:
            layer._one_call = True

    weights = [p.weight for p in (layer.q_proj, layer.k_proj, layer.v_proj, layer.o_proj)]
    with torch.inference_mode():
        before = cdecode.step_calls()
        y = one_call()
        if cdecode.step_calls() == before:
            print(f"{B} sequences do not take the one-call step (it takes {cdecode.STEP_ROWS.start}-"
                  f"{cdecode.STEP_ROWS.stop - 1})")  # fmt: skip
            return 2
        storage = (cache.k.transpose(2, 3), cache.v.transpose(2, 3), *weights)  # each dense
        sides = {"step": timed(one_call), "op by op": timed(op_by_op),
                 "read": timed(lambda: [t.sum() for t in storage])}  # fmt: skip
        got = interleaved(sides, a.rounds)
        y_ops = op_by_op()
        want = layer.double().step(x.double(), type(cache)(k=cache.k.double(), v=cache.v.double()), S, math=True)
        layer.float()
        errs = [((o.double() - want).norm() / want.norm()).item() for o in (y, y_ops)]
    nbytes = (cache.k[:, :, : S + 1].numel() * 2 + sum(w.numel() for w in weights)) * 4
    print_header(f"{spec.label} -p {a.preset} decode, {S:,} cached tokens, batch {B}, float32 "
                 f"({nbytes / 2**20:.1f} MiB read per step) · {a.rounds} rounds, interleaved")  # fmt: skip
    print_sides(got, nbytes)
    print_ratio("step / op by op time", got["step"], got["op by op"])
    print_ratio("read / step time (the step's fraction of the read-only rate)", got["read"], got["step"])
    print(f"  rel L2 error vs the float64 step: one call {errs[0]:.2e}, op by op {errs[1]:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
