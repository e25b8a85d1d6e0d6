"""The readers around the layer (issue 14): an architecture not read is refused before any tensor
is read (acceptance 3); a bench row on a checkpoint names the variant fields it used and `flops`
on the same variant agrees (acceptance 4); `convert` takes the GQA-family architectures; the
default inputs are what transformers' own forward feeds layer 0's attention (embedding scale,
Gemma's (1 + w), LayerNorm with bias, OLMo-2's none)."""

import json

import pytest

pytest.importorskip("transformers", minversion="5",
                    reason="the real-weights tests build checkpoints with transformers >= 5 (pip install -e '.[dev]')")
pytest.importorskip("safetensors", reason="attncli reads checkpoints with safetensors")

import torch  # noqa: E402

import hf_tiny  # noqa: E402
from attncli.models import reader  # noqa: E402
from attncli.spec import Shape  # noqa: E402
from attncli.weights import Checkpoint, LayerSource  # noqa: E402

BUILDS = {
    "gemma2": ("gemma2", dict(head_dim=16, query_pre_attn_scalar=24, sliding_window=4, attn_logit_softcapping=30.0)),
    "gpt_oss": ("gpt_oss", dict(head_dim=16, sliding_window=4, num_local_experts=2, num_experts_per_tok=1)),
    "qwen3": ("qwen3", dict(head_dim=16)),
    "phi": ("phi", {}),
    "stablelm": ("stablelm", dict(qk_layernorm=True)),
    "starcoder2": ("starcoder2", dict(sliding_window=4)),
    "olmo2": ("olmo2", {}),
    "granite": ("granite", dict(embedding_multiplier=3.0, attention_multiplier=0.2)),
    "falcon": ("falcon", dict(new_decoder_architecture=True, num_kv_heads=2, bias=True)),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            model_type, overrides = BUILDS[name]
            folder = tmp_path_factory.mktemp(name)
            cache[name] = (folder, hf_tiny.build_any(model_type, folder, seed=len(cache), **overrides))
        return cache[name]

    return get


def one_line(r, code=2):
    assert r.code == code, (r.code, r.err)
    assert r.err.startswith("attncli: ") and r.err.count("\n") == 1, r.err
    return r.err.strip()


def test_an_architecture_not_read_is_refused_before_any_tensor(tmp_path, cli):
    """config.json says mamba; the .safetensors beside it is not even a safetensors file: the
    refusal names the model_type and the supported list, so no header, let alone a tensor, was read."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba", "hidden_size": 64}))
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    supported = reader.supported()
    assert len(supported) == 24 and {"qwen3", "gemma3_text", "gpt_oss", "falcon", "smollm3"} <= set(supported)
    r = cli("bench", "--weights", tmp_path, "--device", "cpu", "-s", 4, "--min-time", 0)
    assert one_line(r) == (f"attncli: {tmp_path / 'config.json'}: model_type: 'mamba' is not supported; "
                           f"supported: {', '.join(supported)}")  # fmt: skip
    assert one_line(cli("convert", tmp_path, "--to", "mqa")).endswith(f"supported: {', '.join(supported)}")


def variant_of(row) -> str:
    """The `gqa:...` variant argument of a checkpoint row's fields."""
    fields = {k: row[k] for k in ("d_model", "n_heads", "n_kv_heads", "head_dim", "window", "softcap", "sinks",
                                  "rotary_dim", "scale") if row[k] not in (None, False)}  # fmt: skip
    if row["qk_norm"]:
        fields["qk_norm"] = "true"
        fields["qk_norm_over"] = "proj" if row["qk_norm"].endswith("_proj") else "head"
        fields["qk_norm_type"] = row["qk_norm"].removesuffix("_proj")
    return "gqa:" + ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in fields.items())


@pytest.mark.parametrize("name, layer, label, shown", [
    ("gemma2", 0, "gemma2-L0-w4-cap30", {"softcap": 30.0, "scale": 24**-0.5, "window": 4, "qk_norm": False, "sinks": False}),
    ("gpt_oss", 0, "gpt_oss-L0-w4-sinks", {"sinks": True, "window": 4, "softcap": None, "rotary_dim": None}),
    ("stablelm", 1, "stablelm-L1-qknorm-rot4", {"qk_norm": "layer", "rotary_dim": 4, "window": None}),
])  # fmt: skip
def test_bench_rows_show_the_fields_and_flops_agrees(built, cli, name, layer, label, shown):
    folder, _ = built(name)
    r = cli("bench", "--weights", folder, "--layer", layer, "-s", 8, "--mode", "both", "--device", "cpu",
            "--min-time", 0, "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    for row in r.rows():
        assert row["label"] == label and {k: row[k] for k in shown} == pytest.approx(shown), row["label"]
        assert row["status"] == "ok" and row["err_rel_l2"] < 1e-5
        f = cli("flops", variant_of(row), "-p", "small", "-s", 8, "--mode", row["mode"], "--layers", 1, "--json", "-")
        assert f.code == 0, f.err
        (analytic,) = f.rows()
        for key in ("flops", "proj_flops", "attn_flops", "elementwise_flops", "params"):
            assert analytic[key] == row[key], (row["label"], row["mode"], key)


def test_convert_takes_the_gqa_family(built, cli):
    """Mean-pooling runs on every GQA-family layer: with as many KV heads as it has, the converted
    layer is the original (error 0, norms and biases carried over); MHA2MLA refuses a layer whose
    keys are normalised, naming the field."""
    for name, g in (("qwen3", 2), ("starcoder2", 2), ("falcon", 2)):
        folder, _ = built(name)
        r = cli("convert", folder, "--layer", 1, "-s", 8, "--to", f"gqa:n_kv_heads={g}", "--to", "mqa", "--json", "-")
        assert r.code == 0, r.err
        same, mqa = r.rows()
        assert same["conv_err_rel_l2"] < 1e-12 and 0 < mqa["conv_err_rel_l2"] < 10, name
        assert mqa["kv_bytes_per_token"] * g == same["kv_bytes_per_token"]
    folder, _ = built("qwen3")
    assert "qwen3 layers have qk_norm" in one_line(cli("convert", folder, "--to", "mla:kv_lora_rank=8"))
    folder, _ = built("falcon")  # plain softmax attention with full-head RoPE: MHA2MLA runs
    r = cli("convert", folder, "-s", 8, "--to", "mla:kv_lora_rank=16", "--json", "-")
    assert r.code == 0, r.err and r.rows()[0]["method"] == "mha2mla-svd-joint"


@pytest.mark.parametrize("name", ["gemma2", "starcoder2", "olmo2", "granite", "falcon", "phi"])
def test_default_inputs_are_what_layer_0_receives(built, name):
    """attncli's default inputs (seeded token ids through the embedding scale and layer 0's input
    norm, in float64) equal the hidden states transformers' own forward passes to layer 0's
    attention, captured by a hook."""
    folder, model = built(name)
    x = LayerSource(Checkpoint(str(folder)), 0).inputs(Shape("prefill", 6, 2), seed=4)  # float64 (2, 6, d)
    ids = torch.randint(hf_tiny.VOCAB, (2, 6), generator=torch.Generator().manual_seed(4))  # the same seeded ids
    seen = {}
    attn, _ = hf_tiny.parts(model, 0)

    def grab(module, args, kwargs):
        seen["x"] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

    handle = attn.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        handle.remove()
    expected = seen["x"].double()
    assert ((x - expected).norm() / expected.norm()).item() < 1e-6
