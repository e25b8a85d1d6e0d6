"""Real weights: attncli's layer, loaded from a tiny random checkpoint that transformers wrote,
gives the transformers attention module's output on the same input (acceptance 1), in prefill
and decode, for Llama (biases off and on, llama3 RoPE), Qwen2 (biases, YaRN), DeepSeek-V3 (low-rank
query, YaRN with DeepSeek's softmax scale, interleaved RoPE; full-rank query, biases, half-split
RoPE) and DeepSeek-V2; sharded and single-file checkpoints; the default inputs; --inputs and
--save-io."""

import copy
import json

import pytest

pytest.importorskip("transformers", minversion="5",
                    reason="the real-weights tests build checkpoints with transformers >= 5 (pip install -e '.[dev]')")
pytest.importorskip("safetensors", reason="attncli reads checkpoints with safetensors")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import hf_tiny  # noqa: E402
from attncli import rope_scaling  # noqa: E402
from attncli.weights import Checkpoint, LayerSource  # noqa: E402
from attncli.spec import Shape  # noqa: E402

LLAMA3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}  # fmt: skip
YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 64}
DS_YARN = {**YARN, "mscale": 1.0, "mscale_all_dim": 0.8, "beta_fast": 32, "beta_slow": 1}
CASES = {  # name: (kind, config overrides, layer)
    "llama": ("llama", {}, 1),
    "llama-bias": ("llama", {"attention_bias": True}, 0),
    "llama-llama3": ("llama", {"rope_parameters": LLAMA3}, 1),
    "qwen2-yarn": ("qwen2", {"rope_parameters": YARN}, 0),
    "deepseek_v3-yarn": ("deepseek_v3", {"rope_parameters": DS_YARN}, 0),
    "deepseek_v3-lite-bias-halfsplit": ("deepseek_v3", {"q_lora_rank": None, "attention_bias": True, "rope_interleave": False}, 0),
    "deepseek_v2": ("deepseek_v2", {}, 0),
}
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """name → (folder, transformers model), built once for the module."""
    out = {}
    for name, (kind, overrides, _) in CASES.items():
        folder = tmp_path_factory.mktemp(name)
        out[name] = (folder, hf_tiny.build(kind, folder, seed=len(out), **overrides))
    return out


def rel(a, b) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def reference(model, layer, x, rope):
    """transformers' output in x's dtype (float64: the model cast up, norms in float64)."""
    if x.dtype == torch.float64:
        model = copy.deepcopy(model).double()
        hf_tiny.float64_norms(model)
    return hf_tiny.attention_output(model, layer, x, rope)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("name", CASES)
def test_layer_output_equals_transformers(checkpoints, name, dtype):
    folder, model = checkpoints[name]
    layer = CASES[name][2]
    if name == "deepseek_v2" and dtype == torch.float64:
        pytest.skip("transformers' DeepSeek-V2 rotates in complex64 whatever the dtype")
    ckpt = Checkpoint(str(folder))
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 11, hf_tiny.HIDDEN, generator=gen, dtype=torch.float64).to(dtype)  # (B, T, d)
    for spec in ckpt.specs(layer):  # MLA: the naive and the absorbed path
        module = ckpt.module(spec, layer, dtype=dtype)
        if module.rope is not None:  # the frequencies, checked against the model's own rotary buffer
            rotary = model.model.rotary_emb
            assert torch.allclose(module.rope.inv_freq, rotary.inv_freq.double(), rtol=2e-6, atol=0)
            assert module.rope.attention_factor == pytest.approx(rotary.attention_scaling, rel=1e-12)
        y_ref = reference(model, layer, x, module.rope)
        with torch.no_grad():
            y, _ = module(x)
            y_math, _ = module(x, math=True)
        assert rel(y, y_ref) <= TOL[dtype], (spec.label, rel(y, y_ref))
        assert rel(y_math, y_ref) <= TOL[dtype], (spec.label, rel(y_math, y_ref))


