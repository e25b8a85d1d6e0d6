"""A sweep's CSV under concurrency and damage: one writer at a time (flock), cut-short rows
truncated in place, a write limit that cannot destroy finished rows."""

import fcntl
import os
import resource
import subprocess
import sys
import time

import pandas as pd
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fcntl.flock and rlimits")

MEASURED = [sys.executable, "-m", "attncli", "sweep", "mha", "-p", "micro", "-s", "16:32", "--mode", "prefill",
            "--measure", "--device", "cpu", "--min-time", "0.1"]  # fmt: skip
KEYS = ["label", "mode", "seq_len", "batch"]


def test_two_sweeps_on_one_csv_one_completes_the_other_exits_3(tmp_path, cli):
    csv = tmp_path / "s.csv"
    first = subprocess.Popen([*MEASURED, "--csv", str(csv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not csv.exists() or csv.stat().st_size == 0) and first.poll() is None:
        time.sleep(0.02)
    # The second writer, in either form, while the first holds the file: exit 3, one line, nothing written.
    for extra in (["--resume"], ["--overwrite"], []):
        r = cli("sweep", "mha", "mqa", "-p", "micro", "-s", "16:64", "--mode", "prefill", "--csv", csv, *extra)
        assert r.code == 3, (extra, r.err)
        assert r.err == f"attncli: --csv: {csv} is being written by another attncli sweep (it holds the file's lock); " \
                        "wait for it to finish, or write to another file\n"  # fmt: skip
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    df = pd.read_csv(csv)  # the file parses: no fragment, no interleaved row
    assert len(df) == 2 and not df.duplicated(KEYS).any() and df["latency_ms_median"].notna().all()
    with open(csv, "rb") as f:  # the lock went with the first sweep
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def analytic(csv, *extra):
    return ["sweep", "mha", "-p", "micro", "-s", "16:256", "--csv", str(csv), *extra]


def test_resume_truncates_a_cut_short_row_in_place(tmp_path, cli):
    csv = tmp_path / "s.csv"
    assert cli(*analytic(csv)).code == 0
    whole = csv.read_bytes()
    lines = whole.splitlines(keepends=True)
    kept = b"".join(lines[:4])  # header + 3 rows
    csv.write_bytes(kept + lines[4][:17])  # a row cut short by a hard kill
    inode = csv.stat().st_ino
    r = cli(*analytic(csv, "--resume"))
    assert r.code == 0, r.err
    assert csv.stat().st_ino == inode  # the same file, never rewritten through a new one
    assert csv.read_bytes().startswith(kept)  # the finished rows are byte for byte what they were
    df = pd.read_csv(csv)
    assert len(df) == len(lines) - 1 and not df.duplicated(KEYS).any()


def test_a_write_limit_during_resume_destroys_no_finished_row(tmp_path):
    """RLIMIT_FSIZE just above the file's size: the resumed sweep fails with one line (exit 3) and the
    rows already on disk are intact (a rewrite of the file would have cut them)."""
    csv = tmp_path / "s.csv"
    args = [sys.executable, "-m", "attncli", *analytic(csv)]
    assert subprocess.run(args, capture_output=True, timeout=60).returncode == 0
    lines = csv.read_bytes().splitlines(keepends=True)
    kept = b"".join(lines[:3])
    csv.write_bytes(kept + lines[3][:10])  # cut short
    limit = len(kept) + 40  # room for part of one more row

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=60, preexec_fn=cap)
    assert p.returncode == 3, p.stderr
    assert p.stderr.startswith("attncli: --csv: cannot write ") and p.stderr.count("\n") == 1, p.stderr
    assert csv.read_bytes().startswith(kept)


def test_resume_refuses_a_fifo(tmp_path, cli):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    r = cli(*analytic(fifo, "--resume"))
    assert r.code == 2 and "is not a regular file: there is nothing to continue" in r.err
