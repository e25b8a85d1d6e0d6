"""Sweeps: the grid, the CSV that survives Ctrl-C, --resume, plots, and `report` re-rendering it."""

import os
import signal
import struct
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import default_signals

SEQ = [128, 256, 512, 1024, 2048, 4096]


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_analytic_sweep_rows_columns_and_plot(cli, tmp_path):
    csv, png = tmp_path / "s.csv", tmp_path / "s.png"
    r = cli("sweep", "mha", "gqa", "mla", "-p", "small", "--seq-len", "128:4096", "--csv", csv, "--plot", png)
    assert r.code == 0, r.err
    df = pd.read_csv(csv)
    assert len(df) == 2 * 6 * 4  # modes × seq lens × variant rows (mla: naive and absorbed)
    assert set(df["label"]) == {"mha", "gqa-kv2", "mla-r256-naive", "mla-r256-absorb"}
    assert sorted(set(df["seq_len"])) == SEQ and set(df["mode"]) == {"prefill", "decode"}
    assert {"flops", "kv_cache_bytes", "kv_bytes_per_token", "label", "layers"} <= set(df.columns)
    assert "latency_ms_median" not in df.columns  # analytic only unless --measure
    assert not df.duplicated(["label", "mode", "seq_len", "batch"]).any()
    assert png_size(png) == (1000, 400)  # two panels (KV bytes, FLOPs) of 500 × 400 px
    mha = df[(df.label == "mha") & (df["mode"] == "prefill") & (df.seq_len == 4096)].iloc[0]
    assert mha["kv_cache_bytes"] == 4096 * 6 * 2 * 8 * 64 * 2  # 6 layers, bfloat16


def test_report_prints_the_table_the_sweep_printed(cli, tmp_path):
    csv = tmp_path / "s.csv"
    swept = cli("sweep", "mha", "gqa", "-s", "128,1024", "-b", "1,4", "--csv", csv)
    reported = cli("report", csv)
    assert swept.code == reported.code == 0
    assert swept.out == reported.out and "gqa-kv2" in swept.out


def test_existing_file_is_refused_resumed_or_overwritten(cli, tmp_path):
    csv = tmp_path / "s.csv"
    assert cli("sweep", "mha", "-s", "128:512", "--csv", csv).code == 0
    r = cli("sweep", "mha", "-s", "128:512", "--csv", csv)
    assert r.code == 2 and "exists; --resume continues it; --overwrite starts it again" in r.err
    before = csv.read_text()
    r = cli("sweep", "mha", "-s", "128:512", "--csv", csv, "--resume", "--dtype", "float16")
    assert r.code == 2 and "was written with dtype=bfloat16, this sweep has dtype=float16" in r.err
    r = cli("sweep", "mha", "-s", "128:512", "--csv", csv, "--resume", "--measure", "--device", "cpu")
    assert r.code == 2 and "its columns differ from this sweep's" in r.err
    assert csv.read_text() == before  # refused files are never touched
    assert cli("sweep", "mha", "mqa", "-s", "128:1024", "--csv", csv, "--resume").code == 0
    df = pd.read_csv(csv)
    assert len(df) == 2 * 4 * 2 and not df.duplicated(["label", "mode", "seq_len", "batch"]).any()
    assert cli("sweep", "mha", "-s", "128", "--mode", "prefill", "--csv", csv, "--overwrite").code == 0
    assert len(pd.read_csv(csv)) == 1


def test_sigint_keeps_finished_rows_and_resume_completes(tmp_path):
    csv = tmp_path / "m.csv"
    args = [sys.executable, "-m", "attncli", "sweep", "mha", "mqa", "-p", "micro", "-s", "16:128", "--mode", "prefill",
            "--measure", "--device", "cpu", "--min-time", "0.3", "--csv", str(csv)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    deadline = time.time() + 120
    while time.time() < deadline and (not csv.exists() or csv.read_text().count("\n") < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("attncli: interrupted after ") and "--resume continues" in summary
    finished = int(summary.split("after ")[1].split(" of ")[0])
    df = pd.read_csv(csv)
    assert 2 <= len(df) == finished < 8
    assert set(df["status"]) == {"ok"}
    done = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    df = pd.read_csv(csv)
    assert len(df) == 2 * 4 and not df.duplicated(["label", "mode", "seq_len", "batch"]).any()


def test_oom_marks_the_row_and_the_sweep_goes_on(cli, tmp_path, monkeypatch):
    import torch

    from attncli.measure import bench

    real = bench.measure_row

    def tight(spec, preset, shape, settings):
        if shape.seq_len == 64:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(spec, preset, shape, settings)

    monkeypatch.setattr(bench, "measure_row", tight)
    csv = tmp_path / "o.csv"
    r = cli("sweep", "mha", "-p", "micro", "-s", "32,64,128", "--mode", "prefill", "--measure", "--device", "cpu",
            "--min-time", "0", "--csv", csv)  # fmt: skip
    assert r.code == 0, r.err
    df = pd.read_csv(csv)
    assert list(df["status"]) == ["ok", "oom", "ok"]
    oom = df[df.status == "oom"].iloc[0]
    assert pd.isna(oom["latency_ms_median"]) and oom["flops"] > 0


def test_plot_without_matplotlib_fails_before_any_work(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    csv = tmp_path / "s.csv"
    r = cli("sweep", "mha", "--csv", csv, "--plot", tmp_path / "s.png")
    assert r.code == 3
    assert "matplotlib is not installed; install the plot extra: pip install 'attncli[plot]'" in r.err
    assert not csv.exists()


@pytest.mark.parametrize("suffix,magic", [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_plot_formats_by_suffix(cli, tmp_path, suffix, magic):
    out = tmp_path / f"s{suffix}"
    assert cli("sweep", "mha", "-s", "128:1024", "--plot", out).code == 0
    assert out.read_bytes().startswith(magic)


def test_report_views_grouping_and_errors(cli, tmp_path):
    kv = tmp_path / "kv.csv"
    assert cli("kv-memory", "mha", "gqa", "-s", "1024,4096", "--csv", kv).code == 0
    r = cli("report", kv)
    assert r.code == 0 and "KV / token" in r.out and "FLOPs" not in r.out
    r = cli("report", kv, "--group-by", "seq_len")
    assert r.out.count("seq len 1,024") == 1 and r.out.count("seq len 4,096") == 1  # one table per value, in its title
    r = cli("report", kv, "--group-by", "seqlen")
    assert r.code == 2 and "no column 'seqlen'" in r.err and "did you mean 'seq_len'?" in r.err
    assert cli("report", tmp_path / "none.csv").code == 2
    (tmp_path / "empty.csv").write_text("")
    r = cli("report", tmp_path / "empty.csv")
    assert r.code == 2 and "is empty" in r.err
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    r = cli("report", tmp_path / "other.csv")
    assert r.code == 2 and "not an attncli report" in r.err
    assert cli("sweep", "mha", "--plot", tmp_path / "x.gif").code == 2
    assert cli("sweep", "mha", "--resume").code == 2


def test_csv_to_stdout_streams_rows_and_keeps_the_table_off(cli):
    r = cli("sweep", "mha", "-s", "128,256", "--mode", "prefill", "--csv", "-")
    lines = r.out.strip().splitlines()
    assert lines[0].startswith("label,family,preset") and len(lines) == 3
    assert "┃" in r.err and "┃" not in r.out