@pytest.mark.parametrize("name", ["llama-bias", "deepseek_v3-yarn"])
def test_decode_step_equals_transformers_last_token(checkpoints, name):
    """attncli's decode step at position L (cache filled with 0..L-1) gives the output the
    reference gives the last token of the whole sequence (float64)."""
    folder, model = checkpoints[name]
    layer = CASES[name][2]
    ckpt = Checkpoint(str(folder))
    x = torch.randn(1, 9, hf_tiny.HIDDEN, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for spec in ckpt.specs(layer):
        module = ckpt.module(spec, layer, dtype=torch.float64)
        y_ref = reference(model, layer, x, module.rope)[:, -1:]  # (1, 1, d)
        with torch.no_grad():
            cache = module.allocate_cache(1, 9)
            module.fill_cache(cache, x[:, :8])
            y = module.step(x[:, 8:], cache, 8)
        assert rel(y, y_ref) <= 1e-10, spec.label


def test_rope_settings_match_the_reference_configs(checkpoints):
    """The checkpoints' RoPE as attncli reads it: type, interleave, DeepSeek's softmax scale."""
    got = {name: Checkpoint(str(folder)).config for name, (folder, _) in checkpoints.items()}
    assert got["llama-llama3"].rope.type == "llama3" and got["qwen2-yarn"].rope.type == "yarn"
    assert got["deepseek_v3-yarn"].rope.interleave and not got["deepseek_v3-lite-bias-halfsplit"].rope.interleave
    assert got["deepseek_v2"].rope.interleave  # V2 configs have no rope_interleave: DeepSeek always interleaves
    # transformers' DeepSeek-V3 attention scales scores by qk_head_dim^-0.5 · m(factor, mscale_all_dim)²
    hf_scaling = checkpoints["deepseek_v3-yarn"][1].model.layers[0].self_attn.scaling
    assert got["deepseek_v3-yarn"].softmax_scale_factor * 12**-0.5 == pytest.approx(hf_scaling, rel=1e-12)
    assert got["llama-bias"].biases == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert got["qwen2-yarn"].biases == ("q_proj", "k_proj", "v_proj")
    assert got["deepseek_v3-lite-bias-halfsplit"].biases == ("kv_a_proj_with_mqa", "o_proj")


def test_legacy_config_spelling_reads_the_same(tmp_path, checkpoints):
    """Released checkpoints spell RoPE as top-level rope_theta + rope_scaling {type: ...}; the
    result must be the same frequencies as transformers >= 5's rope_parameters."""
    folder, _ = checkpoints["deepseek_v3-yarn"]
    config = json.loads((folder / "config.json").read_text())
    params = config.pop("rope_parameters")
    config["rope_theta"] = params.pop("rope_theta")
    config["rope_scaling"] = {"type": params.pop("rope_type"), **params}
    (tmp_path / "config.json").write_text(json.dumps(config))
    for f in folder.glob("*.safetensors"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    old, new = Checkpoint(str(tmp_path)).config, Checkpoint(str(folder)).config
    assert old.rope.type == "yarn" and old.rope.theta == new.rope.theta
    assert rope_scaling.inv_freq(old.rope) == rope_scaling.inv_freq(new.rope)
    assert old.softmax_scale_factor == new.softmax_scale_factor != 1.0


def test_sharded_and_single_file_checkpoints(tmp_path, checkpoints):
    _, model = checkpoints["llama-bias"]
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="20KB")
    assert (sharded / "model.safetensors.index.json").is_file() and len(list(sharded.glob("*.safetensors"))) > 1
    single = tmp_path / "single"
    model.save_pretrained(single)
    x = torch.randn(1, 6, hf_tiny.HIDDEN, generator=torch.Generator().manual_seed(5))
    y_ref = hf_tiny.attention_output(model, 1, x)
    for path in (sharded, single / "model.safetensors"):
        ckpt = Checkpoint(str(path))
        with torch.no_grad():
            y, _ = ckpt.module(ckpt.specs(1)[0], 1)(x)
        assert rel(y, y_ref) <= 1e-5, path


def test_default_inputs_are_embeddings_through_the_input_norm(checkpoints):
    folder, model = checkpoints["llama"]
    source = LayerSource(Checkpoint(str(folder)), 1)
    x = source.inputs(Shape("prefill", 10, 2), seed=4)  # float64 (2, 10, d)
    ids = torch.randint(hf_tiny.VOCAB, (2, 10), generator=torch.Generator().manual_seed(4))  # the same seeded ids
    with torch.no_grad():
        expected = model.model.layers[1].input_layernorm(model.model.embed_tokens(ids))  # float32 in transformers
    assert x.dtype == torch.float64 and x.shape == (2, 10, hf_tiny.HIDDEN)
    assert rel(x, expected) <= 1e-6
    decode = source.inputs(Shape("decode", 10, 2), seed=4)  # the cached prefix and one new token
    assert decode.shape == (2, 11, hf_tiny.HIDDEN)


def test_cli_inputs_and_save_io_round_trip(tmp_path, checkpoints, cli):
    """--inputs feeds a captured tensor; --save-io writes what the attention block received and
    returned, which transformers reproduces."""
    folder, model = checkpoints["deepseek_v3-yarn"]
    x = torch.randn(2, 7, hf_tiny.HIDDEN, generator=torch.Generator().manual_seed(11))
    save_file({"hidden_states": x}, str(tmp_path / "in.safetensors"))
    out = tmp_path / "io.safetensors"
    r = cli("bench", "--weights", folder, "--inputs", tmp_path / "in.safetensors", "--save-io", out,
            "--device", "cpu", "--dtype", "float32", "--min-time", "0", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.rows()
    assert [row["label"] for row in rows] == ["deepseek_v3-L0-naive", "deepseek_v3-L0-absorb"]
    assert {(row["seq_len"], row["batch"], row["layer"], row["inputs"]) for row in rows} == {(7, 2, 0, str(tmp_path / "in.safetensors"))}
    assert rows[0]["weights"] == str(folder) and rows[0]["rope_scaling"] == "yarn×4"
    saved = load_file(str(out))
    assert torch.equal(saved["input"], x)
    ckpt = Checkpoint(str(folder))
    assert rel(saved["output"], hf_tiny.attention_output(model, 0, x)) <= 1e-5
    rope = ckpt.module(ckpt.specs(0)[0], 0).rope
    assert rel(saved["output_float64"], reference(model, 0, x.double(), rope)) <= 1e-10


def test_cli_bench_layers_and_decode_rows(checkpoints, cli):
    folder, _ = checkpoints["llama"]
    r = cli("compare", "--weights", folder, "--layer", "0,1", "-s", 8, "--mode", "both", "--device", "cpu",
            "--min-time", "0", "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.rows()
    assert [(row["label"], row["mode"], row["layer"]) for row in rows] == [
        ("llama-L0", "prefill", 0), ("llama-L1", "prefill", 1), ("llama-L0", "decode", 0), ("llama-L1", "decode", 1)]
    assert all(row["status"] == "ok" and row["err_rel_l2"] < 1e-5 for row in rows)
    assert all(row["family"] == "gqa" and row["n_kv_heads"] == 2 and row["head_dim"] == 16 for row in rows)
    # analytic KV bytes (2 · 2 KV heads · 16 · 4 bytes per token) equal the cache really allocated
    assert all(row["kv_cache_bytes_measured"] == row["kv_cache_bytes"] == 256 * row["cache_tokens"] for row in rows)


def test_fp8_block_quantised_weights_are_dequantised(tmp_path, checkpoints):
    """DeepSeek-V3's FP8 release stores float8_e4m3fn weights with one float32 scale per block
    (`weight_scale_inv`): the loaded weight is w8 · scale of its block. The same layer written
    with those products in float32 (computed block by block here) gives the same output."""
    folder, _ = checkpoints["deepseek_v3-yarn"]
    config = json.loads((folder / "config.json").read_text())
    tensors = load_file(str(next(folder.glob("*.safetensors"))))
    b0, b1 = 8, 6  # a block that does not divide kv_b_proj's 16 columns: the last block is cut short
    fp8, dequantised = dict(tensors), dict(tensors)
    for name in ("model.layers.0.self_attn.kv_b_proj.weight", "model.layers.0.self_attn.o_proj.weight"):
        w = tensors[name]
        rows, cols = w.shape
        scale = torch.empty(-(-rows // b0), -(-cols // b1))
        q = torch.empty(rows, cols, dtype=torch.float8_e4m3fn)
        deq = torch.empty(rows, cols)
        for i in range(scale.shape[0]):
            for j in range(scale.shape[1]):
                block = w[i * b0 : (i + 1) * b0, j * b1 : (j + 1) * b1]
                scale[i, j] = block.abs().max() / 448  # e4m3's largest finite value
                q_block = (block / scale[i, j]).to(torch.float8_e4m3fn)
                q[i * b0 : (i + 1) * b0, j * b1 : (j + 1) * b1] = q_block
                deq[i * b0 : (i + 1) * b0, j * b1 : (j + 1) * b1] = q_block.float() * scale[i, j]
        fp8[name], fp8[name + "_scale_inv"], dequantised[name] = q, scale, deq
    for sub, data, extra in (("fp8", fp8, {"quantization_config": {"quant_method": "fp8", "weight_block_size": [b0, b1]}}),
                             ("deq", dequantised, {})):  # fmt: skip
        (tmp_path / sub).mkdir()
        save_file(data, str(tmp_path / sub / "model.safetensors"))
        (tmp_path / sub / "config.json").write_text(json.dumps({**config, **extra}))
    x = torch.randn(1, 6, hf_tiny.HIDDEN, generator=torch.Generator().manual_seed(2))
    outputs = []
    for sub in ("fp8", "deq"):
        ckpt = Checkpoint(str(tmp_path / sub))
        with torch.no_grad():
            outputs.append(ckpt.module(ckpt.specs(0)[0], 0)(x)[0])
    assert torch.equal(outputs[0], outputs[1])
    with torch.no_grad():
        original = Checkpoint(str(folder)).module(Checkpoint(str(folder)).specs(0)[0], 0)(x)[0]
    assert 0 < rel(outputs[0], original) < 0.2  # FP8 rounding changed the weights, but only a little
