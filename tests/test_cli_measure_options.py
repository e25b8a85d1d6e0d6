"""bench/compare options from issue 6: --backend, --compile, --verify-flops, and the noisy flag."""

import pytest
import torch

from attncli import presets, report
from attncli.measure import bench
from attncli.measure.bench import Settings, measure_row
from attncli.spec import Shape

FAST = ("-p", "micro", "-s", "32", "--device", "cpu", "--dtype", "float32", "--min-time", "0")


@pytest.mark.parametrize("backend", ["efficient", "cudnn"])
def test_backend_the_cpu_cannot_run_exits_2_with_one_line(cli, backend):
    r = cli("bench", *FAST, "--backend", backend)
    assert r.code == 2
    assert r.out == ""
    assert r.err.count("\n") == 1 and "Traceback" not in r.err
    assert r.err.startswith(f"attncli: --backend: {backend} cannot run mha prefill on cpu float32")


def test_unknown_backend_names_the_choices(cli):
    r = cli("compare", *FAST, "--backend", "flsh")
    assert r.code == 2
    assert r.err == "attncli: --backend: unknown backend 'flsh'; did you mean 'flash'? (choices: auto, math, flash, efficient, cudnn, flex, flash_attn, flashinfer, xformers)\n"


@pytest.mark.parametrize("backend,used", [("math", "math"), ("flash", "flash")])
def test_rows_record_backend_requested_and_used(cli, backend, used):
    r = cli("bench", *FAST, "-m", "prefill,decode", "--backend", backend, "--json", "-")
    assert r.code == 0, r.err
    for row in r.rows():
        assert (row["backend"], row["backend_used"]) == (backend, used)
        assert row["err_rel_l2"] <= 1e-5
    assert f"SDPA backend {backend} → {used}" in " ".join(r.err.split())


def test_auto_decodes_on_the_cpu_through_matrix_vector_products(cli):
    """--backend auto: prefill takes SDPA's flash kernel, CPU decode the gemv path (no SDPA call);
    a named SDPA backend keeps decode on that kernel (the test above)."""
    r = cli("bench", *FAST, "-m", "prefill,decode", "--json", "-")
    assert r.code == 0, r.err
    assert [(row["mode"], row["backend_used"]) for row in r.rows()] == [("prefill", "flash"), ("decode", "gemv")]
    assert all(row["err_rel_l2"] <= 1e-5 for row in r.rows())


def test_a_variant_without_sdpa_reports_none():
    from attncli.measure.backend import probe

    assert probe(lambda: torch.ones(2) @ torch.ones(2), "auto", "nothing") == "none"


def test_compile_rows_carry_their_own_label():
    spec = presets.parse_variant("gqa", presets.load_preset("micro"))
    settings = Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0, compile=True, compile_backend="eager")
    for mode in ("prefill", "decode"):
        row = measure_row(spec, presets.load_preset("micro"), Shape(mode, 16), settings)
        assert row["label"] == "gqa-kv2+compile" and row["compiled"] is True
        assert row["backend_used"] is None  # inductor may replace the kernel: not claimed
        assert row["err_rel_l2"] <= 1e-5 and row["kv_cache_bytes_measured"] == row["kv_cache_bytes"]


def test_compile_failure_is_one_line_exit_3(cli, monkeypatch):
    def broken(fn, **kw):
        def call(*a):
            raise RuntimeError("no C++ compiler found\nlong traceback text")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    r = cli("bench", *FAST, "--compile")
    assert r.code == 3
    assert r.err == "attncli: --compile: torch.compile failed for mha+compile: no C++ compiler found; run without --compile\n"


def test_verify_flops_counts_the_math_path(cli):
    r = cli("bench", "mha", "mha:causal=false", "gqa", *FAST, "-m", "prefill,decode", "--verify-flops", "--json", "-")
    assert r.code == 0, r.err
    rows = {(row["label"], row["mode"]): row for row in r.rows()}
    for row in rows.values():
        assert row["flops_counted"] == row["flops_math_path"] and row["flops_match"] is True
    causal, full = rows[("mha", "prefill")], rows[("mha-bidir", "prefill")]
    assert causal["flops"] < causal["flops_counted"] == full["flops"]  # the math path scores all n² pairs
    assert rows[("mha", "decode")]["flops_counted"] == rows[("mha", "decode")]["flops"]
    assert "FlopCounterMode" in " ".join(r.err.split())


def test_verify_flops_mismatch_exits_1(cli, monkeypatch):
    monkeypatch.setattr(bench, "math_path_flops", lambda *args, **kwargs: 1)
    r = cli("bench", *FAST, "--verify-flops")
    assert r.code == 1
    assert r.err.splitlines()[-1] == "attncli: --verify-flops: FlopCounterMode disagrees with the analytic count for mha prefill s=32"


def _row(**kw):
    return {"label": "mha", "mode": "prefill", "seq_len": 8, "batch": 1, "latency_ms_median": 1.0,
            "latency_ms_p25": 0.9, "latency_ms_p75": 1.2, "noisy": False, "status": "ok", **kw}  # fmt: skip


def test_noisy_rows_are_flagged_in_the_table(capsys):
    def shown(rows):
        report.console().print(report.table(rows, "bench"))
        return capsys.readouterr().out

    quiet = shown([_row()])
    assert "noisy" not in quiet and "0.900–1.20" in quiet
    loud = shown([_row(), _row(label="gqa", noisy=True)])
    assert loud.count("noisy") == 2  # the header and the flagged row


def test_measured_rows_carry_noisy():
    spec = presets.parse_variant("mha", presets.load_preset("micro"))
    row = measure_row(spec, presets.load_preset("micro"), Shape("prefill", 16),
                      Settings(device=torch.device("cpu"), dtype="float32", min_run_time=0))  # fmt: skip
    assert isinstance(row["noisy"], bool)
    assert row["noisy"] == (row["latency_ms_p75"] - row["latency_ms_p25"] > 0.1 * row["latency_ms_median"])
