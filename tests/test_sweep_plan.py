"""The sweep's CSV plumbing the mutation run (tools/mutate.py sweep) found unpinned: which columns
a header holds, what `plan` does with stdout, no file and a FIFO, and which files `close` removes."""

import os

import pytest

from attncli import presets, sweep
from attncli.errors import InputError
from attncli.rows import TP_COLUMNS
from attncli.spec import Shape
from conftest import TINY

ANALYTIC = ["label", "mode", "seq_len", "batch", "flops", "kv_cache_bytes"]


def _combinations():
    spec = presets.parse_variant("gqa", TINY)
    return [sweep.Combination(spec, Shape("prefill", n)) for n in (16, 32)]


def test_a_header_has_the_tensor_parallel_columns_only_with_tp():
    plain = sweep.header(ANALYTIC, measured=False)
    assert "tp" not in plain and "kv_heads_per_gpu" not in plain and not set(TP_COLUMNS) & set(plain)
    with_tp = sweep.header(ANALYTIC, measured=False, tp=True)
    assert {"tp", "kv_heads_per_gpu", *TP_COLUMNS} <= set(with_tp)
    assert sweep.header(ANALYTIC, measured=False, tp=False) == plain


@pytest.mark.parametrize("path", [None, "-"])
def test_stdout_or_no_file_plans_every_combination_even_with_resume(path):
    combos = _combinations()
    target = sweep.CsvTarget(path)
    assert sweep.plan(combos, target, ANALYTIC, {}, resume=True, overwrite=False) == combos


def test_a_fifo_is_written_through_and_cannot_be_resumed(tmp_path):
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    target = sweep.CsvTarget(str(fifo))  # not opened: a FIFO is written through, never read
    assert not target.regular and target.existed
    combos = _combinations()
    assert sweep.plan(combos, target, ANALYTIC, {}, resume=False, overwrite=False) == combos
    with pytest.raises(InputError, match="is not a regular file: there is nothing to continue"):
        sweep.plan(combos, target, ANALYTIC, {}, resume=True, overwrite=False)


def test_close_removes_only_an_empty_file_this_sweep_created(tmp_path):
    new = tmp_path / "new.csv"
    target = sweep.CsvTarget(str(new))
    assert target.created and new.exists()
    target.close()
    assert not new.exists()  # created, never written: removed again
    existing = tmp_path / "existing.csv"
    existing.write_bytes(b"")
    target = sweep.CsvTarget(str(existing))
    assert target.existed and not target.created
    target.close()
    assert existing.exists()  # the user's empty file stays


def test_resume_names_the_missing_and_the_extra_columns(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("label,mode,seq_len,batch,speed\ngqa,prefill,16,1,3\n", encoding="utf-8")
    target = sweep.CsvTarget(str(path))
    try:
        with pytest.raises(InputError) as e:
            sweep.plan(_combinations(), target, ANALYTIC, {}, resume=True, overwrite=False)
    finally:
        target.close()
    assert "its columns differ from this sweep's (missing: flops, kv_cache_bytes; extra: speed)" in str(e.value)


def test_a_new_csv_gets_the_usual_file_mode(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "new.csv"
    target = sweep.CsvTarget(str(path))
    try:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # rw for all the umask allows, never execute
    finally:
        target.close()


def test_progress_names_each_combination_and_its_tp():
    spec = presets.parse_variant("gqa", TINY)
    todo = [sweep.Combination(spec, Shape("prefill", 16)), sweep.Combination(spec, Shape("decode", 32, 2), tp=2)]
    seen = []

    class Sink:
        def write(self, row):
            pass

    sweep.run(todo, lambda c: {"label": c.spec.label}, Sink(), progress=seen.append)
    assert seen == [f"{spec.label} prefill s=16 b=1", f"{spec.label} decode s=32 b=2 tp=2"]


def test_closing_the_appender_closes_its_own_descriptor(tmp_path):
    target = sweep.CsvTarget(str(tmp_path / "rows.csv"))
    appender = sweep.Appender(target, ANALYTIC)
    appender.write({"label": "gqa", "mode": "prefill", "seq_len": 16, "batch": 1})
    own = appender.file
    appender.close()
    target.close()
    assert own.closed  # the duplicate descriptor is released with the appender, not at process exit
    assert (tmp_path / "rows.csv").read_text().splitlines()[1].startswith("gqa,prefill,16,1")
