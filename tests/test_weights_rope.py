"""RoPE as checkpoints define it: the scaled frequencies (llama3, yarn, linear) against
transformers' own `ROPE_INIT_FUNCTIONS` at released models' settings, and the interleaved layout
against the half-split one."""

import math

import pytest
import torch

from attncli import rope_scaling
from attncli.errors import InputError
from attncli.variants.common import Rope

# Released configs' RoPE fields (config.json on the Hub): Llama-3.1-8B, DeepSeek-V3, Qwen2.5 with YaRN.
LLAMA31 = ({"rope_theta": 500000.0, "max_position_embeddings": 131072,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192}}, 128)  # fmt: skip
DEEPSEEK_V3 = ({"rope_theta": 10000, "max_position_embeddings": 163840,
                "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                                 "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}}, 64)  # fmt: skip
QWEN25_YARN = ({"rope_theta": 1000000.0, "max_position_embeddings": 32768,
                "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}, 128)  # fmt: skip
LINEAR = ({"rope_theta": 10000.0, "rope_scaling": {"type": "linear", "factor": 2.0}}, 64)
CASES = {"llama3.1": LLAMA31, "deepseek-v3-yarn": DEEPSEEK_V3, "qwen2.5-yarn": QWEN25_YARN, "linear": LINEAR}


def transformers_rope(config: dict, dim: int):
    """(inv_freq, attention_factor) from transformers' implementation (float32)."""
    transformers = pytest.importorskip("transformers", minversion="5",
                                       reason="the reference RoPE is transformers' >= 5 (pip install -e '.[dev]')")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    fields = {k: v for k, v in config.items() if k != "rope_scaling"}
    params = {**config["rope_scaling"], "rope_theta": config["rope_theta"]}
    params["rope_type"] = params.pop("type", params.get("rope_type"))
    hf = transformers.LlamaConfig(hidden_size=dim * 4, num_attention_heads=4, head_dim=dim, rope_parameters=params, **fields)
    return ROPE_INIT_FUNCTIONS[params["rope_type"]](hf, "cpu")


@pytest.mark.parametrize("name", CASES)
def test_scaled_frequencies_equal_transformers(name):
    config, dim = CASES[name]
    rope = rope_scaling.parse(config, dim, "config.json")
    inv, factor = transformers_rope(config, dim)
    ours = torch.tensor(rope_scaling.inv_freq(rope), dtype=torch.float64)
    assert torch.allclose(ours, inv.double(), rtol=2e-6, atol=0)  # transformers computes in float32
    assert rope_scaling.attention_factor(rope) == pytest.approx(factor, rel=1e-7)


def test_formulas_by_hand():
    """A few values worked from the published formulas, independently of any implementation."""
    # llama3 (Llama 3.1 `apply_scaling`): θ_0 = 1 has wavelength 2π < 8192/4: unchanged; the last pair
    # (wavelength 2π·500000^(126/128) ≈ 1.3e6 > 8192) is divided by 8.
    rope = rope_scaling.parse(*LLAMA31, "c")
    inv = rope_scaling.inv_freq(rope)
    assert inv[0] == 1.0
    assert inv[-1] == pytest.approx(500000 ** (-126 / 128) / 8, rel=1e-15)
    # DeepSeek-V3 YaRN: m(40, 1) = 0.1·ln 40 + 1; cos/sin factor m(40,1)/m(40,1) = 1; softmax × m².
    ds = rope_scaling.parse(*DEEPSEEK_V3, "c")
    m = 0.1 * math.log(40) + 1
    assert rope_scaling.attention_factor(ds) == 1.0
    assert rope_scaling.softmax_scale_factor(ds) == pytest.approx(m * m, rel=1e-15)
    # Qwen2.5 YaRN without mscale: cos/sin × (0.1·ln 4 + 1); the slowest pair is interpolated (÷ 4)
    qwen = rope_scaling.parse(*QWEN25_YARN, "c")
    assert rope_scaling.attention_factor(qwen) == pytest.approx(0.1 * math.log(4) + 1, rel=1e-15)
    assert rope_scaling.inv_freq(qwen)[-1] == pytest.approx(1e6 ** (-126 / 128) / 4, rel=1e-15)
    assert rope_scaling.softmax_scale_factor(qwen) == 1.0


@pytest.mark.parametrize("rope_fields, message", [
    ({"rope_scaling": {"type": "proportional", "factor": 2.0}}, "rope_scaling.type: unsupported rope_scaling type 'proportional'"),
    ({"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4}}, "rope_parameters.short_factor: must list 32 positive numbers"),
    ({"rope_scaling": {"type": "dynamic"}}, "rope_scaling.factor: missing"),
    ({"rope_scaling": {"type": "yarn"}}, "rope_scaling.factor: missing"),
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1}}, "rope_scaling.high_freq_factor: missing"),
    ({"rope_theta": "big"}, "rope_theta: 'big' must be a number above 1"),
    ({"partial_rotary_factor": 1.5}, "partial_rotary_factor: 1.5 must be a number in (0, 1]"),
    ({"partial_rotary_factor": 0.3}, "partial_rotary_factor: 0.3 × head_dim 64 = 19.2 rotated elements"),
])  # fmt: skip
def test_unsupported_or_broken_rope_fields_name_the_field(rope_fields, message):
    with pytest.raises(InputError) as e:
        rope_scaling.parse({"max_position_embeddings": 4096, **rope_fields}, 64, "config.json")
    assert e.value.where == "config.json" and e.value.what.startswith(message)


def test_interleaved_rotation_is_the_half_split_one_on_permuted_elements():
    """DeepSeek's pairs (2i, 2i+1) rotated by θ_i equal Llama's pairs (i, i + d/2) after moving
    element 2i to i and 2i+1 to i + d/2 (the permutation transformers' DeepSeek code applies)."""
    dim, T = 8, 5
    x = torch.randn(2, 3, T, dim, dtype=torch.float64)
    perm = torch.cat([torch.arange(0, dim, 2), torch.arange(1, dim, 2)])  # interleaved → half-split
    inv = [0.9, 0.3, 0.1, 0.01]
    a = Rope(dim, 10000.0, inv_freq=inv, attention_factor=1.3, interleave=True)(x, 2)
    b = Rope(dim, 10000.0, inv_freq=inv, attention_factor=1.3, interleave=False)(x[..., perm], 2)
    torch.testing.assert_close(a[..., perm], b, rtol=0, atol=1e-15)
    # and by hand: pair 0 of position 2 turns by 2·0.9 radians, scaled by 1.3
    c, s = math.cos(1.8) * 1.3, math.sin(1.8) * 1.3
    x0, x1 = x[0, 0, 0, 0].item(), x[0, 0, 0, 1].item()
    assert a[0, 0, 0, 0].item() == pytest.approx(x0 * c - x1 * s, abs=1e-14)
    assert a[0, 0, 0, 1].item() == pytest.approx(x1 * c + x0 * s, abs=1e-14)
