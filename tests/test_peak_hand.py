"""peak.py against hand derivations, with no real timing: `time_fn` is replaced by a fake that
returns the median we script for each matrix size (and records what it was asked), `torch.randn`
by one that records n and returns a 1×1 matrix, so the size search, the stop rule, the noisy flag
and the arguments passed to the timer are all observed exactly. The cache is read and written in
each test's tmp_path only; its file is written out by hand, field by field."""

import dataclasses
import json
import os
import tempfile
from types import SimpleNamespace

import pytest
import torch

from attncli.measure import device as device_mod
from attncli.measure import peak, timing
from attncli.measure.peak import Peak

CPU = torch.device("cpu")
CUDA = SimpleNamespace(type="cuda")  # only `.type` is read on these paths; no GPU is needed
MiB, GiB = 2**20, 2**30


def quiet(ms):
    return timing.Timing(median_ms=ms, p25_ms=ms, p75_ms=ms, n_runs=5)  # IQR 0: not noisy


def noisy(ms):
    return timing.Timing(median_ms=ms, p25_ms=0.5 * ms, p75_ms=1.5 * ms, n_runs=5)  # IQR = median > 10%


class FakeWorld:
    """torch.randn records the n being timed; time_fn returns plan(n) for a matmul, copy_timing for a copy."""

    def __init__(self, plan, copy_timing=None):
        self.plan, self.copy_timing = plan, copy_timing or quiet(1.0)
        self.n = None
        self.tried = []  # the matrix sizes timed, in order
        self.calls = []  # (what, device, keyword arguments) of every time_fn call

    def randn(self, *shape, device=None, dtype=None):
        assert len(shape) == 2 and shape[0] == shape[1]
        self.n = shape[0]
        return torch.zeros(1, 1, dtype=dtype)

    def time_fn(self, fn, device=None, **kw):
        out = fn()  # 1×1 matmul or a small copy: cheap, and proves the callable runs
        what = "matmul" if out.dim() == 2 else "copy"
        self.calls.append((what, device, kw))
        if what == "copy":
            return self.copy_timing
        self.tried.append(self.n)
        return self.plan(self.n)


@pytest.fixture
def world(monkeypatch):
    def install(plan, copy_timing=None):
        w = FakeWorld(plan, copy_timing)
        monkeypatch.setattr(torch, "randn", w.randn)
        monkeypatch.setattr(timing, "time_fn", w.time_fn)  # peak.py imports it from timing at call time
        return w

    return install


def gflops_of(n, ms):
    return 2 * n**3 / (ms * 1e-3) / 1e9  # 2n³ FLOPs (n³ multiply-adds) per call of ms milliseconds


# ------------------------------------------------------------------------------------------------
# the size search and its stop rule


def test_cpu_search_doubles_n_from_256_to_4096_when_every_call_is_fast(world):
    w = world(lambda n: quiet(1.0))  # 1 ms per call, far under the 50 ms stop limit
    gflops, n, was_noisy = peak.measure_matmul(CPU, "float32")
    doubling = tuple(256 * 2**k for k in range(5))  # 256, 512, …, 4096 (peak.py's docstring)
    assert tuple(w.tried) == doubling
    assert n == 4096 and was_noisy is False  # same time per call: the largest n does the most FLOP/s
    assert gflops == pytest.approx(gflops_of(4096, 1.0), rel=1e-12)


def test_gpu_search_tries_1024_to_8192_and_never_stops_early(world):
    w = world(lambda n: quiet(1000.0))  # 1 s per call: would stop a CPU search at once
    gflops, n, _ = peak.measure_matmul(CUDA, "float16")
    assert tuple(w.tried) == tuple(1024 * 2**k for k in range(4))  # 1024, 2048, 4096, 8192
    assert n == 8192 and gflops == pytest.approx(gflops_of(8192, 1000.0), rel=1e-12)


def test_cpu_search_stops_after_the_first_call_over_50_ms_not_at_50_ms(world):
    # 30 ms: 0.03 s, under the limit; 50 ms: 0.05 s, not *over* it, so the search goes on;
    # 60 ms: 0.06 s > 0.05 s, the last size tried.
    ms = {256: 30.0, 512: 50.0, 1024: 60.0}
    w = world(lambda n: quiet(ms[n]))
    gflops, n, _ = peak.measure_matmul(CPU, "float32")
    assert tuple(w.tried) == (256, 512, 1024)
    rates = {k: gflops_of(k, v) for k, v in ms.items()}  # 1.1, 5.4, 35.8 GFLOP/s: 1024 is best
    assert n == 1024 and gflops == pytest.approx(rates[1024], rel=1e-12)


