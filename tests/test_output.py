"""The one output writer (attncli/output.py): links, FIFOs, devices, modes, clashing paths, errors.

Every case makes its own links, FIFOs and device nodes inside tmp_path and checks the files on disk
afterwards: nothing a command was not asked to write changes, and what it was asked to write holds
every row. No test points an output at a system path.
"""

import errno
import hashlib
import json
import os
import stat
import threading

import pytest

from attncli import output, report
from attncli.errors import InputError, ResourceError

FLOPS = ("flops", "mha", "mqa", "-p", "micro", "-s", "64")  # two analytic rows, no torch


def one_line(r, code):
    assert r.code == code, (r.code, r.err)
    assert r.err.startswith("attncli: ") and r.err.count("\n") == 1, r.err
    return r.err


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def labels_of_csv(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    return [line.split(",")[0] for line in lines[1:]]


# ------------------------------------------------------------------------------------------------
# what a path is decides how it is written


def test_a_symlinked_csv_keeps_its_link_and_its_target_gets_the_rows(tmp_path, cli):
    target = tmp_path / "real.csv"
    target.write_text("old rows\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    r = cli(*FLOPS, "--csv", link)
    assert r.code == 0, r.err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert labels_of_csv(target) == ["mha", "mqa"]


def test_a_dangling_link_creates_its_target(tmp_path, cli):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "new.json")
    assert cli(*FLOPS, "--json", link).code == 0
    assert link.is_symlink() and [row["label"] for row in json.loads((tmp_path / "new.json").read_text())] == ["mha", "mqa"]


def test_a_fifo_is_written_through_to_its_reader(tmp_path, cli):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = {}

    def reader():
        with open(fifo, encoding="utf-8") as f:
            got["text"] = f.read()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    r = cli(*FLOPS, "--csv", fifo)
    t.join(10)
    assert r.code == 0, r.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not a regular file
    assert got["text"].splitlines()[0].startswith("label,") and len(got["text"].splitlines()) == 3


def mknod_char(path, major, minor):
    if os.geteuid() != 0:
        pytest.skip("mknod of a character device needs root")
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
    except PermissionError:
        pytest.skip("this container may not create device nodes")
    return path


def test_a_character_device_stays_a_device(tmp_path, cli):
    null = mknod_char(tmp_path / "null", 1, 3)  # a private /dev/null inside tmp_path
    r = cli(*FLOPS, "--csv", null, "--json", tmp_path / "r.json")
    assert r.code == 0, r.err
    st = os.lstat(null)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert len(json.loads((tmp_path / "r.json").read_text())) == 2


def test_a_full_disk_is_one_line_exit_3_and_the_other_export_is_written(tmp_path, cli):
    full = mknod_char(tmp_path / "full", 1, 7)  # writes fail with ENOSPC, as a full disk
    good = tmp_path / "good.csv"
    r = cli(*FLOPS, "--json", full, "--csv", good)
    assert "disk is full" in one_line(r, 3) and "--json" in r.err
    assert labels_of_csv(good) == ["mha", "mqa"]
    assert "mha" in r.out  # the table is still printed: the measurements are not lost


def test_atomic_write_of_a_new_file_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        output.write(str(tmp_path / "a.csv"), "x\n", "--csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.csv").st_mode) == 0o640  # 0666 & ~027, not mkstemp's 0600
    os.umask(0o022)
    try:
        output.write(str(tmp_path / "b.csv"), "x\n", "--csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "b.csv").st_mode) == 0o644


def test_atomic_write_keeps_an_existing_files_mode(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("old\n")
    os.chmod(path, 0o604)
    inode = os.stat(path).st_ino
    output.write(str(path), "new\n", "--csv")
    assert path.read_text() == "new\n" and stat.S_IMODE(os.stat(path).st_mode) == 0o604
    assert os.stat(path).st_ino != inode  # replaced whole (a rename), never rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_stdout_gets_the_bytes(capsysbinary):
    output.write("-", "é\n", "--csv")
    assert capsysbinary.readouterr().out == "é\n".encode()


# ------------------------------------------------------------------------------------------------
# paths checked before any work: each other, the inputs, the folder


def make_checkpoint(folder):
    from test_weights_errors import checkpoint

    return checkpoint(folder)


CLASHES = [
    # (arguments with {t} for tmp_path, expected text) — every case exit 2, nothing written
    (["flops", "mha", "-p", "micro", "--csv", "{t}/r", "--json", "{t}/r"], "--csv/--json: both name the file"),
    (["flops", "mha", "-p", "micro", "--csv", "{t}/r", "--json", "{t}/link-to-r"], "--csv/--json: both name the file"),
    (["flops", "mha", "-p", "{t}/p.yaml", "--csv", "{t}/p.yaml"], "is the --preset file"),
    (["flops", "{t}/v.yaml:n_kv_heads=2", "-p", "micro", "--json", "{t}/v.yaml"], "is a VARIANT file"),
    (["report", "{t}/saved.csv", "--csv", "{t}/saved.csv"], "is the report being read"),
    (["report", "{t}/saved.csv", "--json", "{t}/link-to-saved"], "is the report being read"),
    (["sweep", "mha", "-p", "micro", "-s", "16", "--csv", "{t}/s.csv", "--plot", "{t}/s.csv"], "both name the file"),
    (["bench", "--weights", "{t}/ckpt", "--device", "cpu", "-s", "4", "--save-io", "{t}/ckpt/model.safetensors"],
     "is the checkpoint"),
    (["bench", "--weights", "{t}/ckpt", "--device", "cpu", "--inputs", "{t}/in.safetensors",
      "--save-io", "{t}/in.safetensors"], "is the --inputs file"),
    (["compare", "--weights", "{t}/ckpt", "--device", "cpu", "-s", "4", "--csv", "{t}/ckpt/config.json"],
     "is the checkpoint"),
    (["flops", "mha", "-p", "micro", "--csv", "{t}/no/such/r.csv"], "folder '{t}/no/such' does not exist"),
    (["flops", "mha", "-p", "micro", "--json", "{t}"], "is a folder"),
]  # fmt: skip


@pytest.mark.parametrize("args,expected", CLASHES, ids=[" ".join(a[:1] + a[-2:-1]) + f"-{i}" for i, (a, _) in enumerate(CLASHES)])
def test_clashing_or_unusable_outputs_are_refused_before_any_work(tmp_path, cli, args, expected):
    import torch
    from safetensors.torch import save_file

    make_checkpoint(tmp_path / "ckpt")
    save_file({"hidden_states": torch.zeros(1, 4, 32)}, str(tmp_path / "in.safetensors"))
    (tmp_path / "p.yaml").write_text("name: mine\nd_model: 64\nn_heads: 4\n")
    (tmp_path / "v.yaml").write_text("family: gqa\n")
    assert cli("flops", "mha", "-p", "micro", "--csv", tmp_path / "saved.csv").code == 0
    (tmp_path / "link-to-r").symlink_to(tmp_path / "r")
    (tmp_path / "link-to-saved").symlink_to(tmp_path / "saved.csv")
    before = {p.name: digest(p) for p in tmp_path.rglob("*") if p.is_file()}
    r = cli(*[a.format(t=tmp_path) for a in args])
    assert expected.format(t=tmp_path) in one_line(r, 2)
    after = {p.name: digest(p) for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # no file written, none changed


def test_an_unwritable_folder_is_refused_before_any_work(tmp_path, cli, monkeypatch):
    real = os.access
    monkeypatch.setattr(output.os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real(p, mode))
    r = cli("bench", "mha", "-p", "micro", "-s", "16", "--device", "cpu", "--csv", tmp_path / "r.csv")
    assert f"--csv: folder '{tmp_path}' is not writable" in one_line(r, 2)


@pytest.mark.parametrize("code,exit_code", [(errno.EACCES, 2), (errno.EROFS, 2), (errno.ENOSPC, 3), (errno.EDQUOT, 3),
                                            (errno.EIO, 3)])  # fmt: skip
def test_os_errors_while_writing_are_one_line(tmp_path, cli, monkeypatch, code, exit_code):
    """A folder that turns read-only, a full disk, a quota or an I/O error at write time: one line, the
    other export still written, no temporary file left."""

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    real = output.tempfile.mkstemp
    monkeypatch.setattr(output.tempfile, "mkstemp", lambda **kw: refuse() if kw["prefix"].startswith(".r.json") else real(**kw))
    r = cli(*FLOPS, "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv")
    assert os.strerror(code) in one_line(r, exit_code)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_exports_are_written_before_the_table_is_printed(tmp_path, cli, monkeypatch):
    def broken_table(*args, **kwargs):
        raise UnicodeEncodeError("ascii", "·", 0, 1, "cannot encode")

    monkeypatch.setattr(report, "table", broken_table)
    r = cli(*FLOPS, "--csv", tmp_path / "r.csv", "--json", tmp_path / "r.json")
    assert r.code == 1  # the printing failed…
    assert labels_of_csv(tmp_path / "r.csv") == ["mha", "mqa"]  # …after both files were whole
    assert len(json.loads((tmp_path / "r.json").read_text())) == 2


def test_check_names_both_outputs_on_stdout():
    with pytest.raises(InputError, match="only one of them can write to stdout"):
        output.check({"--csv": "-", "--json": "-"})


def test_write_all_keeps_going_and_raise_first_names_every_failure(tmp_path):
    errors = output.write_all([("--csv", str(tmp_path / "missing" / "a"), "x"), ("--json", str(tmp_path / "b"), "y"),
                               ("--plot", str(tmp_path / "missing" / "c"), "z")])  # fmt: skip
    assert (tmp_path / "b").read_text() == "y" and len(errors) == 2
    with pytest.raises(InputError) as e:
        output.raise_first(errors)
    assert e.value.message.startswith("--csv: cannot write") and "(also: --plot: cannot write" in e.value.message
    assert ResourceError.exit_code == 3
