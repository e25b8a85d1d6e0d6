"""What real layers add to the GQA family, usable without a checkpoint (issue 14): q/k norms,
logit soft-capping, attention sinks, partial rotary and the softmax scale. The module's fast and
plain-math paths equal an independent float64 computation written here from the formulas; the
decode step equals the last token of a prefill; `flops` counts the elementwise work at the stated
per-element costs and FlopCounterMode sees no extra matmul."""

import math

import pytest
import torch

from attncli import cost, registry
from attncli.errors import InputError
from attncli.presets import build_spec, load_preset
from attncli.spec import GQASpec, Shape
from conftest import counted

D, H, G, HD = 64, 4, 2, 16


def spec(**fields) -> GQASpec:
    return GQASpec(family="gqa", d_model=D, n_heads=H, n_kv_heads=G, head_dim=HD, **fields)


def module(s: GQASpec, seed=0):
    """The module with every parameter random (norm weights near 1, sinks of either sign)."""
    torch.manual_seed(seed)
    m = registry.get("gqa").build(s).double()
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(1 + 0.2 * torch.randn_like(p) if "norm" in name else torch.randn_like(p) * (0.3 if name == "sinks" else 0.15))
    return m.eval()


def reference(m, x):
    """Causal attention of the module's weights, from the formulas, float64, one head at a time."""
    s = m.spec
    B, T, _ = x.shape
    rot = s.rotary_dim or HD
    inv = s.rope_theta ** (-torch.arange(0, rot, 2, dtype=torch.float64) / rot)  # (rot/2,)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv  # (T, rot/2)

    def norm(t, w):  # over the last dim
        if s.qk_norm_type == "layer":
            t = t - t.mean(-1, keepdim=True)
        return t / torch.sqrt(t.pow(2).mean(-1, keepdim=True) + s.norm_eps) * w

    def project(lin, wnorm, heads):
        p = x @ lin.weight.T  # (B, T, heads·HD)
        if s.qk_norm and s.qk_norm_over == "proj":
            p = norm(p, wnorm)
        p = p.view(B, T, heads, HD)
        if s.qk_norm and s.qk_norm_over == "head":
            p = norm(p, wnorm)
        a, b, rest = p[..., : rot // 2], p[..., rot // 2 : rot], p[..., rot:]  # half-split pairs (i, i + rot/2)
        c, sn = ang.cos()[:, None], ang.sin()[:, None]  # (T, 1, rot/2)
        return torch.cat([a * c - b * sn, b * c + a * sn, rest], dim=-1)  # (B, T, heads, HD)

    q = project(m.q_proj, getattr(m, "q_norm", None) and m.q_norm.weight, H)
    k = project(m.k_proj, getattr(m, "k_norm", None) and m.k_norm.weight, G)
    v = (x @ m.v_proj.weight.T).view(B, T, G, HD)
    scale = s.scale if s.scale is not None else 1 / math.sqrt(HD)
    out = torch.empty(B, T, H, HD, dtype=torch.float64)
    for head in range(H):
        kv = head // (H // G)
        z = torch.einsum("btd,bsd->bts", q[:, :, head], k[:, :, kv]) * scale  # (B, T, T)
        if s.softcap:
            z = s.softcap * torch.tanh(z / s.softcap)
        z = z.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -math.inf)
        e = torch.exp(z - z.amax(-1, keepdim=True))
        total = e.sum(-1, keepdim=True)
        if s.sinks:
            sink = m.sinks[head]
            total = total + torch.exp(sink - z.amax(-1, keepdim=True))
        out[:, :, head] = (e / total) @ v[:, :, kv]
    return out.reshape(B, T, H * HD) @ m.o_proj.weight.T


FIELDS = {
    "qk_norm": dict(qk_norm=True),
    "qk_norm-proj": dict(qk_norm=True, qk_norm_over="proj", norm_eps=1e-5),
    "qk_norm-layer": dict(qk_norm=True, qk_norm_type="layer"),
    "softcap": dict(softcap=0.5),  # small enough that tanh really bends the scores
    "sinks": dict(sinks=True),
    "rotary_dim": dict(rotary_dim=8),
    "scale": dict(scale=0.4),
    "all": dict(qk_norm=True, softcap=0.5, sinks=True, rotary_dim=4, scale=0.3),
}


