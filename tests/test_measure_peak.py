"""`attncli peak`: the measurement runs (tiny sizes here), the cache is keyed and kept in the
user's cache directory, and bench rows pick the cached figures up."""

import json

import pytest
import torch

from attncli.measure import peak as peak_mod
from attncli.measure.peak import Peak, cache_path, load_cached, peak_key, save


@pytest.fixture
def tiny_peak(monkeypatch):
    """Small matrices and buffers: the machinery, not the figures, is under test."""
    monkeypatch.setattr(peak_mod, "CPU_SIZES", (32, 64))
    monkeypatch.setattr(peak_mod, "CPU_COPY_BYTES", 2**20)
    monkeypatch.setattr(peak_mod, "measure_matmul", _quick(peak_mod.measure_matmul))
    monkeypatch.setattr(peak_mod, "measure_bandwidth", _quick(peak_mod.measure_bandwidth))


def _quick(fn):
    return lambda *a, **k: fn(*a, **{**k, "min_run_time": 0.01})


def _peak(**kw):
    fields = dict(device_name="Test CPU", dtype="float32", torch_version="9.9", threads=2, gflops=100.0,
                  gbps=10.0, matmul_n=1024, copy_bytes=2**28, measured_at="2025-01-01T00:00:00")  # fmt: skip
    return Peak(**{**fields, **kw})


def test_cache_lives_in_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_path() == tmp_path / "attncli" / "peaks.json"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored, as the spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_path() == tmp_path / "home" / ".cache" / "attncli" / "peaks.json"


def test_save_and_load_by_key(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a, b = _peak(), _peak(threads=1, gflops=55.0)
    assert save(a) is None and save(b) is None
    assert load_cached(peak_key("Test CPU", "float32", "9.9", 2)) == a
    assert load_cached(peak_key("Test CPU", "float32", "9.9", 1)) == b
    assert load_cached(peak_key("Test CPU", "bfloat16", "9.9", 2)) is None  # another dtype: not measured
    assert load_cached(peak_key("Test CPU", "float32", "10.0", 2)) is None  # another torch
    assert a.ridge == pytest.approx(10.0)


def test_corrupt_or_foreign_cache_is_ignored_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache_path().parent.mkdir(parents=True)
    cache_path().write_text("{not json")
    assert load_cached(_peak().key) is None
    assert save(_peak()) is None
    assert load_cached(_peak().key) == _peak()
    cache_path().write_text(json.dumps({"format": 0, "peaks": {_peak().key: {}}}))
    assert load_cached(_peak().key) is None


def test_unwritable_cache_is_reported_not_raised(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where the folder should be
    assert "could not write" in save(_peak())


def test_measure_peak_on_cpu(tiny_peak):
    p = peak_mod.measure_peak(torch.device("cpu"), "float32")
    assert p.gflops > 0 and p.gbps > 0
    assert p.matmul_n in (32, 64) and p.copy_bytes == 2**20
    assert p.threads == torch.get_num_threads() and p.torch_version == torch.__version__
    assert "read + write" in p.method()


def test_peak_command_measures_then_reads_the_cache(cli, tiny_peak, tmp_path):
    first = cli("peak", "--device", "cpu", "--dtype", "float32", "--json", "-")
    assert first.code == 0, first.err
    (row,) = first.rows()
    assert row["peak_source"] == "measured" and row["peak_gflops"] > 0 and row["peak_gbps"] > 0
    assert "read + write" in row["peak_method"] and "read + write" in " ".join(first.err.split())  # printed
    second = cli("peak", "--device", "cpu", "--dtype", "float32", "--json", "-")
    assert second.rows()[0]["peak_source"] == "cache"
    assert second.rows()[0]["peak_gflops"] == row["peak_gflops"]
    third = cli("peak", "--device", "cpu", "--dtype", "fp32", "--refresh", "--json", "-")
    assert third.rows()[0]["peak_source"] == "measured"


def test_bench_rows_use_the_cached_peak(cli):
    small = dict(device_name=None, dtype="float32", torch_version=torch.__version__, threads=torch.get_num_threads())
    from attncli.measure.device import device_name

    small["device_name"] = device_name(torch.device("cpu"))
    save(Peak(**small, gflops=1000.0, gbps=100.0, matmul_n=1024, copy_bytes=2**28, measured_at="now"))
    args = ("bench", "mha", "-p", "micro", "-s", "64", "-m", "prefill,decode", "--device", "cpu", "--dtype", "float32",
            "--min-time", "0", "--json", "-")  # fmt: skip
    r = cli(*args)
    assert r.code == 0, r.err
    prefill, decode = r.rows()
    for row in (prefill, decode):
        assert row["peak_gflops"] == 1000.0 and row["peak_gbps"] == 100.0
        assert row["frac_of_peak"] == pytest.approx(row["gflops_per_s"] / 1000.0)
        assert row["roofline_ms"] == pytest.approx(1e3 * max(row["flops"] / 1e12, row["bytes_moved"] / 1e11))
    assert decode["bound"] == "memory"
    assert "roofline vs measured peak" in r.err


def test_bench_without_a_cached_peak_leaves_the_roofline_empty_and_says_how(cli):
    r = cli("bench", "-p", "micro", "-s", "32", "--device", "cpu", "--dtype", "float32", "--min-time", "0", "--json", "-")
    assert r.code == 0, r.err
    (row,) = r.rows()
    assert row["peak_gflops"] is None and row["frac_of_peak"] is None and row["bound"] is None
    assert row["bytes_moved"] > 0 and row["arith_intensity"] > 0  # analytic: always there
    assert "attncli peak --device cpu --dtype float32" in " ".join(r.err.split())


def test_a_row_beating_the_cached_peak_asks_for_a_refresh():
    from attncli.report import caption_for

    row = {"device_name": "cpu0", "device": "cpu", "dtype": "float32", "torch_version": "x", "threads": 2, "seed": 0,
           "peak_gflops": 10.0, "peak_gbps": 1.0, "frac_of_peak": 3.4, "mode": "prefill"}  # fmt: skip
    assert "attncli peak --refresh" in caption_for([row])
    assert "attncli peak --refresh" not in caption_for([{**row, "frac_of_peak": 0.9}])
