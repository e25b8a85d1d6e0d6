"""The GPU check script (benchmarks/gpu_check.sh): its dry run on the CPU runs every step and
writes the same JSON, so nothing in it runs for the first time on a lent GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


def _script(tmp_path, *args):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_the_json(tmp_path):
    p = _script(tmp_path, "--dry-run")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True and summary["failed"] == 0
    names = [c["check"] for c in summary["checks"]]
    for expected in ("peak-float32-tf32-off runs", "peak-float32-tf32-on runs", "compare --backend auto",
                     "compare --backend math", "overhead vs bare SDPA measured", "bench gqa --compile",
                     "a shape that does not fit is refused (exit 3, one line)",
                     "--force into an OOM gives an oom row and the run goes on",
                     "kv_cache_bytes_measured == kv_cache_bytes on every row", "healthy on every bf16/fp16 row"):  # fmt: skip
        assert expected in names, names
    # Backends the CPU cannot run are refused in one line (exit 2), variant by variant, never run.
    assert "compare --backend cudnn refused in one line (exit 2)" in names
    auto = json.loads((out / "compare-auto.json").read_text())
    assert {(r["family"], r["mode"]) for r in auto} == {(f, m) for f in ("mha", "mla")
                                                        for m in ("prefill", "decode")}  # fmt: skip
    math_rows = json.loads((out / "compare-math.json").read_text())
    assert {r["backend"] for r in math_rows} == {"math"} and all(r["dtype"] == "bfloat16" for r in math_rows)
    assert {(r["family"], r["mode"]) for r in math_rows} == {("mha", "prefill"), ("mla", "prefill")}
    oom = json.loads((out / "force-oom.json").read_text())
    assert [r["status"] for r in oom] == ["ok", "oom"]
    overhead = json.loads((out / "overhead.json").read_text())
    assert overhead["rounds"] == gpu_check.DRY["overhead_rounds"] and overhead["ratio_median"] > 0
    # Every measured row reaches the overview table: the compares', --compile's and flex's.
    measured = [*out.glob("compare-*.json"), out / "compile-gqa.json", *out.glob("flex-*.json")]
    assert len(summary["rows"]) == sum(len(json.loads(f.read_text())) for f in measured)


def test_without_cuda_the_real_run_refuses_with_exit_3(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 3 and "no CUDA device" in p.stderr and "--dry-run" in p.stderr


def _row(**changes):
    row = {"label": "mha", "mode": "prefill", "backend": "flash", "backend_used": "flash", "status": "ok",
           "dtype": "bfloat16", "kv_cache_bytes": 4096, "kv_cache_bytes_measured": 4096, "healthy": True,
           "err_rel_l2": 3e-3, "naive_err_rel_l2": 3e-3}  # fmt: skip
    return {**row, **changes}


def test_row_checks_fail_on_a_wrong_cache_an_unhealthy_kernel_and_an_oom_row():
    check = gpu_check.Check()
    gpu_check.row_checks([_row(), _row(mode="decode")], check)
    assert [c["ok"] for c in check.items] == [True, True, True]
    check = gpu_check.Check()
    gpu_check.row_checks([_row(), _row(kv_cache_bytes_measured=8192), _row(healthy=False), _row(status="oom")], check)
    assert [c["ok"] for c in check.items] == [False, False, False]
    assert "8192 != 4096" in check.items[0]["detail"]


def test_a_refusal_counts_only_as_one_line_without_a_traceback():
    assert gpu_check.one_line("attncli: --backend cudnn: not available on cpu\n")
    assert not gpu_check.one_line("Traceback (most recent call last):\n  File x\nRuntimeError: boom\n")
    assert not gpu_check.one_line("")