def test_a_tie_keeps_the_first_size_and_its_noisy_flag(world):
    # Each doubling of n is 8× the FLOPs; 8× the time gives exactly the same rate (powers of two
    # scale floats exactly), so no later size beats the first: `rate > best` keeps n = 256.
    plan = {256: noisy(1.0), 512: quiet(8.0), 1024: quiet(64.0)}  # 64 ms > 50 ms: stop after 1024
    w = world(lambda n: plan[n])
    gflops, n, was_noisy = peak.measure_matmul(CPU, "float32")
    assert tuple(w.tried) == (256, 512, 1024)
    assert gflops_of(256, 1.0) == gflops_of(512, 8.0) == gflops_of(1024, 64.0)
    assert (n, was_noisy) == (256, True) and gflops == gflops_of(256, 1.0)


def test_noisy_is_that_of_the_best_size_only(world):
    plan = {256: noisy(1.0), 512: quiet(1.0), 1024: noisy(100.0)}  # best: 512 (quiet); 1024 stops it
    w = world(lambda n: plan[n])
    _, n, was_noisy = peak.measure_matmul(CPU, "float32")
    assert tuple(w.tried) == (256, 512, 1024) and (n, was_noisy) == (512, False)


def test_timer_arguments_and_the_record_of_measure_peak(world, monkeypatch):
    w = world(lambda n: quiet(1.0), copy_timing=quiet(2.0))
    monkeypatch.setattr(peak, "copy_bytes_for", lambda device: 8192)  # a small buffer for the real copy
    p = peak.measure_peak(CPU, "float32")
    # Every matmul size: 0.25 s of runs after 0.05 s of warm-up; the copy: 0.3 s after 0.05 s.
    matmul = [c for c in w.calls if c[0] == "matmul"]
    assert matmul == [("matmul", CPU, {"min_run_time": 0.25, "warmup_time": 0.05})] * 5
    assert w.calls[-1] == ("copy", CPU, {"min_run_time": 0.3, "warmup_time": 0.05}) and len(w.calls) == 6
    assert p.matmul_n == 4096 and p.gflops == pytest.approx(gflops_of(4096, 1.0), rel=1e-12)
    assert p.copy_bytes == 8192 and p.gbps == pytest.approx(2 * 8192 / 2e-3 / 1e9, rel=1e-12)  # read + write
    assert p.tf32 is None and p.noisy is False


# ------------------------------------------------------------------------------------------------
# measure_peak: TF32 for CUDA float32 only, noisy if either timing is


@pytest.fixture
def fake_measures(monkeypatch):
    def install(noisy_mm=False, noisy_bw=False):
        monkeypatch.setattr(peak, "measure_matmul", lambda device, dtype: (100.0, 1024, noisy_mm))
        monkeypatch.setattr(peak, "measure_bandwidth", lambda device, dtype: (10.0, 4096, noisy_bw))
        monkeypatch.setattr(device_mod, "device_name", lambda device: f"fake {device.type}")

    return install


@pytest.mark.parametrize("allowed", [True, False])
def test_tf32_is_recorded_for_cuda_float32_as_torch_allows_it(fake_measures, monkeypatch, allowed):
    fake_measures()
    monkeypatch.setattr(torch.backends.cuda, "matmul", SimpleNamespace(allow_tf32=allowed))
    assert peak.measure_peak(CUDA, "float32").tf32 is allowed
    assert peak.measure_peak(CUDA, "float16").tf32 is None  # no TF32 outside float32
    assert peak.measure_peak(CPU, "float32").tf32 is None  # nor outside CUDA
    assert peak.measure_peak(CPU, "bfloat16").tf32 is None


@pytest.mark.parametrize("mm,bw", [(False, False), (True, False), (False, True), (True, True)])
def test_peak_is_noisy_when_either_timing_is(fake_measures, mm, bw):
    fake_measures(noisy_mm=mm, noisy_bw=bw)
    p = peak.measure_peak(CPU, "float32")
    assert p.noisy is (mm or bw)
    assert (p.device_name, p.gflops, p.matmul_n, p.gbps, p.copy_bytes) == ("fake cpu", 100.0, 1024, 10.0, 4096)


# ------------------------------------------------------------------------------------------------
# the copy buffer's size


def test_cpu_copy_buffer_is_256_mib():
    assert peak.copy_bytes_for(CPU) == 8 * 32 * MiB  # 8× a 32 MiB L3 = 268435456 bytes


