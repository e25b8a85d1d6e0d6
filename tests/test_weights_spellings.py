"""Config spellings (issue 14, acceptance 2): each config.json below is one transformers 5 runs
(and reads in a way that changes, or does not change, the attention output). attncli reads it as
transformers does: its layer's output equals the output of transformers' own module, loaded by
`from_pretrained` from the same edited folder, on the same input.

The first two were silently wrong before (attncli read another RoPE, or another pair layout); the
last three were refused although transformers runs them."""

import json

import pytest

pytest.importorskip("transformers", minversion="5",
                    reason="the real-weights tests build checkpoints with transformers >= 5 (pip install -e '.[dev]')")
pytest.importorskip("safetensors", reason="attncli reads checkpoints with safetensors")

import torch  # noqa: E402

import hf_tiny  # noqa: E402
from attncli.weights import Checkpoint  # noqa: E402

# What Qwen's model cards tell users to add to config.json for long inputs (YaRN), at a tiny scale.
QWEN_YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}


def rel(a, b) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def agree(folder, layer=0, tokens=11):
    """attncli's fast and plain-math outputs vs transformers' reading of the same folder (fp32)."""
    model = hf_tiny.reload(folder)
    ckpt = Checkpoint(str(folder))
    x = torch.randn(2, tokens, hf_tiny.HIDDEN, generator=torch.Generator().manual_seed(7))
    y_ref = hf_tiny.attention_output(model, layer, x)
    worst = 0.0
    for spec in ckpt.specs(layer):
        module = ckpt.module(spec, layer)
        with torch.no_grad():
            worst = max(worst, rel(module(x)[0], y_ref), rel(module(x, math=True)[0], y_ref))
    return ckpt, model, worst


def test_rope_scaling_beside_rope_parameters_wins(tmp_path):
    """transformers 5 resaves RoPE as rope_parameters (theta 1e6 here); a rope_scaling added beside
    it wins, and its missing rope_theta falls back on the class default (10000), not on the
    theta inside rope_parameters (`convert_rope_params_to_dict`)."""
    hf_tiny.build("qwen2", tmp_path, rope_parameters={"rope_type": "default", "rope_theta": 1e6})
    config = hf_tiny.edit_config(tmp_path, rope_scaling=QWEN_YARN)
    assert config["rope_parameters"]["rope_theta"] == 1e6  # still there, and ignored
    ckpt, model, worst = agree(tmp_path)
    assert model.config.rope_parameters["rope_type"] == "yarn"  # what transformers runs
    assert ckpt.config.rope.type == "yarn" and ckpt.config.rope.theta == 10000.0
    assert worst <= 1e-5


def test_empty_rope_scaling_leaves_rope_parameters_in_charge(tmp_path):
    hf_tiny.build("qwen2", tmp_path, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 5e4})
    hf_tiny.edit_config(tmp_path, rope_scaling={})
    ckpt, _, worst = agree(tmp_path)
    assert ckpt.config.rope.type == "linear" and ckpt.config.rope.theta == 5e4
    assert worst <= 1e-5


def test_top_level_rope_theta_feeds_a_rope_scaling_without_one(tmp_path):
    hf_tiny.build("llama", tmp_path, rope_parameters={"rope_type": "default", "rope_theta": 1e6})
    hf_tiny.edit_config(tmp_path, rope_scaling={"type": "linear", "factor": 3.0}, rope_theta=2e5)
    ckpt, _, worst = agree(tmp_path, layer=1)
    assert ckpt.config.rope.theta == 2e5 and ckpt.config.rope.params["factor"] == 3.0
    assert worst <= 1e-5


def test_deepseek_v2_interleaves_whatever_rope_interleave_says(tmp_path):
    """transformers' DeepSeek-V2 rotates interleaved pairs (a complex product) and never reads
    rope_interleave; a stray `false` (copied from a V3 config) changes nothing."""
    hf_tiny.build("deepseek_v2", tmp_path)
    hf_tiny.edit_config(tmp_path, rope_interleave=False)
    ckpt, _, worst = agree(tmp_path)
    assert ckpt.config.rope.interleave
    assert worst <= 1e-5


def test_deepseek_v3_reads_rope_interleave(tmp_path):
    """The contrast: V3's module reads it, and a false one means the half-split layout."""
    hf_tiny.build("deepseek_v3", tmp_path)
    hf_tiny.edit_config(tmp_path, rope_interleave=False)
    ckpt, _, worst = agree(tmp_path)
    assert not ckpt.config.rope.interleave
    assert worst <= 1e-5


def test_llama_ignores_a_stray_sliding_window(tmp_path, cli):
    """LlamaConfig has no window and its module attends to every earlier token: a stray
    sliding_window shorter than the input is neither applied nor a reason to refuse."""
    hf_tiny.build("llama", tmp_path)
    hf_tiny.edit_config(tmp_path, sliding_window=4)
    ckpt, _, worst = agree(tmp_path, tokens=11)
    assert ckpt.config.sliding_window is None and worst <= 1e-5
    r = cli("bench", "--weights", tmp_path, "-s", 11, "--device", "cpu", "--min-time", 0, "--json", "-")
    assert r.code == 0, r.err


def test_mistral_ignores_a_stray_attention_bias(tmp_path):
    """MistralAttention builds its projections with bias=False whatever attention_bias says."""
    hf_tiny.build("mistral", tmp_path)
    hf_tiny.edit_config(tmp_path, attention_bias=True)
    ckpt, _, worst = agree(tmp_path)
    assert ckpt.config.biases == () and worst <= 1e-5


def test_mistral_without_sliding_window_gets_the_class_default(tmp_path):
    """A Mistral config.json without the key runs with MistralConfig's 4096-token window."""
    hf_tiny.build("mistral", tmp_path)
    hf_tiny.edit_config(tmp_path, sliding_window=None)  # removes the key
    assert "sliding_window" not in json.loads((tmp_path / "config.json").read_text())
    assert hf_tiny.reload(tmp_path).config.sliding_window == 4096
    assert Checkpoint(str(tmp_path)).config.sliding_window == 4096


def test_qwen2_moe_without_qkv_bias(tmp_path):
    """Qwen2MoeAttention biases q/k/v only under qkv_bias (default true): false means no biases."""
    hf_tiny.build("qwen2_moe", tmp_path, qkv_bias=False)
    ckpt, _, worst = agree(tmp_path)
    assert ckpt.config.biases == () and worst <= 1e-5
    hf_tiny.build("qwen2_moe", tmp_path / "with", qkv_bias=True)
    ckpt, _, worst = agree(tmp_path / "with")
    assert ckpt.config.biases == ("q_proj", "k_proj", "v_proj") and worst <= 1e-5


def test_top_level_original_max_position_embeddings_wins(tmp_path):
    """A top-level original_max_position_embeddings (as converted configs carry) overrides the
    one inside the scaling mapping, and a mapping without one does not fall back on
    max_position_embeddings: transformers' YaRN init re-standardises the built config, where the
    key is an attribute. Here: 32 beside the mapping's 128, max_position_embeddings 256."""
    hf_tiny.build("llama", tmp_path)
    hf_tiny.edit_config(tmp_path, rope_parameters=None, original_max_position_embeddings=32,
                        rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128})  # fmt: skip
    ckpt, model, worst = agree(tmp_path, layer=1)
    assert model.config.rope_parameters["original_max_position_embeddings"] == 32  # what the model ran with
    assert ckpt.config.rope.params["original_max_position_embeddings"] == 32
    assert worst <= 1e-5
