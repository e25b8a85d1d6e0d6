"""The GPU check: every CUDA path of attncli run once, every row written as JSON under --out.

    bash benchmarks/gpu_check.sh            # on a CUDA machine (OUT=folder for the JSON)
    bash benchmarks/gpu_check.sh --dry-run  # the same steps on this CPU, at CI-sized shapes

Steps (each writes `<step>.json`; `summary.json` holds every check and the overview table):
  1. peak: bf16, fp16, fp32 without and with TF32 (`torch.backends.cuda.matmul.allow_tf32`);
  2. compare mha mqa gqa mla swa linear -p large -s 4096 in bf16 (the dry run: mha and mla), prefill and decode, with
     --backend auto, then flash, efficient, cudnn and math: a backend the device cannot run for a
     variant must exit 2 with one line (attncli never falls back), so a refused compare is rerun
     variant by variant to find which ones can;
  3. overhead: attncli's MHA layer beside a bare SDPA + four nn.Linear layer on the same weights,
     timed with the same CUDA-event clock in this process, interleaved (ratio goal ≤ 1.05);
  4. --compile on gqa;
  5. checks on every measured row: kv_cache_bytes_measured == kv_cache_bytes (the analytic
     figure), and `healthy` on every bf16/fp16 row;
  6. the memory pre-flight: the device branch against torch.cuda.mem_get_info (a shape that
     does not fit is refused), the CLI's refusal (exit 3), and --force on a shape that runs out
     of memory (an `oom` row, the rows after it still measured), in a subprocess of its own;
  7. tensor-parallel and flex paths when this attncli has them (a note otherwise).
The process exits 0 when every check holds, 1 otherwise; the JSON is written either way.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's attncli, whatever is installed

# The shapes of each run. The dry run keeps every step and only shrinks the work.
GPU = dict(device="cuda", dtype="bfloat16", preset="large", seq="4096", min_time="0.2", overhead_seq=4096,
           overhead_rounds=10, peak_dtypes=("bfloat16", "float16", "float32"),
           variants=("mha", "mqa", "gqa", "mla", "swa", "linear"), forced_mode="both",
           # --force: the math backend materialises (batch, heads, n, n) scores: 16 × 131,072² × 2 B = 512 GiB
           oom=("bench", "mha", "-p", "large", "-s", "1024,131072", "--backend", "math", "--force"),
           refuse=("bench", "mha", "-p", "large", "-s", "131072", "-b", "1024"))
DRY = dict(device="cpu", dtype="bfloat16", preset="micro", seq="64", min_time="0.01", overhead_seq=64,
           overhead_rounds=4, peak_dtypes=("float32",),
           variants=("mha", "mla"), forced_mode="prefill",  # one of each path: SDPA, and MLA's own
           # 2**40 tokens: the CPU allocator refuses the first tensor at once (no page is touched)
           oom=("bench", "mha", "-p", "micro", "-s", "64,1099511627776", "--force"),
           refuse=("bench", "mha", "-p", "micro", "-s", "1099511627776"))
FORCED_BACKENDS = ("flash", "efficient", "cudnn", "math")
STEP_TIMEOUT_S = 240  # one attncli call; the whole script is held to 8 minutes by gpu_check.sh


class Check:
    """Every check the script makes, kept in order for summary.json."""

    def __init__(self):
        self.items: list[dict] = []

    def __call__(self, name: str, ok: bool, detail: str = "") -> bool:
        self.items.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"  [{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    def note(self, name: str, detail: str) -> None:
        self.items.append({"check": name, "ok": None, "detail": detail})
        print(f"  [note] {name}: {detail}", flush=True)


def attncli(args, out: Path, name: str, tf32: bool | None = None) -> tuple[int, list[dict], str]:
    """Run `attncli ARGS --json out/name.json` in this process; (exit code, rows, stderr).
    `tf32` sets torch.backends.cuda.matmul.allow_tf32 for this call only."""
    import torch

    from attncli.cli import main

    path = out / f"{name}.json"
    before = torch.backends.cuda.matmul.allow_tf32
    if tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    err, sink = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(err):
            code = main([*map(str, args), "--json", str(path)])
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    rows = json.loads(path.read_text()) if code == 0 and path.exists() else []
    print(f"attncli {' '.join(map(str, args))}: exit {code}, {len(rows)} rows, {time.perf_counter() - start:.1f} s",
          flush=True)  # fmt: skip
    return code, rows, err.getvalue()


def attncli_subprocess(args, out: Path, name: str) -> tuple[int, list[dict], str]:
    """The same in a fresh interpreter: what it does to memory cannot touch this process."""
    path = out / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "attncli", *map(str, args), "--json", str(path)], env=env,
                       capture_output=True, text=True, timeout=STEP_TIMEOUT_S)  # fmt: skip
    rows = json.loads(path.read_text()) if p.returncode == 0 and path.exists() else []
    print(f"attncli {' '.join(map(str, args))} (own process): exit {p.returncode}, {len(rows)} rows, "
          f"{time.perf_counter() - start:.1f} s", flush=True)  # fmt: skip
    return p.returncode, rows, p.stderr


def one_line(stderr: str) -> bool:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in stderr


def peaks(cfg, out: Path, check: Check) -> None:
    for dtype in cfg["peak_dtypes"]:
        for tf32 in ((False, True) if dtype == "float32" else (None,)):
            name = f"peak-{dtype}" + ("" if tf32 is None else f"-tf32-{'on' if tf32 else 'off'}")
            code, rows, err = attncli(["peak", "--device", cfg["device"], "-d", dtype, "--refresh"], out, name, tf32)
            if check(f"{name} runs", code == 0 and len(rows) == 1, err.strip()[:200]):
                r = rows[0]
                check(f"{name} figures", r["peak_gflops"] > 0 and r["peak_gbps"] > 0,
                      f"{r['peak_gflops']:.0f} GFLOP/s, {r['peak_gbps']:.0f} GB/s, {r['peak_method']}")  # fmt: skip


def compares(cfg, out: Path, check: Check) -> list[dict]:
    """Step 2: every variant with auto, then with each forced backend."""
    variants = cfg["variants"]
    base = ["compare", *variants, "-p", cfg["preset"], "-s", cfg["seq"], "--mode", "both", "--device", cfg["device"],
            "-d", cfg["dtype"], "--min-time", cfg["min_time"]]  # fmt: skip
    measured: list[dict] = []
    for backend in ("auto", *FORCED_BACKENDS):
        if backend != "auto":  # the dry run forces backends on prefill only (the same code path, less CI time)
            base[base.index("--mode") + 1] = cfg["forced_mode"]
        code, rows, err = attncli([*base, "--backend", backend], out, f"compare-{backend}")
        if code == 0:
            measured += rows
            check(f"compare --backend {backend}", len(rows) > 0, f"{len(rows)} rows")
            continue
        check(f"compare --backend {backend} refused in one line (exit 2)", code == 2 and one_line(err), err.strip()[:300])
        if backend == "auto" or code != 2:
            continue
        for variant in variants:  # which variants this backend can take
            one = [base[0], variant, *base[len(variants) + 1 :], "--backend", backend]
            code, rows, err = attncli(one, out, f"compare-{backend}-{variant}")
            measured += rows
            ok = code == 0 or (code == 2 and one_line(err))
            check(f"{variant} --backend {backend}: runs or refuses in one line", ok,
                  "ok" if code == 0 else f"exit {code}: {err.strip()[:200]}")  # fmt: skip
    return measured


def compiled(cfg, out: Path, check: Check) -> list[dict]:
    args = ["bench", "gqa", "-p", cfg["preset"], "-s", cfg["seq"], "--mode", "both", "--device", cfg["device"],
            "-d", cfg["dtype"], "--min-time", cfg["min_time"], "--compile"]  # fmt: skip
    code, rows, err = attncli(args, out, "compile-gqa")
    check("bench gqa --compile", code == 0 and len(rows) == 2 and all(r["compiled"] for r in rows), err.strip()[:300])
    return rows


def row_checks(rows: list[dict], check: Check) -> None:
    """Step 5 over every measured row."""
    ok_rows = [r for r in rows if r.get("status") == "ok"]
    bad_kv = [f"{r['label']} {r['mode']} {r['backend']}: {r['kv_cache_bytes_measured']} != {r['kv_cache_bytes']}"
              for r in ok_rows if r["kv_cache_bytes_measured"] != r["kv_cache_bytes"]]  # fmt: skip
    check("kv_cache_bytes_measured == kv_cache_bytes on every row", not bad_kv and bool(ok_rows),
          f"{len(ok_rows)} rows" if not bad_kv else "; ".join(bad_kv[:6]))  # fmt: skip
    graded = [r for r in ok_rows if r["dtype"] in ("bfloat16", "float16")]
    unhealthy = [f"{r['label']} {r['mode']} {r['backend']}→{r['backend_used']}: rel L2 {r['err_rel_l2']:.2e} vs math "
                 f"{r['naive_err_rel_l2']:.2e}" for r in graded if r.get("healthy") is not True]  # fmt: skip
    check("healthy on every bf16/fp16 row", not unhealthy and bool(graded),
          f"{len(graded)} rows" if not unhealthy else "; ".join(unhealthy[:6]))  # fmt: skip
    not_ok = [f"{r['label']} {r['mode']} {r['backend']}: {r['status']}" for r in rows if r.get("status") != "ok"]
    check("every measured row has status ok", not not_ok, "; ".join(not_ok[:6]))


def overhead(cfg, out: Path, check: Check) -> dict:
    """Step 3: attncli's MHA layer against bare SDPA + four Linear layers, same weights, same clock."""
    import torch

    from attncli import presets
    from attncli.measure.device import resolve_device
    from attncli.measure.timing import time_fn

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from overhead import Bare  # the bare layer of benchmarks/overhead.py: one definition of it

    device, dtype = resolve_device(cfg["device"]), getattr(torch, cfg["dtype"])
    preset = presets.load_preset(cfg["preset"])
    spec = presets.parse_variant("mha:position=none", preset)  # no RoPE: both sides do the same work
    ours = presets.registry.get("mha").build(spec).eval()
    bare = Bare(spec.d_model, spec.n_heads, keep_kv=True).eval()
    with torch.no_grad():
        for a, b in ((ours.q_proj, bare.q), (ours.k_proj, bare.k), (ours.v_proj, bare.v), (ours.o_proj, bare.o)):
            b.weight.copy_(a.weight)
    ours, bare = ours.to(device, dtype), bare.to(device, dtype)
    x = torch.randn(1, cfg["overhead_seq"], spec.d_model, device=device, dtype=dtype)
    sides = {"attncli": lambda: ours(x), "bare": lambda: bare(x)}
    ratios, times = [], {name: [] for name in sides}
    with torch.inference_mode():
        torch.testing.assert_close(ours(x)[0], bare(x)[0], rtol=2e-2, atol=2e-2)  # the same computation
        for i in range(cfg["overhead_rounds"]):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))  # ABBA: neither side always first
            t = {n: time_fn(sides[n], device, min_run_time=float(cfg["min_time"])).median_ms for n in order}
            ratios.append(t["attncli"] / t["bare"])
            for n in sides:
                times[n].append(t[n])
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    result = {"preset": preset.name, "seq_len": cfg["overhead_seq"], "dtype": cfg["dtype"], "device": str(device),
              "rounds": len(ratios), "ratio_median": statistics.median(ratios), "ratio_p25": q[0], "ratio_p75": q[2],
              "attncli_ms_median": statistics.median(times["attncli"]), "bare_ms_median": statistics.median(times["bare"])}  # fmt: skip
    (out / "overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    check("overhead vs bare SDPA measured", ratios and all(r > 0 for r in ratios),
          f"attncli / bare = {result['ratio_median']:.3f} (p25–p75 {q[0]:.3f}–{q[2]:.3f}) over {len(ratios)} rounds")  # fmt: skip
    return result


