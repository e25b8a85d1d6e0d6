"""The memory pre-flight of every family against the peak a real row reaches (two shapes each), the
3,000,000-token cross memory refused at once, the hint naming the knob that matters, and convert.

Measured peak: one fresh process measures every case in turn; before each row it resets the
resident high-water mark (writing 5 to /proc/self/clear_refs) and reads VmHWM after it. glibc is
told to serve every block over 64 KiB with mmap (MALLOC_MMAP_THRESHOLD_), so a freed tensor leaves
the resident set at once and the next row's growth is its own. (tests/test_reliability.py also
bounds GQA rows measured one fresh process each, without the reset: a looser 1–2.5×.)
"""

import json
import os
import subprocess
import sys
import time

import pytest

from attncli import preflight, presets
from attncli.spec import Shape

PROBE = """
import json, sys, torch
torch.set_num_threads(1)
from attncli import presets, preflight
from attncli.measure.bench import Settings, measure_row
from attncli.spec import Shape
def hwm():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
torch.zeros(8) @ torch.zeros(8)
out = []
for name, variant, mode, seq, batch in json.loads(sys.argv[1]):
    p = presets.load_preset(name)
    spec, shape = presets.parse_variant(variant, p), Shape(mode, seq, batch=batch)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    before = hwm()
    measure_row(spec, p, shape, Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0))
    out.append(hwm() - before)
print(json.dumps(out))
"""
CASES = [  # two shapes per family (prefill and decode), each estimate tens to hundreds of MiB
    ("micro", "mha", "prefill", 512, 4), ("small", "gqa", "decode", 2048, 2),
    ("small", "swa:window=128", "prefill", 1024, 2), ("small", "swa:window=64", "decode", 1024, 2),
    ("small", "cross", "prefill", 128, 2), ("small", "cross:memory_len=2048", "decode", 32, 2),
    ("small", "linear", "prefill", 1024, 2), ("small", "linear", "decode", 1024, 2),
    ("small", "mla:absorb=false", "prefill", 512, 2), ("small", "mla:absorb=false", "decode", 1024, 2),
    ("small", "mla:absorb=true", "prefill", 512, 2), ("small", "mla:absorb=true", "decode", 1024, 2),
]  # fmt: skip


@pytest.fixture(scope="module")
def measured_peaks():
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    p = subprocess.run([sys.executable, "-c", PROBE, json.dumps(CASES)], capture_output=True, text=True, timeout=600,
                       env=env)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return dict(zip(CASES, json.loads(p.stdout.strip().splitlines()[-1])))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status and clear_refs")
@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES])
def test_every_familys_estimate_is_within_1_1_to_2_times_its_measured_peak(measured_peaks, case):
    name, variant, mode, seq, batch = case
    spec, shape = presets.parse_variant(variant, presets.load_preset(name)), Shape(mode, seq, batch=batch)
    estimate = sum(preflight.row_bytes(spec, shape, "float32"))
    grown = measured_peaks[case]
    assert grown > 16 * 2**20  # the row's own memory, well above the allocator's noise
    assert 1.1 <= estimate / grown <= 2.0, f"estimate {estimate / 2**20:.0f} MiB, measured {grown / 2**20:.0f} MiB"


def test_a_3_000_000_token_cross_memory_is_refused_in_under_a_second(cli, monkeypatch):
    monkeypatch.setattr(preflight, "host_available_bytes", lambda: 32 * 2**30)  # a 32 GiB machine
    spec = presets.parse_variant("cross:memory_len=3000000", presets.load_preset("small"))
    shape = Shape("prefill", 1024, batch=1)
    # the memory alone: 3e6 × 512 float32, and its K/V (1,024 elements a token) projected and cached: 30.7 GB
    assert preflight.row_bytes(spec, shape, "float32")[0] > 3_000_000 * (512 + 2 * 1024) * 4
    start = time.perf_counter()
    r = cli("bench", "cross:memory_len=3000000", "-p", "small", "--device", "cpu")
    assert time.perf_counter() - start < 1.0
    assert r.code == 3 and r.err.count("\n") == 1
    assert "cross-m3000000 prefill seq_len=1,024 batch=1: needs about " in r.err
    assert "use a shorter memory_len (the encoder memory, now 3,000,000 tokens)" in r.err  # the knob that matters


def test_the_hint_names_seq_len_where_the_sequence_dominates(monkeypatch, cli):
    monkeypatch.setattr(preflight, "host_available_bytes", lambda: 2**30)
    r = cli("bench", "mha", "-p", "small", "-s", "200000", "--device", "cpu")
    assert r.code == 3 and "; use a shorter --seq-len (or a smaller --batch), or --force" in r.err
    r = cli("bench", "cross:memory_len=16", "-p", "small", "-s", "200000", "--device", "cpu")  # the decoder dominates
    assert r.code == 3 and "; use a shorter --seq-len (or a smaller --batch, a shorter memory_len" in r.err


def test_convert_has_a_preflight(tmp_path, cli, monkeypatch):
    from test_weights_errors import checkpoint

    monkeypatch.setattr(preflight, "host_available_bytes", lambda: 2**30)
    r = cli("convert", checkpoint(tmp_path / "ckpt"), "--to", "mqa", "-s", "200000")
    assert r.code == 3 and r.err.startswith("attncli: convert seq_len=200,000 batch=1: needs about ")
    assert "(the original and the converted layer, float64)" in r.err and r.err.count("\n") == 1
