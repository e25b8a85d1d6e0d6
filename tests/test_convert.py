"""`attncli convert` (acceptance 2 and 3): mean-pooling KV heads that are already equal within
groups loses nothing, the error grows as the KV heads fall, MHA2MLA at full rank reproduces a
layer without RoPE (and one whose RoPE pairs are all kept), the KV bytes and parameters match
hand counts and the built modules. Checkpoints are written by hand with safetensors (Llama
tensor names), so transformers is not needed here."""

import dataclasses
import json

import pytest

pytest.importorskip("safetensors", reason="attncli reads checkpoints with safetensors")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from attncli import convert  # noqa: E402
from attncli.weights import Checkpoint  # noqa: E402

D, HD, VOCAB = 32, 8, 40


def make(folder, n_heads=4, n_kv=4, layers=2, bias=False, seed=0, edit=None):
    """A Llama-style checkpoint with random weights (float32); `edit(tensors)` may change them."""
    gen = torch.Generator().manual_seed(seed)
    t = {"model.embed_tokens.weight": torch.randn(VOCAB, D, generator=gen)}
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(D, generator=gen)
        for name, rows in (("q_proj", n_heads * HD), ("k_proj", n_kv * HD), ("v_proj", n_kv * HD)):
            t[p + f"self_attn.{name}.weight"] = 0.3 * torch.randn(rows, D, generator=gen)
            if bias:
                t[p + f"self_attn.{name}.bias"] = 0.3 * torch.randn(rows, generator=gen)
        t[p + "self_attn.o_proj.weight"] = 0.3 * torch.randn(D, n_heads * HD, generator=gen)
        if bias:
            t[p + "self_attn.o_proj.bias"] = 0.3 * torch.randn(D, generator=gen)
    if edit:
        edit(t)
    folder.mkdir()
    save_file(t, str(folder / "model.safetensors"))
    config = {"model_type": "llama", "hidden_size": D, "num_attention_heads": n_heads, "num_key_value_heads": n_kv,
              "num_hidden_layers": layers, "head_dim": HD, "vocab_size": VOCAB, "rms_norm_eps": 1e-6, "attention_bias": bias,
              "rope_theta": 10000.0, "max_position_embeddings": 256, "torch_dtype": "float32"}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def run(cli, folder, *args):
    r = cli("convert", folder, "-s", 24, *args, "--json", "-")
    assert r.code == 0, r.err
    return r.rows()


def pair_heads(t):
    """Make KV heads 2j+1 equal to heads 2j (weights and biases): MHA that is GQA in disguise."""
    for name, value in t.items():
        if ".k_proj." in name or ".v_proj." in name:
            heads = value.view(-1, HD, *value.shape[1:])  # (g, hd, …)
            heads[1::2] = heads[0::2]


def test_pooling_heads_that_are_equal_within_groups_is_exact(tmp_path, cli):
    equal = make(tmp_path / "equal", bias=True, edit=pair_heads)
    row = run(cli, equal, "--to", "gqa:n_kv_heads=2")[0]
    assert row["label"] == "llama-L0-gqa-kv2" and row["method"] == "gqa-mean-pool" and row["n_kv_heads"] == 2
    assert row["conv_err_rel_l2"] <= 1e-12 and row["conv_err_max_abs"] <= 1e-12
    assert row["conv_err_cos"] == pytest.approx(1.0, abs=1e-12)
    # by hand: 2 · KV heads · head_dim · 4 bytes (float32, the checkpoint's dtype); weights W_q, W_k, W_v, W_o
    assert (row["kv_bytes_per_token_before"], row["kv_bytes_per_token"], row["kv_ratio_vs_base"]) == (2 * 4 * 8 * 4, 2 * 2 * 8 * 4, 0.5)
    assert (row["params_before"], row["params"]) == (32 * 32 * 4, 32 * 32 * 2 + 2 * 32 * 16)
    # the same conversion of heads that differ is far from exact: the check above can fail
    differ = run(cli, make(tmp_path / "random", bias=True), "--to", "gqa:n_kv_heads=2")[0]
    assert differ["conv_err_rel_l2"] > 1e-2