def memory(cfg, out: Path, check: Check) -> None:
    """Step 6: the pre-flight's device branch, its CLI refusal, and --force into a real OOM."""
    from attncli import presets, preflight
    from attncli.errors import ResourceError
    from attncli.measure.device import resolve_device
    from attncli.spec import Shape

    device = resolve_device(cfg["device"])
    free = preflight.device_available_bytes(device)
    if free is not None:  # CUDA: a shape sized at twice the free memory must be refused by the device branch
        spec = presets.parse_variant("mha", presets.load_preset(cfg["preset"]))
        seq = 1024
        while preflight.row_bytes(spec, Shape("prefill", seq, 1), cfg["dtype"])[0] < 2 * free:
            seq *= 2
        try:  # host_free: unlimited, so that only the device figure can refuse it
            preflight.check(spec, Shape("prefill", seq, 1), cfg["dtype"], device.type, device_free=free, host_free=2**62)
            check("pre-flight refuses a shape beyond mem_get_info", False, f"seq_len {seq} passed with {free} B free")
        except ResourceError as e:
            check("pre-flight refuses a shape beyond mem_get_info", "free" in str(e), str(e)[:300])
    else:
        check.note("pre-flight device branch", f"{device.type} reports no free-memory figure (mem_get_info is CUDA's)")
    code, _, err = attncli([*cfg["refuse"], "--device", cfg["device"], "-d", cfg["dtype"]], out, "preflight-refused")
    check("a shape that does not fit is refused (exit 3, one line)", code == 3 and one_line(err), err.strip()[:300])
    code, rows, err = attncli_subprocess([*cfg["oom"], "--device", cfg["device"], "-d", cfg["dtype"],
                                          "--min-time", cfg["min_time"]], out, "force-oom")  # fmt: skip
    statuses = [r["status"] for r in rows]
    check("--force into an OOM gives an oom row and the run goes on", code == 0 and statuses == ["ok", "oom"],
          f"exit {code}, statuses {statuses} {err.strip()[:200]}")  # fmt: skip