@pytest.mark.parametrize("name", FIELDS)
def test_fast_and_math_paths_equal_the_formulas(name):
    m = module(spec(**FIELDS[name]))
    x = torch.randn(2, 9, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = reference(m, x)
    with torch.no_grad():
        for math_path in (False, True):
            y, _ = m(x, math=math_path)
            torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
        # the plain variant differs: the field really changes the output
        plain = module(spec())
        plain.load_state_dict({k: v for k, v in m.state_dict().items() if k in plain.state_dict()})
        assert not torch.allclose(plain(x)[0], expected, atol=1e-6)


@pytest.mark.parametrize("window", [None, 4])
def test_decode_step_equals_the_last_prefill_token(window):
    m = module(spec(window=window, **FIELDS["all"]))
    x = torch.randn(1, 8, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full, _ = m(x)
        cache = m.allocate_cache(1, 8)
        m.fill_cache(cache, x[:, :7])
        y = m.step(x[:, 7:], cache, 7)
    torch.testing.assert_close(y, full[:, -1:], rtol=1e-12, atol=1e-12)


def test_elementwise_flops_by_hand():
    """Prefill of n = 8 causal tokens: 36 pairs, h = 4, g = 2, hd = 16. Softmax 5·36·4 = 720;
    RoPE 3·8·hd_rot·(4+2); RMS q/k norms 4·8·16·6 = 3072; LayerNorm 6·8·16·6 = 4608; soft-cap
    3·36·4 = 432; sinks 5·8·4 = 160."""
    prefill = Shape("prefill", 8)
    rope_full = 3 * 8 * 16 * 6
    assert cost.gqa_flops(spec(), prefill).elementwise == 720 + rope_full
    assert cost.gqa_flops(spec(qk_norm=True, softcap=50.0), prefill).elementwise == 720 + rope_full + 3072 + 432
    assert cost.gqa_flops(spec(qk_norm=True, qk_norm_type="layer"), prefill).elementwise == 720 + rope_full + 4608
    assert cost.gqa_flops(spec(sinks=True, rotary_dim=8), prefill).elementwise == 720 + 3 * 8 * 8 * 6 + 160
    # decode against 7 cached tokens: 8 pairs per head, one query
    decode = Shape("decode", 7)
    assert cost.gqa_flops(spec(softcap=50.0, sinks=True), decode).elementwise == 5 * 8 * 4 + 3 * 16 * 6 + 3 * 8 * 4 + 5 * 4
    # parameters: the norms' weights (2·hd, or (h+g)·hd per head / per element) and one sink per head
    base = cost.gqa_params(spec())
    assert cost.gqa_params(spec(qk_norm=True)) == base + 32
    assert cost.gqa_params(spec(qk_norm=True, qk_norm_over="proj")) == base + 96
    assert cost.gqa_params(spec(sinks=True)) == base + 4


def test_matmul_flops_unchanged_and_counted_on_the_math_path():
    s = spec(**FIELDS["all"])
    m = module(s).float()
    x = torch.randn(1, 8, D)
    with torch.no_grad():
        measured = counted(lambda: m(x, math=True))
    # the math path scores every causal pair of its one block: n² pairs instead of n(n+1)/2
    f = cost.gqa_flops(s, Shape("prefill", 8))
    assert measured == f.proj + 2 * 2 * 64 * H * HD
    assert f.matmul == cost.gqa_flops(spec(), Shape("prefill", 8)).matmul


def test_variant_fields_without_a_checkpoint(cli):
    """`gqa:qk_norm=true,softcap=50` is a variant like any other: flops and bench rows name the fields."""
    variant = "gqa:qk_norm=true,softcap=50,sinks=true,rotary_dim=32"
    r = cli("flops", variant, "-p", "small", "-s", 64, "--layers", 1, "--json", "-")
    assert r.code == 0, r.err
    row = r.rows()[0]
    assert (row["qk_norm"], row["softcap"], row["sinks"], row["rotary_dim"]) == ("rms", 50.0, True, 32)
    assert row["label"] == "gqa-kv2-qknorm-cap50-sinks-rot32"
    s = build_spec("gqa", load_preset("small"), {"qk_norm": True, "softcap": 50, "sinks": True, "rotary_dim": 32}, "v")
    assert row["elementwise_flops"] == cost.gqa_flops(s, Shape("prefill", 64)).elementwise
    b = cli("bench", variant, "-p", "small", "-s", 16, "--device", "cpu", "--min-time", 0, "--json", "-")
    assert b.code == 0, b.err
    bench_row = b.rows()[0]
    assert {k: bench_row[k] for k in ("qk_norm", "softcap", "sinks", "rotary_dim")} == \
        {k: row[k] for k in ("qk_norm", "softcap", "sinks", "rotary_dim")}  # fmt: skip
    assert bench_row["status"] == "ok" and bench_row["err_rel_l2"] < 1e-5


@pytest.mark.parametrize("fields, message", [
    (dict(rotary_dim=7), "rotary_dim: 7 must be even"),
    (dict(rotary_dim=32), "rotary_dim: 32 exceeds head_dim 16"),
    (dict(rotary_dim=8, position="none"), "rotary_dim: is set but position is none"),
    (dict(qk_norm=True, qk_norm_type="layer", qk_norm_over="proj"), "qk_norm_type: layer norms each head"),
    (dict(qk_norm_over="rows"), "qk_norm_over: 'rows' is not one of head, proj"),
    (dict(softcap=0.0), "softcap: 0.0 must be positive"),
    (dict(scale=-1.0), "scale: -1.0 must be positive"),
])  # fmt: skip
def test_bad_fields_name_the_field(fields, message):
    with pytest.raises(InputError) as e:
        spec(**fields)
    assert e.value.what.startswith(message), e.value.what


def test_cross_refuses_the_self_attention_fields(cli):
    r = cli("flops", "cross:softcap=50", "-p", "small")
    assert r.code == 2 and "softcap: is a self-attention field (gqa); cross does not take it" in r.err
