"""Hostile input: each reproduction of issue 20 is a case with its exact exit code, a one-line message,
a time limit (a case that used to hang or eat memory must fail fast), and the files checked after.

Every FIFO, device node and oversized file is made inside tmp_path; nothing points at a system path.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from attncli.measure import peak as peak_mod

LLAMA = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
         "num_hidden_layers": 2, "vocab_size": 10, "intermediate_size": 128, "max_position_embeddings": 128}  # fmt: skip
BOMB = "family: gqa\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))  # 9^9 leaves once expanded


@pytest.fixture
def alarm():
    """A case that hangs fails the test after 30 s instead of blocking the suite."""

    def on_alarm(signum, frame):
        raise TimeoutError("the command hung")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def make(tmp_path, kind):
    """The hostile file a case names, made inside tmp_path."""
    path = tmp_path / kind
    if kind == "fifo.yaml":
        os.mkfifo(path)
    elif kind == "zero.yaml":  # a private /dev/zero
        if os.geteuid() != 0:
            pytest.skip("mknod of a character device needs root")
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    elif kind == "huge.yaml":  # 17 MiB, sparse: over the 16 MiB cap on a text input
        with open(path, "wb") as f:
            f.truncate(17 * 2**20)
    elif kind == "bomb.yaml":
        path.write_text(BOMB)
    elif kind == "recursive.yaml":
        path.write_text("family: gqa\nx: &a [*a]\n")
    elif kind == "merge.yaml":
        path.write_text("base: &b {n_heads: 8}\nvariant:\n  <<: *b\n")
    elif kind == "deep.yaml":
        path.write_text("family: gqa\nx: " + "[" * 20000 + "]" * 20000 + "\n")
    elif kind == "deepmap.yaml":
        path.write_text("family: gqa\nx: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n")
    elif kind == "wide.yaml":
        path.write_text("family: gqa\nx: [" + ", ".join(["1"] * 30000) + "]\n")
    elif kind == "bigint.yaml":
        path.write_text("family: gqa\nn_kv_heads: " + "9" * 40 + "\n")
    elif kind == "preset-inf.yaml":
        path.write_text("d_model: 64\nn_heads: 4\nvariants:\n  gqa:\n    rope_theta: .inf\n")
    elif kind == "deep.json":
        path.write_text("[" * 100000 + "]" * 100000)
    elif kind == "dup.json":
        path.write_text('{"model_type": "llama", "hidden_size": 64, "hidden_size": 128, "num_attention_heads": 4}')
    elif kind.endswith(".json"):
        extra = {"sw.json": {"model_type": "mistral", "sliding_window": "4096"},
                 "layers.json": {"num_hidden_layers": 10**9},
                 "long.json": {"num_hidden_layers": 1_000_000, "model_type": "gemma2", "sliding_window": 64,
                               "head_dim": 16},
                 "nolayers.json": {"num_hidden_layers": 20_000,
                                   "layer_types": ["full_attention"] + ["sliding_attention"] * 19_999,
                                   "model_type": "mistral", "sliding_window": 64}}[kind]  # fmt: skip
        path.write_text(json.dumps({**LLAMA, **extra}))
    return path


CASES = [
    # (arguments; {name} is a file made in tmp_path), exit code, text of the one line, seconds allowed
    (["flops", "{fifo.yaml}"], 2, "is a FIFO, not a regular file", 5),
    (["flops", "mha", "-p", "{fifo.yaml}"], 2, "is a FIFO, not a regular file", 5),
    (["kv-memory", "--hf-config", "{fifo.yaml}"], 2, "is a FIFO, not a regular file", 5),
    (["flops", "mha", "-p", "{zero.yaml}"], 2, "is a device, not a regular file", 5),
    (["flops", "{huge.yaml}"], 2, "is larger than 1 MiB", 5),
    (["flops", "{bomb.yaml}"], 2, "YAML anchors and aliases are not allowed ('&a' (line 2))", 5),
    (["flops", "{recursive.yaml}"], 2, "YAML anchors and aliases are not allowed", 5),
    (["flops", "mha", "-p", "{merge.yaml}"], 2, "YAML anchors and aliases are not allowed", 5),
    (["flops", "{deep.yaml}"], 2, "nest", 5),  # libyaml's own depth limit may speak first
    (["flops", "{deepmap.yaml}"], 2, "is nested more than 32 levels deep", 5),
    (["flops", "{wide.yaml}"], 2, "holds more than 20,000 YAML values", 5),
    (["flops", "{bigint.yaml}"], 2, "n_kv_heads: 9999999999999999999999999999999999999999 is out of range", 5),
    (["flops", "gqa", "-p", "{preset-inf.yaml}"], 2, "rope_theta: inf is not a finite number", 5),
    (["flops", "gqa:n_kv_heads=&a [*a]"], 2, "YAML anchors and aliases are not allowed", 5),
    (["kv-memory", "--hf-config", "{deep.json}"], 2, "nested too deeply", 5),
    (["kv-memory", "--hf-config", "{dup.json}"], 2, "duplicate key 'hidden_size' in the JSON", 5),
    (["kv-memory", "--hf-config", "{sw.json}"], 2, "sliding_window: '4096' is not a whole number", 5),
    (["kv-memory", "--hf-config", "{layers.json}"], 2, "num_hidden_layers: 1,000,000,000 layers is more than", 5),
    (["flops", "mha", "--layers", "1000000000"], 2, "--layers: 1,000,000,000 layers is more than attncli handles", 5),
    (["flops", "hybrid:softmax_every=100000000"], 2, "softmax_every: 100,000,000 layers is more than", 5),
    (["flops", "mha", "-s", "100000000000000000000000000000"], 2, "--seq-len: 100,000,000,000,000,000,000,000,000,000 is out of range", 5),
    (["kv-memory", "mha", "-b", "9" * 5000], 2, "--batch: '99999", 5),
    (["bench", "mha", "-p", "micro", "--min-time", "inf", "--device", "cpu"], 2, "--min-time: inf is not a finite number", 5),
    (["bench", "mha", "-p", "micro", "--min-time", "nan", "--device", "cpu"], 2, "--min-time: nan is not a finite number", 5),
    (["bench", "mha", "-p", "micro", "--seed", str(2**64), "--device", "cpu"], 2, "--seed: 18,446,744,073,709,551,616 is outside 0", 5),
    (["bench", "mha", "-p", "micro", "--seed", "-1", "--device", "cpu"], 2, "--seed: -1 is outside 0", 5),
    (["sweep", "mha", "-p", "micro", "--measure", "--seed", "9" * 40, "--device", "cpu"], 2, "--seed: a 40-digit number is outside", 5),
]  # fmt: skip


@pytest.mark.parametrize("args,code,expected,seconds", CASES, ids=[f"{i}-{c[0][0]}" for i, c in enumerate(CASES)])
def test_hostile_input_is_one_line_fast(tmp_path, cli, alarm, args, code, expected, seconds):
    out = tmp_path / "out"
    out.mkdir()
    filled = []
    for a in args:
        if a.startswith("{") and a.endswith("}") and "." in a:
            a = str(make(tmp_path, a[1:-1]))
        filled.append(a)
    before = sorted(p.name for p in tmp_path.iterdir())
    start = time.perf_counter()
    r = cli(*filled, "--json", out / "rows.json")
    elapsed = time.perf_counter() - start
    assert r.code == code, (r.code, r.err[:500])
    assert r.err.startswith("attncli: ") and r.err.count("\n") == 1 and len(r.err) < 700, r.err[:500]
    assert expected in r.err, r.err[:500]
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert sorted(p.name for p in tmp_path.iterdir()) == before and list(out.iterdir()) == []  # nothing written


def test_long_models_are_counted_arithmetically(tmp_path, cli):
    """A million-layer Gemma-2-style model (period 2) and a 20,000-layer one with no period (the
    quadratic search took minutes): the period search is linear, and the counts are exact."""
    start = time.perf_counter()
    r = cli("kv-memory", "--hf-config", make(tmp_path, "long.json"), "-s", "128", "--json", "-")
    assert r.code == 0, r.err
    per_token = 2 * 2 * 16 * 2  # K and V, 2 KV heads of 16, bfloat16: 128 bytes per token per layer
    # Gemma-2: every second layer global (128 tokens), the others slide over 64
    assert sum(row["kv_cache_bytes"] for row in r.rows()) == 500_000 * 128 * per_token + 500_000 * 64 * per_token
    r = cli("flops", "--hf-config", make(tmp_path, "nolayers.json"), "-s", "32", "--per-layer", "--json", "-")
    assert r.code == 0, r.err  # one full layer then 19,999 sliding ones: no period shorter than the model
    full, sliding, model = r.rows()
    assert (full["layers"], sliding["layers"], model["layers"]) == (1, 19_999, 20_000)
    assert model["flops"] == full["flops"] + sliding["flops"] == 20_000 * full["flops"]  # window 64 > 32 tokens
    assert time.perf_counter() - start < 30


def test_hybrid_kinds_are_counted_per_period():
    from attncli import presets

    p = presets.load_preset("small")
    stack = presets.parse_variant("hybrid:softmax_every=8", p)
    counts = {s.family: n for s, n in stack.kinds(10**9 + 3)}
    assert counts == {"linear": 7 * (10**9 // 8) + 3, "gqa": 10**9 // 8}  # 3 leftover layers are linear


def test_smallest_period_matches_the_definition():
    from attncli.presets import smallest_period

    for kinds, p in [("a", 1), ("aaaa", 1), ("abab", 2), ("ababa", 2), ("abcab", 3), ("aab", 3), ("sssf" * 5, 4)]:
        assert smallest_period(list(kinds)) == p
    assert smallest_period(["s"] * 999_999 + ["f"]) == 1_000_000


# ------------------------------------------------------------------------------------------------
# weights: integer and boolean tensors are refused, not measured


@pytest.mark.parametrize("dtype,name", [("int64", "I64"), ("bool", "BOOL"), ("int8", "I8")])
def test_integer_or_boolean_weights_are_refused(tmp_path, cli, dtype, name):
    import torch
    from test_weights_errors import checkpoint

    from attncli import weights

    q = "model.layers.0.self_attn.q_proj.weight"
    folder = checkpoint(tmp_path / "ckpt", change={q: torch.ones(32, 32, dtype=getattr(torch, dtype))})
    r = cli("bench", "--weights", folder, "--device", "cpu", "-s", 4, "--min-time", 0)
    assert r.code == 2 and f"tensor '{q}' is stored as {name}, not a float dtype" in r.err and r.err.count("\n") == 1
    assert weights.FLOAT_DTYPES[0] == "F64"


def test_integer_hidden_states_are_refused(tmp_path, cli):
    import torch
    from safetensors.torch import save_file
    from test_weights_errors import checkpoint

    folder = checkpoint(tmp_path / "ckpt")
    save_file({"hidden_states": torch.ones(1, 4, 32, dtype=torch.int32)}, str(tmp_path / "in.safetensors"))
    r = cli("bench", "--weights", folder, "--device", "cpu", "--inputs", tmp_path / "in.safetensors", "--min-time", 0)
    assert r.code == 2 and "tensor 'hidden_states' is stored as I32, not a float dtype" in r.err


def test_a_fifo_as_inputs_or_shard_does_not_block(tmp_path, cli, alarm):
    from test_weights_errors import checkpoint

    folder = checkpoint(tmp_path / "ckpt")
    os.mkfifo(tmp_path / "in.safetensors")
    r = cli("bench", "--weights", folder, "--device", "cpu", "--inputs", tmp_path / "in.safetensors")
    assert r.code == 2 and "is a FIFO, not a regular safetensors file" in r.err
    (folder / "model.safetensors").unlink()
    os.mkfifo(folder / "model.safetensors")
    r = cli("bench", "--weights", folder, "--device", "cpu", "-s", 4)
    assert r.code == 2 and "is a FIFO, not a regular safetensors file" in r.err


# ------------------------------------------------------------------------------------------------
# the peak cache and HOME


@pytest.mark.parametrize("field,value", [("gflops", "abc"), ("gbps", -1.0), ("gflops", 0), ("threads", "2"),
                                         ("gbps", None), ("device_name", 3)])  # fmt: skip
def test_a_corrupt_cached_peak_is_ignored_with_a_warning(capsys, field, value):
    p = peak_mod.Peak(device_name="CPU", dtype="float32", torch_version="9", threads=2, gflops=100.0, gbps=10.0,
                      matmul_n=256, copy_bytes=2**20, measured_at="now")  # fmt: skip
    assert peak_mod.save(p) is None
    data = json.loads(peak_mod.cache_path().read_text())
    data["peaks"][p.key][field] = value
    peak_mod.cache_path().write_text(json.dumps(data))
    assert peak_mod.load_cached(p.key) is None
    err = capsys.readouterr().err
    assert err.startswith("attncli: warning: ignoring the cached peak in ") and field in err and err.count("\n") == 1


def test_a_corrupt_cached_peak_does_not_break_bench(cli, monkeypatch):
    import torch

    from attncli.measure.peak import current_key

    key = current_key(torch.device("cpu"), "float32")
    peak_mod.cache_path().parent.mkdir(parents=True, exist_ok=True)
    bad = {"device_name": "x", "dtype": "float32", "torch_version": "9", "threads": 1, "gflops": "fast", "gbps": 1.0,
           "matmul_n": 1, "copy_bytes": 1, "measured_at": "now"}  # fmt: skip
    peak_mod.cache_path().write_text(json.dumps({"format": peak_mod.CACHE_FORMAT, "peaks": {key: bad}}))
    r = cli("bench", "mha", "-p", "micro", "-s", "8", "--device", "cpu", "--min-time", "0", "--json", "-")
    assert r.code == 0 and r.rows()[0]["peak_gflops"] is None and "ignoring the cached peak" in r.err


@pytest.mark.parametrize("home", ["", "/", "relative/dir"])
def test_an_empty_or_root_home_never_puts_the_cache_at_the_root(monkeypatch, home):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", home)
    path = peak_mod.cache_path()
    assert path.is_absolute() and path.parts[1] != "attncli" and str(path) != "/.cache/attncli/peaks.json"
    assert path.parent.name == "attncli" and path.parent.parent != path.parent.parent.parent  # not directly under /


# ------------------------------------------------------------------------------------------------
# what is printed: Rich markup stays text; a stream that cannot encode gets ASCII


def test_rich_markup_in_labels_and_paths_prints_as_typed(tmp_path, cli):
    folder = tmp_path / "[red]"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA))
    r = cli("flops", "mha:label=x[/]y", "mha:label=[bold]z", "-p", "micro")
    assert r.code == 0, r.err
    assert "x[/]y" in r.out and "[bold]z" in r.out
    r = cli("kv-memory", "--hf-config", folder, "-s", "8")
    assert r.code == 0, r.err
    assert f"{folder}/config.json" in r.out.replace("\n", "") or "[red]" in r.out


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"}, {"PYTHONIOENCODING": "latin-1"},
                                 {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}])  # fmt: skip
def test_a_stream_that_cannot_encode_gets_ascii_stand_ins(tmp_path, env):
    """The tables and captions hold '·', '–', '×', '≤': a terminal without them gets '-', 'x', '<=',
    never an internal error (exit 0, and the one-line errors stay one line)."""
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "LC_ALL", "LANG", "PYTHONUTF8")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "attncli", *map(str, a)], capture_output=True,  # noqa: E731
                                    env={**base, **env}, timeout=120)  # fmt: skip
    p = run("kv-memory", "mha", "gqa", "-p", "micro", "--budget", "1GiB", "--tp", "2")
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode("latin-1")
    assert "KV cache " in text and "Traceback" not in text
    if env.get("PYTHONIOENCODING") != "latin-1":
        assert p.stdout.isascii() and " - preset micro - " in text
    p = run("flops", "mha", "-p", "micro", "--csv", tmp_path / "no" / "r.csv")
    assert p.returncode == 2 and p.stderr.count(b"\n") == 1 and b"does not exist" in p.stderr