def optional_paths(cfg, out: Path, check: Check) -> list[dict]:
    """Step 7: flex and tensor parallelism, when this attncli has them."""
    from attncli.cli import main

    def help_of(command: str) -> str:
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(io.StringIO()):
            main([command, "--help"])
        return sink.getvalue()

    rows: list[dict] = []
    compare_help = help_of("compare")
    if "flex" in compare_help:
        args = ["compare", "mha", "swa", "-p", cfg["preset"], "-s", cfg["seq"], "--device", cfg["device"],
                "-d", cfg["dtype"], "--min-time", cfg["min_time"], "--backend", "flex"]  # fmt: skip
        code, got, err = attncli(args, out, "flex-swa")
        check("compare mha swa --backend flex", code == 0 and len(got) == 2, err.strip()[:300])
        rows += got
    else:
        check.note("flex", "this attncli has no --backend flex yet")
    if "--tp" in help_of("bench"):
        import torch

        gpus = torch.cuda.device_count() if cfg["device"] == "cuda" else 0
        if cfg["device"] == "cuda" and gpus < 2:
            check.note("tp on cuda", f"{gpus} GPU here; NCCL needs one GPU per rank, so --tp 2 runs on gloo (cpu)")
        tp_device = cfg["device"] if cfg["device"] != "cuda" or gpus >= 2 else "cpu"
        args = ["bench", "gqa", "--tp", "2", "-p", "micro" if tp_device == "cpu" else cfg["preset"], "-s", "64",
                "--mode", "both", "--device", tp_device, "--min-time", cfg["min_time"]]  # fmt: skip
        code, got, err = attncli_subprocess(args, out, f"tp2-{tp_device}")
        check(f"bench gqa --tp 2 on {tp_device}", code == 0 and len(got) == 2, err.strip()[:300])
    else:
        check.note("tp", "this attncli has no --tp on bench yet")
    return rows