@pytest.mark.parametrize("free,expected", [
    (16 * GiB, GiB),  # a quarter (4 GiB) is over the 1 GiB cap: the cap
    (GiB + 3, 256 * MiB),  # a quarter, rounded down to whole bytes: (2^30 + 3) // 4 = 2^28
    (128 * MiB, 64 * MiB),  # a quarter (32 MiB) is under the 64 MiB floor: the floor
    (512 * MiB, 128 * MiB),  # a quarter, between floor and cap
])  # fmt: skip
def test_gpu_copy_buffer_is_a_quarter_of_free_memory_between_64_mib_and_1_gib(monkeypatch, free, expected):
    asked = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: asked.append(device) or (free, 80 * GiB))
    got = peak.copy_bytes_for(CUDA)
    assert got == expected and type(got) is int and asked == [CUDA]


# ------------------------------------------------------------------------------------------------
# the cache directory


@pytest.fixture
def no_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    return tmp_path


def _pw_dir(monkeypatch, path):
    import pwd

    monkeypatch.setattr(pwd, "getpwuid", lambda uid: SimpleNamespace(pw_dir=path))


@pytest.mark.parametrize("bad_home", ["", "relative/home", "/", "/."])
def test_an_empty_relative_or_root_home_gives_way_to_the_password_database(no_xdg, monkeypatch, bad_home):
    monkeypatch.setenv("HOME", bad_home)
    _pw_dir(monkeypatch, str(no_xdg / "pw"))
    assert peak.cache_dir() == no_xdg / "pw" / ".cache" / "attncli"


def test_an_absolute_home_is_used(no_xdg, monkeypatch):
    monkeypatch.setenv("HOME", str(no_xdg / "home"))
    _pw_dir(monkeypatch, str(no_xdg / "pw"))
    assert peak.cache_dir() == no_xdg / "home" / ".cache" / "attncli"
    assert peak.cache_path() == no_xdg / "home" / ".cache" / "attncli" / "peaks.json"


def test_without_any_usable_home_the_cache_goes_to_the_temporary_folder(no_xdg, monkeypatch):
    monkeypatch.setenv("HOME", "/")
    _pw_dir(monkeypatch, "/")
    expected = no_xdg / "tmp" / f"attncli-{os.getuid()}" / ".cache" / "attncli"
    assert peak.cache_dir() == expected

    import pwd

    def missing(uid):
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", missing)  # no password entry at all: the same fallback
    assert peak.cache_dir() == expected


# ------------------------------------------------------------------------------------------------
# the Peak record and the cache file


def _peak(**kw):
    fields = dict(device_name="Test CPU", dtype="float32", torch_version="9.9", threads=2, gflops=100.0, gbps=10.0,
                  matmul_n=1024, copy_bytes=256 * MiB, measured_at="2025-01-01T00:00:00")  # fmt: skip
    return Peak(**{**fields, **kw})


KEY = "Test CPU | float32 | torch 9.9 | 2 threads"


def test_peak_is_frozen_and_quiet_by_default():
    p = _peak()
    assert p.noisy is False and p.tf32 is None and p.key == KEY
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.gflops = 1.0
    assert hash(p) == hash(_peak())  # frozen and compared by value: hashable


def test_method_names_tf32_only_when_it_is_known():
    base = ("matmul: median of synchronised torch.mm on n×n float32 matrices (2n³ FLOPs), best n = 1024{}; "
            "bandwidth: median of dst.copy_(src) on 256 MiB, read + write counted (2 × 256 MiB per copy, "
            "STREAM Copy convention)")  # fmt: skip
    assert _peak().method() == base.format("")
    assert _peak(tf32=True).method() == base.format(", TF32 on")
    assert _peak(tf32=False).method() == base.format(", TF32 off")


SAVED = """{
  "format": 1,
  "peaks": {
    "Test CPU | float32 | torch 9.9 | 2 threads": {
      "device_name": "Test CPU",
      "dtype": "float32",
      "torch_version": "9.9",
      "threads": 2,
      "gflops": 100.0,
      "gbps": 10.0,
      "matmul_n": 1024,
      "copy_bytes": 268435456,
      "measured_at": "2025-01-01T00:00:00",
      "tf32": null,
      "noisy": false
    }
  }
}
"""  # format 1, two-space indent, fields in the dataclass's order, a final newline


def test_save_writes_the_documented_file_into_a_new_nested_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a" / "b"))  # neither folder exists yet
    assert peak.save(_peak()) is None
    assert (tmp_path / "a" / "b" / "attncli" / "peaks.json").read_text(encoding="utf-8") == SAVED


def _write_cache(tmp_path, monkeypatch, data):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "attncli").mkdir(exist_ok=True)
    (tmp_path / "attncli" / "peaks.json").write_text(data if isinstance(data, str) else json.dumps(data))


DROP = object()  # _entry(field=DROP): the field left out


