"""Reliability: memory pre-flight, oom and NaN rows, --debug, determinism, fuzzed loaders."""

import sys
import time

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attncli import preflight, presets
from attncli.errors import InputError
from attncli.spec import Shape
from conftest import examples


def test_preflight_refuses_a_million_tokens_in_under_a_second_without_torch(cli):
    had_torch = "torch" in sys.modules
    start = time.perf_counter()
    r = cli("bench", "mha", "-p", "large", "-s", "1000000", "--device", "cpu")
    elapsed = time.perf_counter() - start
    assert r.code == 3 and elapsed < 1.0
    assert r.err.startswith("attncli: mha prefill seq_len=1,000,000 batch=1: needs about ")
    assert " GiB of host memory" in r.err and " GiB is available; " in r.err and "--force" in r.err
    assert r.err.count("\n") == 1
    if not had_torch:
        assert "torch" not in sys.modules


RSS_PROBE = """
import sys, torch
from attncli import presets, preflight
def peak():  # VmHWM: this process's resident high-water mark (ru_maxrss would carry the parent's over exec)
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
from attncli.measure.bench import Settings, measure_row
from attncli.spec import Shape
p = presets.load_preset(sys.argv[1]); spec = presets.parse_variant(sys.argv[2], p)
shape = Shape(sys.argv[3], int(sys.argv[4]), batch=int(sys.argv[5]))
torch.zeros(1) @ torch.zeros(1)
before = peak()
measure_row(spec, p, shape, Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0))
after = peak()
on_device, reference = preflight.row_bytes(spec, shape, "float32")
print(after - before, on_device + reference)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("case", ["micro mha prefill 512 4", "medium gqa decode 4096 2", "small mqa prefill 2048 1"])
def test_preflight_estimate_bounds_the_real_peak_memory(case):
    """Peak resident memory a real row adds (VmHWM, fresh process) is covered by the estimate,
    which stays within 2.5× of it: it neither lets an impossible row through nor refuses a feasible one."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", RSS_PROBE, *case.split()], capture_output=True, text=True, timeout=120)
    grown, estimate = map(int, out.stdout.split())
    assert 0.4 * estimate <= grown <= estimate


def test_preflight_estimate_by_hand_on_a_tiny_case():
    from attncli.cost import run_memory_bytes

    spec = presets.parse_variant("mha", presets.PresetSpec(name="t", d_model=32, n_heads=4))
    # params 4·32·32 = 4096; prefill S=10, B=2, 4-byte elements; KV elements per token 2·4·8 = 64
    weights, activations = 4096 * 4, 2 * (10 * 32 + 10 * (32 + 4 * 32)) * 4
    scores, cache, per_head_kv = 2 * (2 * 4 * 10 * 10 * 4), 3 * 64 * 10 * 2 * 4, 2 * 2 * 10 * 32 * 4
    assert run_memory_bytes(spec, Shape("prefill", 10, batch=2), 64, 4096, 4) == \
        weights + activations + scores + cache + per_head_kv  # fmt: skip


def test_preflight_names_both_figures(monkeypatch, cli):
    monkeypatch.setattr(preflight, "host_available_bytes", lambda: 3 * 2**20)  # 3 MiB free
    r = cli("bench", "mha", "-p", "micro", "-s", "256", "--device", "cpu")
    assert r.code == 3 and "GiB of host memory" in r.err and "but 0.0 GiB is available" in r.err


