"""State-space models from config.json (tests/fixtures/hf, sources in SOURCES.md): the pure ones
vLLM serves attention-free (Mamba, Falcon-Mamba, Mamba-2 / Codestral Mamba) and the Bamba hybrid.
Every byte figure is computed here by hand from the published fields.

vLLM's state shapes (vllm/model_executor/layers/mamba/mamba_utils.py, MambaStateShapeCalculator),
per layer and sequence on one of TP ranks:
- Mamba-1 (mamba1_state_shape): conv (intermediate / TP) × (conv_kernel − 1) and temporal
  (intermediate / TP) × state_size, intermediate = config.intermediate_size (MambaMixer);
- Mamba-2 (mamba2_state_shape): conv ((intermediate + 2·g·state) / TP) × (conv_kernel − 1) and
  temporal (heads / TP) × head_dim × state, with g = n_groups, raised to TP when TP does not divide
  it (extra_groups_for_head_shards; MambaMixer2 allows that only from n_groups 1).
Both at the model dtype: mamba_cache_dtype `auto` is the model dtype and mamba_ssm_cache_dtype `auto`
follows it (MambaStateDtypeCalculator._mamba_state_dtype); no model config hook of these types
changes it (MambaModelConfig, HybridAttentionMambaModelConfig), and the KV cache dtype (fp8) is a
different setting, so an fp8 KV cache leaves the state in bfloat16 (attncli's model dtype for fp8).
A layer with attention caches K and V: 2 × KV heads / TP × head_dim × tokens × bytes per element,
plus under fp8 vLLM's float32 k_scale and v_scale per layer.
"""

from pathlib import Path

import pytest

from attncli import hfconfig
from attncli.errors import InputError
from attncli.presets import build_spec

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf"
BF16 = 2


def mamba1(intermediate, state, conv):
    return lambda tp: intermediate // tp * (conv - 1) + intermediate // tp * state


def mamba2(intermediate, groups, state, conv, heads, head_dim):
    def elements(tp):
        g = groups if groups % tp == 0 else tp  # groups + (tp − groups) extra
        return (intermediate + 2 * g * state) // tp * (conv - 1) + heads // tp * head_dim * state

    return elements


# (Mamba layers, state elements by TP, attention layers, KV heads, head_dim, a TP that divides)
MODELS = {
    # state-spaces/mamba-130m-hf: 24 layers, intermediate_size 1536 (= expand 2 × hidden 768), state 16, conv 4
    "mamba-130m-hf": (24, mamba1(1536, 16, 4), 0, None, None, 8),
    # tiiuae/falcon-mamba-7b: 64 layers, intermediate_size 8192 as published (expand 16 × 4096 would be 65536,
    # but transformers keeps the given intermediate_size and vLLM's MambaMixer reads it), state 16, conv 4
    "falcon-mamba-7b": (64, mamba1(8192, 16, 4), 0, None, None, 8),
    # mistralai/Mamba-Codestral-7B-v0.1: 64 layers, expand 2 × 4096 = 8192 = 128 heads × 64, 8 groups,
    # state 128, conv 4; TP 8 divides the 8 groups
    "mamba-codestral-7b-v0.1": (64, mamba2(8192, 8, 128, 4, 128, 64), 0, None, None, 8),
    # Bamba-9B: attention at layers 9, 18, 27 (8 KV heads of 4096 / 32 = 128), Mamba-2 on the other 29:
    # mamba_expand 2 × 4096 = 8192 = 128 heads × 64, 1 group (replicated to 8 at TP 8), state 128, conv 4
    "bamba-9b": (29, mamba2(8192, 1, 128, 4, 128, 64), 3, 8, 128, 8),
}
CASES = [(m, L, tp, dt) for m in MODELS for L in (1024, 131072) for tp in (1, MODELS[m][5])
         for dt in ("bfloat16", "fp8")]  # fmt: skip