def overview(rows: list[dict]) -> list[dict]:
    """The closing note's table: per variant and backend, latency, TFLOP/s, fraction of peak, error."""
    keep = ("label", "mode", "backend", "backend_used", "latency_ms_median", "gflops_per_s", "frac_of_peak",
            "frac_of_bw", "err_rel_l2", "naive_err_rel_l2", "healthy", "status")  # fmt: skip
    return [{k: r.get(k) for k in keep} for r in rows]


def print_overview(table: list[dict]) -> None:
    def f(v, fmt):
        return "–" if v is None else format(v, fmt)

    print(f"{'variant':<16} {'mode':<8} {'backend':<16} {'ms':>9} {'TFLOP/s':>8} {'of peak':>8} {'of BW':>6} "
          f"{'rel L2':>8} {'math':>8} healthy")  # fmt: skip
    for r in table:
        used = f"{r['backend']}→{r['backend_used']}" if r["backend_used"] not in (None, r["backend"]) else r["backend"]
        print(f"{r['label']:<16} {r['mode']:<8} {used:<16} {f(r['latency_ms_median'], '9.3f')} "
              f"{f(r['gflops_per_s'] and r['gflops_per_s'] / 1e3, '8.2f')} {f(r['frac_of_peak'], '8.2f')} "
              f"{f(r['frac_of_bw'], '6.2f')} {f(r['err_rel_l2'], '8.1e')} {f(r['naive_err_rel_l2'], '8.1e')} "
              f"{r['healthy']}")  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the JSON (created)")
    ap.add_argument("--dry-run", action="store_true", help="--device cpu and CI-sized shapes")
    args = ap.parse_args(argv)
    cfg = DRY if args.dry_run else GPU
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="attncli-gpu-check-")  # peaks of this run only
    import torch

    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); use --dry-run", file=sys.stderr)
        return 3
    check = Check()
    start = time.perf_counter()
    print(f"gpu_check: torch {torch.__version__}, device {cfg['device']}"
          + (f" ({torch.cuda.get_device_name()})" if cfg["device"] == "cuda" else ""), flush=True)  # fmt: skip
    steps = [("1 peak", lambda: peaks(cfg, out, check)), ("2 compare", lambda: compares(cfg, out, check)),
             ("3 overhead", lambda: overhead(cfg, out, check)), ("4 compile", lambda: compiled(cfg, out, check)),
             ("6 memory", lambda: memory(cfg, out, check)), ("7 flex/tp", lambda: optional_paths(cfg, out, check))]  # fmt: skip
    results: dict[str, object] = {}
    for name, step in steps:
        print(f"== step {name}", flush=True)
        try:
            results[name] = step()
        except Exception as e:  # noqa: BLE001 - a step that breaks is a failed check; the others still run
            check(f"step {name} completed", False, f"{type(e).__name__}: {str(e).strip()[:300]}")
    measured = [*(results.get("2 compare") or []), *(results.get("4 compile") or []), *(results.get("7 flex/tp") or [])]
    print("== step 5 row checks", flush=True)
    row_checks(measured, check)
    table = overview(measured)
    print_overview(table)
    failed = [c for c in check.items if c["ok"] is False]
    summary = {"dry_run": args.dry_run, "device": cfg["device"], "torch": torch.__version__,
               "device_name": torch.cuda.get_device_name() if cfg["device"] == "cuda" else "cpu",
               "seconds": round(time.perf_counter() - start, 1), "checks": check.items, "failed": len(failed),
               "overhead": results.get("3 overhead"), "rows": table}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    held = sum(c["ok"] is True for c in check.items)
    print(f"gpu_check: {held} of {held + len(failed)} checks hold, {len(failed)} failed, "
          f"{summary['seconds']} s; JSON in {out}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