def _entry(**kw):
    """An entry as `save` writes it (the dict SAVED holds), with some fields changed or dropped."""
    e = json.loads(SAVED)["peaks"][KEY]
    for k, v in kw.items():
        if v is DROP:
            del e[k]
        else:
            e[k] = v
    return e


def test_a_hand_written_format_1_file_is_read(tmp_path, monkeypatch):
    _write_cache(tmp_path, monkeypatch, SAVED)
    assert peak.load_cached(KEY) == _peak()
    _write_cache(tmp_path, monkeypatch, {"format": 1, "peaks": {KEY: _entry(noisy=DROP, tf32=DROP)}})
    old = peak.load_cached(KEY)  # written before noisy and tf32 existed: their defaults
    assert old == _peak() and old.noisy is False and old.tf32 is None


@pytest.mark.parametrize("data", [
    [{"format": 1, "peaks": {KEY: _entry()}}],  # not an object
    {"format": 2, "peaks": {KEY: _entry()}},  # another format (valid entry)
    {"format": 0, "peaks": {KEY: _entry()}},
    {"peaks": {KEY: _entry()}},  # no format
    {"format": 1, "peaks": [_entry()]},  # peaks not an object
    {"format": 1, "peaks": None},
], ids=["list", "format2", "format0", "noformat", "peaks-list", "peaks-null"])  # fmt: skip
def test_a_cache_file_broken_in_one_way_is_ignored(tmp_path, monkeypatch, data):
    _write_cache(tmp_path, monkeypatch, data)
    assert peak.load_cached(KEY) is None
    assert peak.save(_peak(threads=1)) is None  # and replaced by a good one
    assert peak.load_cached(_peak(threads=1).key) == _peak(threads=1)


@pytest.mark.parametrize("field,value", [
    ("gflops", True), ("gflops", "100"), ("gflops", None), ("gflops", float("inf")), ("gbps", float("nan")),
    ("gflops", 0.0), ("gbps", -1.0), ("gbps", 0),
    ("threads", True), ("threads", 2.0), ("threads", "2"), ("matmul_n", 0), ("copy_bytes", -1), ("threads", 0),
    ("device_name", 3), ("measured_at", None),
    ("noisy", "yes"), ("noisy", 0), ("noisy", None), ("tf32", "on"), ("tf32", 2), ("tf32", 1), ("tf32", 0),
])  # fmt: skip
def test_an_entry_with_one_bad_value_is_ignored_with_a_warning(tmp_path, monkeypatch, capsys, field, value):
    _write_cache(tmp_path, monkeypatch, {"format": 1, "peaks": {KEY: _entry(**{field: value})}})
    assert peak.load_cached(KEY) is None
    err = capsys.readouterr().err
    assert err.startswith("attncli: warning: ignoring the cached peak in") and "--refresh" in err


@pytest.mark.parametrize("kw", [
    dict(gflops=0.5, gbps=0.25), dict(gflops=1, gbps=3), dict(threads=1, matmul_n=1, copy_bytes=1),
    dict(tf32=True), dict(tf32=False), dict(tf32=None), dict(noisy=True), dict(noisy=False),
])  # fmt: skip
def test_entries_with_small_but_positive_figures_and_any_flags_are_used(tmp_path, monkeypatch, capsys, kw):
    _write_cache(tmp_path, monkeypatch, {"format": 1, "peaks": {KEY: _entry(**kw)}})
    assert peak.load_cached(KEY) == _peak(**kw)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------------
# get_peak: the cache unless asked to measure


def test_get_peak_reads_the_cache_by_default_and_measures_on_refresh(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    key = peak.current_key(CPU, "float32")
    cached = _peak(device_name=key.split(" | ")[0], torch_version=torch.__version__, threads=torch.get_num_threads())
    assert cached.key == key and peak.save(cached) is None
    fresh = dataclasses.replace(cached, gflops=7.0)
    measured = []
    monkeypatch.setattr(peak, "measure_peak", lambda device, dtype: measured.append((device, dtype)) or fresh)
    assert peak.get_peak(CPU, "float32") == (cached, "cache") and measured == []
    assert peak.get_peak(CPU, "float32", refresh=True) == (fresh, "measured") and measured == [(CPU, "float32")]
    assert peak.get_peak(CPU, "float32") == (fresh, "cache")  # the measurement replaced the entry


def test_get_peak_measures_when_nothing_is_cached_and_says_why_it_could_not_save(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where the folder should be
    monkeypatch.setattr(peak, "measure_peak", lambda device, dtype: _peak())
    p, source = peak.get_peak(CPU, "float32")
    assert p == _peak() and source.startswith(f"measured (not cached: could not write {blocker}/attncli/peaks.json")
