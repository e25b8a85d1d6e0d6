"""Bad input: exit code 2 (3 for a missing device), one line on stderr naming the culprit, no traceback."""

import pytest
import torch

from conftest import run_process

CASES = [
    # (arguments, text the one-line message must contain)
    (["compare", "mha", "gqq"], "gqq: unknown variant 'gqq'; did you mean 'gqa'?"),
    (["flops", "gqa:n_kv_head=2"], "unknown key 'n_kv_head' for gqa; did you mean 'n_kv_heads'?"),
    (["flops", "gqa:n_kv_heads"], "gqa:n_kv_heads: override 'n_kv_heads' is not key=value"),
    (["kv-memory", "gqa:n_kv_heads=3"], "n_kv_heads: 3 does not divide n_heads 8"),
    (["kv-memory", "mha", "-s", "0"], "--seq-len: 0 must be a positive integer"),
    (["kv-memory", "mha", "-s", "-5"], "--seq-len: -5 must be a positive integer"),
    (["kv-memory", "mha", "-s", "1x"], "--seq-len: '1x' is not a whole number"),
    (["flops", "mha", "-s", "4096:128"], "--seq-len: range '4096:128' runs backwards"),
    (["kv-memory", "mha", "-b", "0"], "--batch: 0 must be a positive integer"),
    (["kv-memory", "mha", "--layers", "0"], "--layers: 0 must be a positive integer"),
    (["kv-memory", "mha", "--layers", "abc"], "--layers: 'abc' is not a whole number"),
    (["kv-memory", "mha", "--dtype", "fp4"], "--dtype: unknown dtype 'fp4'"),
    (["bench", "mha", "--dtype", "fp8"], "--dtype: fp8 is a storage format, not a compute dtype"),
    (["bench", "mha", "--device", "tpu"], "--device: unknown device 'tpu'; choices: auto, cpu, cuda, cuda:N, mps"),
    (["flops", "mha", "--mode", "train"], "--mode: unknown mode 'train'"),
    (["flops", "mha", "-p", "smal"], "--preset: unknown preset 'smal'; did you mean 'small'?"),
    (["flops", "missing.yaml"], "missing.yaml: no such file"),
    (["flops", "mha", "--bogus"], "attncli: flops: No such option: --bogus"),
    (["bench", "mha", "--seed", "x"], "attncli: bench: Invalid value for '--seed'"),
    (["flops", "mha", "--csv", "-", "--json", "-"], "--csv/--json: only one of them can write to stdout"),
    (["flops", "mha", "--csv", "/nonexistent/dir/r.csv"], "--csv: folder '/nonexistent/dir' does not exist"),
    (["bench", "mha", "--threads", "0"], "--threads: 0 must be a positive integer"),
    (["bench", "mha", "--min-time", "-1"], "--min-time: -1.0 must not be negative"),
    (["sweep", "mha", "--plot", "out.gif"], "--plot: 'out.gif' has no image suffix; use one of .png, .svg, .pdf"),
    (["sweep", "mha", "--resume"], "--resume: needs --csv PATH"),
    (["sweep", "mha", "--measure", "--layers", "4", "--device", "cpu"], "--layers: a measured sweep measures one layer"),
    (["sweep", "mha", "-s", "0:64"], "--seq-len: 0 must be a positive integer"),
    (["report", "nothing-here.csv"], "nothing-here.csv: no such file"),
    (["kv-memory", "/"], "/: is a folder, not a YAML file"),
    (["flops", "mha", "-p", "large", "-b", "x,2"], "--batch: 'x' is not a whole number"),
]


@pytest.mark.parametrize("args,expected", CASES, ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_bad_input_in_process(cli, args, expected):
    r = cli(*args)
    assert r.code == 2
    assert r.err.count("\n") == 1 and r.err.startswith("attncli: "), r.err
    assert expected in r.err
    assert "Traceback" not in r.err + r.out


FILES = [
    ("bad.yaml", "family: gqa\nn_kv_heads: [2\n", "malformed YAML"),
    ("empty.yaml", "", "is empty"),
    ("twice.yaml", "family: gqa\nn_kv_heads: 2\nn_kv_heads: 4\n", "duplicate key 'n_kv_heads' (line 3)"),
    ("types.yaml", "family: gqa\nn_kv_heads: two\n", "n_kv_heads: 'two' is not an integer"),
    ("tag.yaml", "!!python/object/apply:os.system ['true']\n", "YAML tag '!!python/object/apply:os.system' is not allowed"),
    ("unknown.yaml", "family: gqa\nn_kv_heads: 2\nwindoww: 3\n", "unknown key 'windoww' for gqa"),
    ("nofamily.yaml", "n_kv_heads: 2\n", "missing key 'family'"),
]  # fmt: skip


@pytest.mark.parametrize("name,text,expected", FILES, ids=[f[0] for f in FILES])
def test_bad_variant_files_in_a_real_process(tmp_path, name, text, expected):
    f = tmp_path / name
    f.write_text(text)
    r = run_process("kv-memory", f)
    assert r.code == 2
    assert r.err == f"attncli: {f}: " + r.err.split(": ", 2)[2] and expected in r.err
    assert "Traceback" not in r.err and r.out == ""


def test_a_preset_file_with_a_bad_key_names_file_key_and_closest(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("d_model: 512\nn_heads: 8\nn_layer: 2\n")
    r = run_process("flops", "mha", "-p", f)
    assert (r.code, r.err) == (2, f"attncli: {f}: unknown key 'n_layer'; did you mean 'n_layers'?\n")


def test_binary_variant_file(tmp_path):
    f = tmp_path / "weights.yaml"
    f.write_bytes(bytes(range(256)))
    r = run_process("flops", f)
    assert (r.code, r.err) == (2, f"attncli: {f}: is not a UTF-8 text file\n")


def test_absurd_measured_size_is_refused_by_the_preflight(cli):
    r = cli("bench", "mha", "-s", "1000000000000", "--device", "cpu")
    assert r.code == 3 and "seq_len=1,000,000,000,000" in r.err and r.err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_exit_3():
    r = run_process("bench", "mha", "--device", "cuda", "-s", "16")
    assert r.code == 3
    assert r.err.startswith("attncli: --device: cuda is not available") and r.err.count("\n") == 1


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_missing_mps_is_exit_3(cli):
    r = cli("bench", "mha", "--device", "mps", "-s", "16")
    assert r.code == 3 and "mps is not available" in r.err