def test_error_grows_as_kv_heads_fall(tmp_path, cli, capsys):
    folder = make(tmp_path / "mha8", n_heads=8, n_kv=8, layers=2, seed=3)
    rows = run(cli, folder, "--layers", "all", *[a for G in (8, 4, 2, 1) for a in ("--to", f"gqa:n_kv_heads={G}")])
    errors = [row["conv_err_rel_l2"] for row in rows]
    with capsys.disabled():  # reported, not asserted as numbers
        print("\nmean-pooled KV heads, random 8-head checkpoint, 2 layers: rel L2 vs original =",
              ", ".join(f"G={r['n_kv_heads']}: {e:.3g}" for r, e in zip(rows, errors)))  # fmt: skip
    assert errors[0] <= 1e-12  # G = n_kv_heads: nothing pooled
    assert errors[1] < errors[2] < errors[3], errors
    assert [row["layers"] for row in rows] == [2] * 4 and rows[3]["family"] == "mqa"


def test_layers_all_is_the_mean_over_the_layers(tmp_path, cli):
    folder = make(tmp_path / "m", layers=3, seed=5)
    per_layer = [run(cli, folder, "--layer", i, "--to", "mqa")[0] for i in range(3)]
    both = run(cli, folder, "--layers", "all", "--to", "mqa")[0]
    assert both["label"] == "llama-L0..2-mqa" and both["layer"] is None and both["layers"] == 3
    assert both["conv_err_rel_l2"] == pytest.approx(sum(r["conv_err_rel_l2"] for r in per_layer) / 3, rel=1e-12)
    assert both["conv_err_cos"] == pytest.approx(sum(r["conv_err_cos"] for r in per_layer) / 3, rel=1e-12)
    assert both["conv_err_max_abs"] == max(r["conv_err_max_abs"] for r in per_layer)
    assert both["kv_bytes_per_token"] == 3 * per_layer[0]["kv_bytes_per_token"]


def test_pool_heads_is_the_mean_of_each_group():
    w = torch.randn(6 * 4, 5, dtype=torch.float64)  # 6 KV heads of 4 rows
    pooled = convert.pool_heads(w, 6, 2, 4)  # groups {0, 1, 2}, {3, 4, 5}
    for j in range(2):
        expected = sum(w[(3 * j + m) * 4 : (3 * j + m + 1) * 4] for m in range(3)) / 3
        torch.testing.assert_close(pooled[j * 4 : (j + 1) * 4], expected, rtol=0, atol=1e-15)