def by_hand(model, seq_len, tp, dtype):
    """(KV data bytes, state bytes, scale bytes or None) for one sequence on one GPU."""
    n_mamba, elements, n_attn, kv, head_dim, _ = MODELS[model]
    element = 2 if dtype == "bfloat16" else 1
    data = n_attn * 2 * (max(1, kv // tp) * head_dim * seq_len * element if n_attn else 0)
    state = n_mamba * elements(tp) * BF16  # bfloat16 whatever the KV cache dtype
    scales = n_attn * 2 * 4 if dtype == "fp8" else None  # per-tensor k_scale, v_scale per attention layer
    return data, state, scales


@pytest.mark.parametrize("model,seq_len,tp,dtype", CASES, ids=lambda x: str(x))
def test_state_space_configs_sized_by_hand(cli, model, seq_len, tp, dtype):
    r = cli("kv-memory", "--hf-config", FIXTURES / model, "-s", str(seq_len), "--tp", str(tp), "--dtype", dtype,
            "--json", "-")  # fmt: skip
    assert r.code == 0, r.err
    row = r.rows()[-1]
    data, state, scales = by_hand(model, seq_len, tp, dtype)
    assert row["seq_len"] == seq_len  # the length asked, though a pure model holds none of it
    assert row["kv_cache_bytes"] == data + state
    assert row["ssm_state_bytes"] == state
    assert row["kv_scale_bytes"] == (scales if dtype == "fp8" else None)
    assert row["kv_bytes_per_token"] == (data // seq_len if data else 0)


def test_the_figures_in_round_numbers():
    """What the tables print, from the hand formulas: the pure models hold the same bytes at any length."""
    mib = 2**20
    assert by_hand("mamba-130m-hf", 1024, 1, "bfloat16")[1] == 24 * (1536 * 3 + 1536 * 16) * 2 == 1_400_832  # 1.34 MiB
    assert by_hand("falcon-mamba-7b", 1024, 1, "bfloat16")[1] == 64 * 8192 * 19 * 2 == 19 * mib
    codestral = 64 * ((8192 + 2 * 8 * 128) * 3 + 128 * 64 * 128) * 2
    assert by_hand("mamba-codestral-7b-v0.1", 131072, 1, "bfloat16")[1] == codestral == 138_149_888  # 132 MiB
    assert by_hand("mamba-codestral-7b-v0.1", 131072, 8, "bfloat16")[1] == codestral // 8  # groups split 8 ways
    data, state, _ = by_hand("bamba-9b", 131072, 1, "bfloat16")
    assert (data, state) == (3 * 2 * 8 * 128 * 131072 * 2, 29 * ((8192 + 2 * 128) * 3 + 128 * 64 * 128) * 2)
    assert data == 1536 * mib and round(state / mib, 1) == 59.4
    # Falcon-Mamba read as expand × hidden_size would hold 8× its state
    assert 64 * (16 * 4096) * 19 * 2 == 8 * by_hand("falcon-mamba-7b", 1, 1, "bfloat16")[1]


def test_layer_kinds_and_per_layer_rows(cli):
    pure = cli("kv-memory", "--hf-config", FIXTURES / "mamba-codestral-7b-v0.1", "-s", "4096", "--per-layer",
               "--json", "-").rows()  # fmt: skip
    assert [(r["label"], r["layer_kind"], r["layers"], r["cache_tokens"]) for r in pure] == [("mamba2", "64 mamba", 64, 0)]
    assert pure[0]["kv_heads_from"].startswith("none (a state-space model") and pure[0]["kv_heads_per_gpu"] is None
    assert pure[0]["max_position"] is None and pure[0]["beyond_max_position"] is None  # Mamba2Config has no limit
    bamba = cli("kv-memory", "--hf-config", FIXTURES / "bamba-9b", "-s", "4096", "--per-layer", "--json", "-").rows()
    assert [(r["label"], r["layer_kind"], r["layers"]) for r in bamba] == [
        ("mamba2", "mamba", 29), ("gqa-kv8", "full", 3), ("gqa-kv8", "29 mamba + 3 full", 32)]  # fmt: skip
    assert bamba[0]["kv_cache_bytes"] == bamba[0]["ssm_state_bytes"] == bamba[2]["ssm_state_bytes"]
    assert bamba[1]["kv_cache_bytes"] == 3 * 2 * 8 * 128 * 4096 * 2 and bamba[1]["ssm_state_bytes"] is None
    p = hfconfig.load(FIXTURES / "bamba-9b")
    assert [i for i, k in enumerate(p.model.layer_types) if k == "full"] == [9, 18, 27]


def test_a_budget_fits_any_length_and_counts_sequences(cli):
    """Nothing grows with the context: every length fits; the batch is the budget over one state."""
    row = cli("kv-memory", "--hf-config", FIXTURES / "mamba-codestral-7b-v0.1", "-s", "131072", "--budget", "1GiB",
              "--json", "-").rows()[0]  # fmt: skip
    assert row["fits"] is True and row["max_seq_len"] is None
    assert row["max_batch"] == 2**30 // 138_149_888 == 7


def test_defaults_of_the_config_classes_size_a_sparse_config():
    """Mamba2Config's defaults are Codestral Mamba's sizes; BambaConfig's without attn_layer_indices
    make every layer Mamba-2, with mamba_d_state 256 (Bamba-9B publishes 128)."""
    sparse = hfconfig.normalise({"model_type": "mamba2"}, "c", "t").model
    assert sparse.mamba == hfconfig.load(FIXTURES / "mamba-codestral-7b-v0.1").model.mamba
    assert sparse.mamba.state_elements(1) == ((8192 + 2 * 8 * 128) * 3, 128 * 64 * 128)
    bare = hfconfig.normalise({"model_type": "bamba"}, "c", "t").model
    assert bare.describe() == "32 mamba" and bare.mamba.state_elements(1) == ((8192 + 2 * 256) * 3, 128 * 64 * 256)
    mamba = hfconfig.normalise({"model_type": "mamba", "hidden_size": 1024}, "c", "t").model  # no intermediate_size
    assert mamba.describe() == "32 mamba" and mamba.mamba.state_elements(2) == (1024 * 3, 1024 * 16)  # 2 × 1024 / 2


def test_what_vllm_refuses_under_tp_is_refused_naming_the_field(cli):
    for model, tp, message in (
        ("mamba-codestral-7b-v0.1", 16, "--tp: 16 does not divide the 8 Mamba-2 groups (n_groups); vLLM replicates"),
        ("mamba-codestral-7b-v0.1", 3, "--tp: 3 does not divide the 128 Mamba-2 heads (num_heads)"),
        ("mamba-130m-hf", 5, "--tp: 5 does not divide the Mamba width 1536 (intermediate_size)"),
        ("falcon-mamba-7b", 3, "--tp: 3 does not divide the Mamba width 8192 (intermediate_size)"),
        ("bamba-9b", 256, "--tp: 256 does not divide the 128 Mamba-2 heads (mamba_n_heads)"),
    ):  # fmt: skip
        r = cli("kv-memory", "--hf-config", FIXTURES / model, "--tp", str(tp))
        assert r.code == 2 and r.err.count("\n") == 1 and message in r.err, r.err
    r = cli("kv-memory", "--hf-config", FIXTURES / "bamba-9b", "--tp", "16")  # 1 group: replicated, allowed
    assert r.code == 0, r.err


def test_parameters_and_flops_are_refused_naming_the_mamba_layers(cli):
    for args in (("kv-memory", "--include-weights"), ("flops",)):
        for model in ("mamba-130m-hf", "bamba-9b"):
            r = cli(*args, "--hf-config", FIXTURES / model)
            assert r.code == 2 and r.err.count("\n") == 1 and "mamba" in r.err, r.err


MAMBA2 = {"model_type": "mamba2", "hidden_size": 1024, "num_hidden_layers": 2, "num_heads": 32, "head_dim": 64}
BAMBA = {"model_type": "bamba", "hidden_size": 1024, "num_attention_heads": 8, "num_key_value_heads": 2,
         "num_hidden_layers": 4, "mamba_n_heads": 32, "attn_layer_indices": [1]}  # fmt: skip
BAD = [
    ({**MAMBA2, "num_heads": 16}, "num_heads: 16 heads × head_dim 64 is not expand × hidden_size = 2048"),
    ({**MAMBA2, "intermediate_size": 4096}, "intermediate_size: 4096 disagrees with expand × hidden_size = 2048"),
    ({**MAMBA2, "layer_types": ["full_attention", "linear_attention"]}, "layer_types: model_type 'mamba2' has only Mamba"),
    ({"model_type": "mamba", "state_size": None}, "state_size: missing: the Mamba state of model_type 'mamba' needs it"),
    ({"model_type": "falcon_mamba", "expand": 1.5}, "expand: 1.5 is not a whole number"),
    ({**BAMBA, "attn_layer_indices": [1, 4]}, "attn_layer_indices: [1, 4] must list layer indices from 0 to 3"),
    ({**BAMBA, "attn_layer_indices": "1"}, "attn_layer_indices: '1' must list layer indices from 0 to 3"),
    ({**BAMBA, "attn_layer_indices": {}}, "attn_layer_indices: {} must list layer indices from 0 to 3"),
    ({**BAMBA, "layers_block_type": ["mamba"] * 4}, "layers_block_type: is derived by BambaConfig from attn_layer_indices"),
    ({**BAMBA, "mamba_n_heads": 24}, "mamba_n_heads: 24 heads do not divide mamba_expand × hidden_size = 2048"),
    ({**BAMBA, "mamba_d_head": 32}, "mamba_d_head: 32 × mamba_n_heads 32 is not mamba_expand × hidden_size = 2048"),
    ({**BAMBA, "head_dim": 64}, "head_dim: 64 is not read by vLLM's Bamba attention, whose heads are hidden_size / "
                                "num_attention_heads = 128 wide"),
]  # fmt: skip


@pytest.mark.parametrize("config,message", BAD, ids=lambda x: "" if isinstance(x, dict) else x[:40])
def test_contradictory_state_space_configs_are_refused(config, message):
    with pytest.raises(InputError) as e:
        hfconfig.normalise(config, "c", "t")
    assert e.value.where == "c" and e.value.what.startswith(message), e.value.what


def test_the_bamba_rules_sized_by_hand():
    """attn_layer_indices [1] of 4 layers; mamba_d_head auto = 2 × 1024 / 32 = 64; 1 group, state 256."""
    p = hfconfig.normalise(BAMBA, "c", "t")
    assert p.model.layer_types == ("mamba", "full", "mamba", "mamba")
    assert build_spec(p.model.attention, p, {}, p.name).head_dim == 1024 // 8  # hidden_size / heads, as vLLM
    assert p.model.mamba.state_elements(1) == ((2048 + 2 * 256) * 3, 32 * 64 * 256)
    assert p.model.mamba.state_elements(4) == ((2048 + 2 * 4 * 256) // 4 * 3, 8 * 64 * 256)
