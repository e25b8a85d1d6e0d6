"""RoPE against formulas written here, element by element in plain Python (Su et al. 2021,
RoFormer eq. 34): pair i of a head of d elements turns by m·θ_i at position m, θ_i = base^(−2i/d).
Also against transformers' own rotary embedding for the same base, and inside the preset modules
(GQA's q and k, MLA's decoupled q_pe and shared k_pe), whose frequencies nothing else pins."""

import cmath

import pytest
import torch

from attncli import presets
from attncli.variants.common import Rope


def inv_freq_by_hand(dim, base):
    return [base ** (-(2 * i) / dim) for i in range(dim // 2)]


def rotate_by_hand(x, start, base, interleave=False):
    """x: (..., T, dim) float64. Pair i is (x[i], x[i + dim/2]) (half-split, GPT-NeoX/Llama) or
    (x[2i], x[2i+1]) (interleaved, DeepSeek checkpoints); as a complex number a + ib it is
    multiplied by e^{i·m·θ_i} for the token at position m = start + t."""
    *lead, T, dim = x.shape
    flat = x.reshape(-1, T, dim).tolist()
    half = dim // 2
    out = []
    for row in flat:
        rows = []
        for t, v in enumerate(row):
            m = start + t
            w = list(v)
            for i, theta in enumerate(inv_freq_by_hand(dim, base)):
                a_i, b_i = (2 * i, 2 * i + 1) if interleave else (i, i + half)
                z = complex(v[a_i], v[b_i]) * cmath.exp(1j * m * theta)
                w[a_i], w[b_i] = z.real, z.imag
            rows.append(w)
        out.append(rows)
    return torch.tensor(out, dtype=torch.float64).reshape(x.shape)


@pytest.mark.parametrize("dim,base", [(8, 10000.0), (16, 500000.0), (64, 10000.0), (4, 1e6)])
def test_default_frequencies_are_base_to_minus_2i_over_dim(dim, base):
    got = Rope(dim, base).inv_freq
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, torch.tensor(inv_freq_by_hand(dim, base), dtype=torch.float64), rtol=1e-14, atol=0)


@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("start", [0, 5, 1000])
def test_rotation_matches_the_complex_formula(interleave, start):
    x = torch.randn(2, 3, 6, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # (B, H, T, dim)
    rope = Rope(8, 10000.0, interleave=interleave)
    rope(x[..., :1, :], 0)  # a short table first: the longer call must grow it, not reuse it
    torch.testing.assert_close(rope(x, start), rotate_by_hand(x, start, 10000.0, interleave), rtol=1e-12, atol=1e-12)


def test_rotation_keeps_pair_norms_and_position_zero_is_identity():
    x = torch.randn(1, 1, 4, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = Rope(6, 10000.0)(x, 0)
    torch.testing.assert_close(y[..., 0, :], x[..., 0, :], rtol=0, atol=0)  # m = 0: no turn at all
    pairs = lambda t: (t[..., :3] ** 2 + t[..., 3:] ** 2)  # noqa: E731 - half-split pairs (i, i + 3)
    torch.testing.assert_close(pairs(y), pairs(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dim,base", [(8, 10000.0), (32, 500000.0)])
def test_matches_transformers_rotary_embedding_for_the_same_base(dim, base):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    config = LlamaConfig(hidden_size=4 * dim, num_attention_heads=4, head_dim=dim, rope_theta=base,
                         max_position_embeddings=256)  # fmt: skip
    hf = LlamaRotaryEmbedding(config)
    torch.testing.assert_close(hf.inv_freq.double(), Rope(dim, base).inv_freq, rtol=1e-6, atol=0)  # hf: float32
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 4, 10, dim, generator=g), torch.randn(2, 4, 10, dim, generator=g)  # (B, H, T, dim)
    start = 20
    positions = torch.arange(start, start + 10)[None].expand(2, -1)  # (B, T)
    cos, sin = hf(q, positions)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos, sin)
    rope = Rope(dim, base)
    torch.testing.assert_close(rope(q, start), q_hf, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rope(k, start), k_hf, rtol=1e-5, atol=1e-5)


def _spec(variant, preset="micro"):
    return presets.parse_variant(variant, presets.load_preset(preset))


@pytest.mark.parametrize("variant", ["gqa", "mha:rope_theta=500000", "swa"])
def test_gqa_module_rotates_q_and_k_by_the_formula(variant):
    from attncli.variants.gqa import GQAAttention

    spec = _spec(variant)
    torch.manual_seed(0)
    m = GQAAttention(spec).double()
    x = torch.randn(2, 5, spec.d_model, dtype=torch.float64)
    B, T, hd, start = 2, 5, spec.head_dim, 7
    q = m.q_proj(x).view(B, T, spec.n_heads, hd).transpose(1, 2)  # (B, h, T, hd), before RoPE
    k = m.k_proj(x).view(B, T, spec.n_kv_heads, hd).transpose(1, 2)  # (B, g, T, hd)
    with torch.no_grad():
        torch.testing.assert_close(m._q(x, start), rotate_by_hand(q.detach(), start, spec.rope_theta), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(m._kv(x, start)[0], rotate_by_hand(k.detach(), start, spec.rope_theta), rtol=1e-12,
                                   atol=1e-12)  # fmt: skip


def test_mla_module_rotates_its_decoupled_rope_parts_by_the_formula():
    from attncli.variants.mla import MLAAttention

    spec = _spec("mla:absorb=false", "small")
    torch.manual_seed(0)
    m = MLAAttention(spec).double()
    B, T, start = 1, 4, 3
    nope, rope, r = spec.qk_nope_head_dim, spec.qk_rope_head_dim, spec.kv_lora_rank
    x = torch.randn(B, T, spec.d_model, dtype=torch.float64)
    with torch.no_grad():
        q = m.q_proj(x) if spec.q_lora_rank is None else m.q_b_proj(m.q_a_layernorm(m.q_a_proj(x)))
        q_pe = q.view(B, T, spec.n_heads, nope + rope).transpose(1, 2)[..., nope:]  # (B, h, T, rope), unrotated
        k_pe = m.kv_a_proj_with_mqa(x)[..., r:]  # (B, T, rope), unrotated
        torch.testing.assert_close(m._query(x, start)[1], rotate_by_hand(q_pe, start, spec.rope_theta), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(m._latent(x, start)[..., r:], rotate_by_hand(k_pe, start, spec.rope_theta),
                                   rtol=1e-12, atol=1e-12)  # fmt: skip


def test_call_dependent_frequencies_are_asked_for_the_calls_last_position_plus_one():
    """Dynamic NTK and longrope: transformers recomputes the frequencies from max(position_ids) + 1;
    a call covering positions 5, 6, 7 asks for seq_len 8, and its angles are those positions'."""
    from attncli.variants.common import Rope

    asked = []

    def freq_at(seq_len):
        asked.append(seq_len)
        return [1.0, 0.5]  # dim 4: two frequencies

    cos, sin = Rope(4, 10000.0, freq_at=freq_at).tables(5, 3, "cpu", torch.float64)
    assert asked == [8]
    expected = torch.tensor([[5.0, 2.5], [6.0, 3.0], [7.0, 3.5]], dtype=torch.float64)  # position × frequency
    torch.testing.assert_close(cos, torch.cat([expected, expected], dim=-1).cos(), rtol=0, atol=1e-15)
    torch.testing.assert_close(sin, torch.cat([expected, expected], dim=-1).sin(), rtol=0, atol=1e-15)
