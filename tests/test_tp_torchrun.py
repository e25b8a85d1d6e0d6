"""`torchrun --nproc-per-node 2 -m attncli bench ...` joins torchrun's process group and gives the
rows attncli's own two ranks give (only the timing, and who started the ranks, differ)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from attncli.cli import main

ARGS = ["bench", "gqa", "mla:absorb=true", "-p", "micro", "-s", "16", "-b", "2", "-m", "prefill,decode",
        "--device", "cpu", "--min-time", "0", "--threads", "1"]  # fmt: skip
TIMED = {"latency_ms_median", "latency_ms_p25", "latency_ms_p75", "n_runs", "gflops_per_s", "gbytes_per_s", "noisy",
         "allreduce_ms", "tp_slowest_rank", "tp_launcher"}  # fmt: skip


def _torchrun() -> list[str]:
    beside = Path(sys.executable).with_name("torchrun")  # the venv's console script
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "torch.distributed.run"]


def test_torchrun_gives_the_same_rows(tmp_path):
    spawned = tmp_path / "spawn.json"
    assert main([*ARGS, "--tp", "2", "--json", str(spawned)]) == 0
    joined = tmp_path / "torchrun.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([*_torchrun(), "--standalone", "--nproc-per-node", "2", "-m", "attncli", *ARGS,
                        "--json", str(joined)], capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("bench · preset micro") == 1  # rank 0 alone prints the table
    a, b = json.loads(spawned.read_text()), json.loads(joined.read_text())
    assert [r["tp_launcher"] for r in a] == ["spawn"] * 4 and [r["tp_launcher"] for r in b] == ["torchrun"] * 4
    for ra, rb in zip(a, b, strict=True):
        assert {k: v for k, v in ra.items() if k not in TIMED} == {k: v for k, v in rb.items() if k not in TIMED}
