"""Report views: number formatting, CSV/JSON rendering, atomic writes."""

import errno
import json
import math

import pytest

from attncli import output, report
from attncli.errors import ResourceError


@pytest.mark.parametrize("column,value,text", [
    ("flops", 3_222_274_048, "3.22G"), ("flops", 4_296_015_872, "4.30G"), ("flops", 512, "512"),
    ("kv_cache_bytes", 524_288, "512 KiB"), ("kv_cache_bytes", 2_099_200, "2.00 MiB"),
    ("kv_cache_bytes", 3 * 2**30, "3 GiB"), ("kv_bytes_per_token", 512, "512 B"),
    ("latency_ms_median", 36.71, "36.7"), ("latency_ms_median", 0.04213, "0.0421"),
    ("err_rel_l2", 4.04e-7, "4.0e-07"), ("speedup_vs_base", 1.934, "1.93×"), ("attn_share", 0.4287, "43%"),
    ("seq_len", 32768, "32,768"), ("label", "gqa-kv2", "gqa-kv2"), ("err_rel_l2", None, "–"),
    ("err_rel_l2", float("nan"), "nan"),
])  # fmt: skip
def test_cells(column, value, text):
    assert report.cell(column, value) == text


def test_csv_and_json_never_write_nan_as_a_number():
    rows = [{"label": "a", "err_rel_l2": float("nan"), "flops": 1}, {"label": "b", "err_rel_l2": 1e-7, "flops": 2}]
    assert report.to_csv(rows).splitlines() == ["label,flops,err_rel_l2", "a,1,", "b,2,1e-07"]
    assert json.loads(report.to_json(rows))[0]["err_rel_l2"] is None


def test_columns_follow_the_schema_then_extras():
    rows = [{"zeta": 1, "flops": 2, "label": "x"}, {"alpha": 3}]
    assert report.ordered_columns(rows) == ["label", "flops", "zeta", "alpha"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "r.csv"
    target.write_text("old rows\n")

    def broken_fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output.os, "fsync", broken_fsync)
    with pytest.raises(ResourceError, match="the disk is full"):  # one line, exit 3 (output.os_error)
        report.write_atomic(str(target), "new rows\n", "--csv")
    assert target.read_text() == "old rows\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]  # no temporary file left behind


def test_atomic_write_replaces(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")
    report.write_atomic(str(target), "new", "--json")
    assert target.read_text() == "new"