def source_layer(folder, dtype, position="rope"):
    ckpt = Checkpoint(str(folder))
    spec = dataclasses.replace(ckpt.specs(0)[0], position=position)
    return ckpt, ckpt.module(spec, 0, dtype=dtype)


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("bias", [False, True])
def test_mla_full_rank_of_a_layer_without_rope_reproduces_it_fp32(tmp_path, bias):
    ckpt, src = source_layer(make(tmp_path / "m", n_heads=4, n_kv=2, bias=bias), torch.float32, position="none")
    x = torch.randn(2, 16, D, generator=torch.Generator().manual_seed(1))
    full = convert.full_rank(ckpt.config, 0)  # min(32, 2 · 2 · 8) = 32
    with torch.no_grad():
        y_orig, _ = src(x, math=True)
        y_full, _ = convert.to_mla(src, full, 0)(x)
        y_low, _ = convert.to_mla(src, full // 4, 0)(x)
    assert full == 32 and rel(y_full, y_orig) <= 1e-5
    assert rel(y_low, y_orig) > 1e-2  # a truncated latent is not exact: the check above can fail


@pytest.mark.parametrize("bias", [False, True])
def test_mla_keeping_every_rope_pair_at_full_rank_reproduces_a_rope_layer(tmp_path, cli, bias):
    folder = make(tmp_path / "m", n_heads=4, n_kv=2, bias=bias)
    full = 2 * (2 * HD - HD)  # only the values are factored: g · (2·hd − P) = 16 < d_model
    row = run(cli, folder, "--to", f"mla:kv_lora_rank={full},rope_dims={HD}")[0]
    assert row["conv_err_rel_l2"] <= 1e-10 and row["method"] == "mha2mla-svd-joint"
    # dropping RoPE from pairs changes the function even at full rank (no fine-tuning here)
    partial = run(cli, folder, "--to", f"mla:kv_lora_rank={convert.full_rank(Checkpoint(str(folder)).config, 2)},rope_dims=2")[0]
    assert partial["conv_err_rel_l2"] > 1e-3


def test_mla_counts_match_the_built_module_and_hand_counts(tmp_path, cli):
    folder = make(tmp_path / "m", n_heads=4, n_kv=2)
    ckpt, src = source_layer(folder, torch.float64)
    target = convert.parse_target("mla:kv_lora_rank=12,rope_dims=4", ckpt.config)
    module = convert.to_mla(src, 12, 4)
    weights = sum(m.weight.numel() for m in (module.q_proj, module.k_rope, module.kv_down, module.kv_up, module.o_proj))
    assert convert.params(ckpt.config, target) == weights == 32 * 32 + 32 * 2 * 4 + 32 * 12 + 12 * 2 * (16 - 4) + 32 * 32
    assert convert.kv_elements(ckpt.config, target) == module.cache_elements_per_token() == 12 + 2 * 4
    # S_high: the two fastest pairs (0 and 1) stay rotated, i.e. elements 0, 1 and 4, 5 of each half-split head
    assert module.rope_idx == [0, 1, 4, 5] and module.rope.inv_freq[2:].eq(0).all() and module.rope.inv_freq[:2].gt(0).all()
    row = run(cli, folder, "--to", "mla:kv_lora_rank=12,rope_dims=4")[0]
    assert (row["label"], row["kv_lora_rank"], row["qk_rope_head_dim"], row["qk_nope_head_dim"], row["v_head_dim"]) == (
        "llama-L0-mla-r12-rope4", 12, 4, 4, 8)
    assert (row["kv_bytes_per_token"], row["params"]) == ((12 + 2 * 4) * 4, weights)


def test_default_targets_are_every_kv_head_count_mean_pooling_reaches(tmp_path, cli):
    rows = run(cli, make(tmp_path / "m", n_heads=8, n_kv=4, layers=1))
    assert [row["label"] for row in rows] == ["llama-L0-gqa-kv2", "llama-L0-mqa"]


@pytest.mark.parametrize("args, message", [
    (["--to", "gqq"], "--to: unknown target 'gqq'; did you mean 'gqa'?"),
    (["--to", "gqa:n_kv_heads=3"], "--to gqa:n_kv_heads=3: n_kv_heads: 3 does not divide the checkpoint's num_key_value_heads 4"),
    (["--to", "gqa:n_kv_heads=8"], "--to gqa:n_kv_heads=8: n_kv_heads: 8 must be between 1 and"),
    (["--to", "gqa"], "--to gqa: missing n_kv_heads"),
    (["--to", "mqa:n_kv_heads=1"], "--to mqa:n_kv_heads=1: mqa takes no fields"),
    (["--to", "mla:kv_lora_rank=99"], "--to mla:kv_lora_rank=99: kv_lora_rank: 99 must be between 1 and the full rank 32"),
    (["--to", "mla:kv_lora_rank=8,rope_dims=3"], "--to mla:kv_lora_rank=8,rope_dims=3: rope_dims: 3 must be even"),
    (["--to", "mla:rank=8"], "--to mla:rank=8: unknown key 'rank'"),
    (["--dtype", "bfloat16"], "--dtype: bfloat16 is not float64 or float32"),
    (["--layers", "5"], "--layers: layer 5 is out of range"),
])  # fmt: skip
def test_convert_input_errors_are_one_line(tmp_path, cli, args, message):
    r = cli("convert", make(tmp_path / "m"), *args)
    assert r.code == 2 and r.err.count("\n") == 1 and r.err.startswith(f"attncli: {message}"), r.err


def test_convert_refuses_an_mla_checkpoint(tmp_path, cli):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "deepseek_v3", "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
        "kv_lora_rank": 8, "q_lora_rank": None, "qk_nope_head_dim": 4, "qk_rope_head_dim": 2, "v_head_dim": 4}))
    save_file({"model.layers.0.self_attn.q_proj.weight": torch.zeros(12, 32)}, str(folder / "model.safetensors"))
    r = cli("convert", folder)
    assert r.code == 2 and r.err == f"attncli: {folder}: convert takes an MHA/GQA layer; this checkpoint (deepseek_v3) is MLA already\n"
