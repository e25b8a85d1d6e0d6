"""Real weights, bad input (acceptance 4): a missing tensor, a shape that disagrees with the
config, an unsupported rope_scaling and the like give exit 2 and one line naming the tensor or
field; a missing safetensors package gives exit 3; nothing here needs transformers."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("safetensors", reason="attncli reads checkpoints with safetensors")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

D, H, G, HD, LAYERS, VOCAB = 32, 4, 2, 8, 2, 50
CONFIG = {"model_type": "llama", "hidden_size": D, "num_attention_heads": H, "num_key_value_heads": G,
          "num_hidden_layers": LAYERS, "vocab_size": VOCAB, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
          "max_position_embeddings": 128, "torch_dtype": "float32"}  # fmt: skip


def tensors(layers=LAYERS):
    gen = torch.Generator().manual_seed(0)
    out = {"model.embed_tokens.weight": torch.randn(VOCAB, D, generator=gen)}
    for i in range(layers):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = torch.ones(D)
        for name, rows in (("q_proj", H * HD), ("k_proj", G * HD), ("v_proj", G * HD)):
            out[p + f"self_attn.{name}.weight"] = torch.randn(rows, D, generator=gen) * 0.1
        out[p + "self_attn.o_proj.weight"] = torch.randn(D, H * HD, generator=gen) * 0.1
    return out


def checkpoint(folder, config=None, drop=(), change=None):
    folder.mkdir(exist_ok=True)
    t = tensors()
    for name in drop:
        del t[name]
    t.update(change or {})
    save_file(t, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({**CONFIG, **(config or {})}))
    return folder


def bench(cli, folder, *extra):
    return cli("bench", "--weights", folder, "--device", "cpu", "-s", 4, "--min-time", 0, *extra)


def one_line(r, code=2):
    assert r.code == code, (r.code, r.err)
    assert r.err.startswith("attncli: ") and r.err.count("\n") == 1, r.err
    return r.err.strip()


def test_a_good_hand_made_checkpoint_runs(tmp_path, cli):
    r = bench(cli, checkpoint(tmp_path / "ok"), "--json", "-")
    assert r.code == 0, r.err
    assert r.rows()[0]["label"] == "llama-L0" and r.rows()[0]["err_rel_l2"] < 1e-5


def test_missing_tensor_names_it(tmp_path, cli):
    folder = checkpoint(tmp_path / "c", drop=["model.layers.0.self_attn.k_proj.weight"])
    assert one_line(bench(cli, folder)) == f"attncli: {folder}: missing tensor 'model.layers.0.self_attn.k_proj.weight'"


def test_shape_disagreeing_with_the_config_names_tensor_and_fields(tmp_path, cli):
    folder = checkpoint(tmp_path / "c", config={"num_key_value_heads": 4})
    assert one_line(bench(cli, folder)) == (
        f"attncli: {folder}: tensor 'model.layers.0.self_attn.k_proj.weight' has shape [16, 32] but config.json "
        "implies [32, 32] (num_key_value_heads 4 × head_dim 8, hidden_size 32)")


def test_missing_bias_when_the_config_asks_for_biases(tmp_path, cli):
    folder = checkpoint(tmp_path / "c", config={"attention_bias": True})
    assert one_line(bench(cli, folder)) == f"attncli: {folder}: missing tensor 'model.layers.0.self_attn.q_proj.bias'"


def test_unsupported_rope_scaling_names_the_field(tmp_path, cli):
    folder = checkpoint(tmp_path / "c", config={"rope_scaling": {"type": "proportional", "factor": 2.0}})
    assert one_line(bench(cli, folder)) == (
        f"attncli: {folder / 'config.json'}: rope_scaling.type: unsupported rope_scaling type 'proportional'; "
        "supported: default, linear, llama3, yarn, dynamic, longrope")


@pytest.mark.parametrize("config, change, drop, message", [
    ({"model_type": "gpt2"}, None, (), "model_type: 'gpt2' is not supported; supported: llama, mistral"),
    ({"num_attention_heads": None}, None, (), "missing field 'num_attention_heads'"),
    ({"num_key_value_heads": 3}, None, (), "num_key_value_heads: 3 does not divide num_attention_heads 4"),
    ({"quantization_config": {"quant_method": "gptq"}}, None, (), "quantization_config.quant_method: 'gptq' is not supported"),
    (None, {"model.layers.0.self_attn.q_norm.weight": torch.ones(HD)}, (),
     "unexpected tensor 'model.layers.0.self_attn.q_norm.weight': not part of a llama attention layer"),
    (None, None, ["model.embed_tokens.weight"], "missing tensor 'model.embed_tokens.weight'; the default inputs are"),
])  # fmt: skip
def test_config_and_tensor_problems(tmp_path, cli, config, change, drop, message):
    folder = checkpoint(tmp_path / "c", config=config, change=change, drop=drop)  # a null field counts as missing
    assert message in one_line(bench(cli, folder))


@pytest.mark.parametrize("args, message", [
    (["--layer", "2"], "--layer: layer 2 is out of range: the checkpoint has 2 layers (0–1)"),
    (["--layer", "x"], "--layer: 'x' is not a layer index"),
    (["mha"], "--weights: measures the checkpoint's own layer: drop the VARIANT arguments"),
    (["-p", "small"], "--preset: cannot be combined with --weights"),
    (["--save-io", "/no/such/folder/io.safetensors"], "--save-io: folder '/no/such/folder' does not exist"),
    (["--save-io", "io.safetensors", "--mode", "decode"], "--save-io: writes a prefill row's input and output"),
])  # fmt: skip
def test_option_problems(tmp_path, cli, args, message):
    assert one_line(bench(cli, checkpoint(tmp_path / "c"), *args)).startswith(f"attncli: {message}")


def test_inputs_file_problems(tmp_path, cli):
    folder = checkpoint(tmp_path / "c")
    save_file({"x": torch.zeros(1, 3, D)}, str(tmp_path / "wrong_name.safetensors"))
    save_file({"hidden_states": torch.zeros(1, 3, D + 1)}, str(tmp_path / "wrong_shape.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    r = cli("bench", "--weights", folder, "--inputs", tmp_path / "wrong_name.safetensors", "--device", "cpu")
    assert "has no tensor 'hidden_states' (tensors: x)" in one_line(r)
    r = cli("bench", "--weights", folder, "--inputs", tmp_path / "wrong_shape.safetensors", "--device", "cpu")
    assert "tensor 'hidden_states' in" in one_line(r) and "expected [batch, seq, 32] (hidden_size 32)" in r.err
    r = cli("bench", "--weights", folder, "--inputs", tmp_path / "junk.safetensors", "--device", "cpu")
    assert "is not a safetensors file" in one_line(r)
    r = cli("bench", "--weights", folder, "--inputs", tmp_path / "wrong_name.safetensors", "-s", 8, "--device", "cpu")
    assert "--inputs: the file fixes batch and seq-len" in one_line(r)


def test_weight_options_need_weights(cli):
    r = cli("bench", "mha", "--layer", "1", "--device", "cpu")
    assert one_line(r) == "attncli: --layer: needs --weights DIR; it picks a layer, inputs or outputs of a real checkpoint"


def test_no_config_and_no_such_path(tmp_path, cli):
    (tmp_path / "bare").mkdir()
    save_file(tensors(), str(tmp_path / "bare" / "model.safetensors"))
    assert "no config.json in" in one_line(bench(cli, tmp_path / "bare"))
    assert "does not exist" in one_line(bench(cli, tmp_path / "nowhere"))


def test_missing_safetensors_package_is_exit_3(tmp_path, cli, monkeypatch):
    folder = checkpoint(tmp_path / "c")
    monkeypatch.setitem(sys.modules, "safetensors", None)  # find_spec now reports it absent
    err = one_line(bench(cli, folder), code=3)
    assert err.startswith("attncli: --weights: the safetensors package is not installed; install it: pip install safetensors")


def test_config_errors_fail_before_torch_and_analytic_commands_skip_safetensors(tmp_path):
    """A bad config fails before torch is imported; kv-memory, flops, presets and --help import
    neither torch nor safetensors."""
    folder = checkpoint(tmp_path / "c", config={"rope_scaling": {"type": "proportional", "factor": 2.0}})
    code = (
        "import sys\n"
        "from attncli.cli import main\n"
        f"codes = [main(['bench', '--weights', {str(folder)!r}, '--device', 'cpu'])]\n"
        "codes += [main(a) for a in (['kv-memory', 'mha'], ['flops', 'gqa'], ['presets'], ['convert', '--help'])]\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'safetensors'))\n"
        "print(codes, heavy, file=sys.stderr)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stderr.strip().splitlines()[-1] == "[2, 0, 0, 0, 0] []", p.stderr