def test_force_on_a_shape_that_fails_gives_an_oom_row(monkeypatch, cli):
    from attncli.measure import bench

    def refuse(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(preflight, "host_available_bytes", lambda: 1)
    monkeypatch.setattr(bench, "measure_row", refuse)
    r = cli("bench", "mha", "gqa", "-p", "micro", "-s", "64", "--device", "cpu", "--force", "--json", "-")
    assert r.code == 0, r.err
    assert [row["status"] for row in r.rows()] == ["oom", "oom"]
    assert all(row["latency_ms_median"] is None and row["flops"] > 0 for row in r.rows())


def test_other_errors_in_measurement_are_not_called_oom(monkeypatch, cli):
    from attncli.measure import bench

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch in a kernel")

    monkeypatch.setattr(bench, "measure_row", broken)
    r = cli("bench", "mha", "-p", "micro", "-s", "16", "--device", "cpu")
    assert r.code == 1
    assert r.err == "attncli: internal error: RuntimeError: shape mismatch in a kernel; rerun with --debug for the traceback\n"
    r = cli("bench", "mha", "-p", "micro", "-s", "16", "--device", "cpu", "--debug")
    assert "Traceback (most recent call last)" in r.err and r.err.endswith("--debug for the traceback\n")


def test_nan_outputs_mark_the_row_and_never_become_numbers(monkeypatch, cli, tmp_path):
    import torch

    from attncli.measure import bench

    real = bench.inputs

    def poisoned(shape, d_model, settings):
        x, x_ref = real(shape, d_model, settings)
        x[0, 0, 0] = float("inf")
        return x, x_ref

    monkeypatch.setattr(bench, "inputs", poisoned)
    out = tmp_path / "n.csv"
    r = cli("bench", "mha", "-p", "micro", "-s", "16", "--device", "cpu", "--min-time", "0", "--csv", out)
    assert r.code == 0
    row = pd.read_csv(out, keep_default_na=False, na_values=[""]).iloc[0]  # status "nan" is a word here
    assert row["status"] == "nan"
    assert pd.isna(row["err_rel_l2"]) and pd.isna(row["err_max_abs"])
    assert torch.isfinite(torch.tensor(row["latency_ms_median"]))


def test_same_command_twice_gives_identical_analytic_and_error_columns(cli):
    args = ("bench", "mha", "gqa", "-p", "micro", "-s", "48", "--mode", "both", "--device", "cpu", "--min-time", "0",
            "--seed", "3", "--json", "-")  # fmt: skip
    first, second = cli(*args).rows(), cli(*args).rows()
    for a, b in zip(first, second):
        for key in ("flops", "kv_cache_bytes", "kv_cache_bytes_measured", "err_max_abs", "err_mean_abs", "err_rel_l2",
                    "naive_err_rel_l2"):  # fmt: skip
            assert a[key] == b[key]
    other = cli(*args[:-4], "--seed", "4", "--json", "-").rows()
    assert other[0]["err_max_abs"] != first[0]["err_max_abs"]


# ------------------------------------------------------------------------------------------------
# fuzzed loaders: every document and override string loads into a valid spec or raises InputError

SMALL = presets.load_preset("small")
KEYS = ["family", "d_model", "n_heads", "head_dim", "n_kv_heads", "causal", "position", "rope_theta", "label",
        "n_layers", "d_ff", "variants", "window", "n_kv_head", "", "1", "name"]  # fmt: skip
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 4096), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12), st.sampled_from(["gqa", "mha", "mqa", "rope", "none", "!!python/object", "[", "{a"]))  # fmt: skip
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
                      max_leaves=6)  # fmt: skip
DOCS = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6).map(lambda d: yaml.safe_dump(d, sort_keys=False)),
    st.text(max_size=80),
    st.sampled_from(["!!python/object/apply:os.system ['true']", "a: 1\na: 2\n", "- x\n", "family: gqa\n  bad: indent"]),
)  # fmt: skip


@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=DOCS)
def test_variant_yaml_documents_load_or_raise_input_error(tmp_path_factory, text):
    f = tmp_path_factory.mktemp("fuzz") / "v.yaml"
    f.write_text(text, encoding="utf-8")
    for load in (lambda: presets.parse_variant(str(f), SMALL), lambda: presets.load_preset(str(f))):
        try:
            spec = load()
        except InputError as e:
            assert e.message and "\n" not in e.message
        else:
            assert spec is not None


OVERRIDE_PARTS = st.lists(st.tuples(st.sampled_from(KEYS + ["n_kv_heads"] * 3), st.one_of(
    st.sampled_from(["2", "8", "0", "-1", "3", "true", "false", "null", "rope", "none", "1e4", "[1", "{", "", "x"]),
    st.text(alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs",)), max_size=6))), max_size=4)  # fmt: skip


@settings(max_examples=examples(600), deadline=None)
@given(family=st.sampled_from(["mha", "mqa", "gqa", "gqq", "", "GQA"]), parts=OVERRIDE_PARTS, sep=st.sampled_from([":", "::", ""]))
def test_override_strings_load_or_raise_input_error(family, parts, sep):
    arg = family + (sep + ",".join(f"{k}={v}" for k, v in parts) if parts or sep else "")
    try:
        spec = presets.parse_variant(arg, SMALL)
    except InputError as e:
        assert e.message and "\n" not in e.message.strip("\n")
    else:
        assert spec.n_heads % getattr(spec, "n_kv_heads", 1) == 0 and spec.label
