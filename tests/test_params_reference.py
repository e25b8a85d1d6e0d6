"""Parameter counts the mutation run (tools/mutate.py params) found unpinned, each against a count
written out here by hand, matrix by matrix."""

import pytest

from attncli import params
from attncli.errors import InputError
from attncli.spec import GQASpec, LinearLayerSpec, MoESpec, ModelSpec

D = 64
GQA = GQASpec(family="gqa", d_model=D, n_heads=8, head_dim=16, n_kv_heads=2)
# W_q 64×128, W_k 64×32, W_v 64×32, W_o 128×64, no biases
PROJECTIONS = 64 * 128 + 64 * 32 + 64 * 32 + 128 * 64  # 20,480


def _model(**fields):
    return ModelSpec(**{"attention": "gqa", "layer_types": ("full",), "vocab_size": 100, "dense_d_ff": 256, **fields})


def test_softmax_layer_without_extras_is_the_four_projections():
    assert params.softmax_layer_params(GQA, _model()) == PROJECTIONS


def test_qkv_biases_add_one_per_query_key_and_value_output():
    # b_q (8·16) + b_k (2·16) + b_v (2·16) = 16 · (8 + 2·2) = 192
    assert params.softmax_layer_params(GQA, _model(qkv_bias=True)) == PROJECTIONS + 192


def test_the_output_gate_is_a_d_model_by_query_width_matrix():
    # Qwen3-Next's gate: d_model 64 → n_heads·head_dim 128
    assert params.softmax_layer_params(GQA, _model(attn_output_gate=True)) == PROJECTIONS + 64 * 128


def test_lightning_linear_layer_by_hand():
    lin = LinearLayerSpec(kind="lightning", heads=4, key_dim=16, value_dim=8)
    # qkv: 64 → 3 heads' widths, q and k 4·16 = 64 each, v 4·8 = 32 → 64·(64 + 64 + 32) = 10,240;
    # output gate 64 → 32 = 2,048; output 32 → 64 = 2,048; norm 32
    assert params.linear_layer_params(lin, D) == 10_240 + 2_048 + 2_048 + 32


@pytest.mark.parametrize("key_heads,expected", [
    # nk = 2 key heads of 16, nv = 4 value heads of 8: keys 32, values 32.
    # in_proj_qkvz 64·(2·32 + 2·32) = 8,192; in_proj_ba 64·2·4 = 512; conv (2·32 + 32 = 96 channels) × 4 = 384;
    # A_log + dt_bias 2·4 = 8; gated norm 8; out_proj 32·64 = 2,048
    (2, 8_192 + 512 + 384 + 8 + 8 + 2_048),
    # key_heads absent: as many key heads as value heads (4): keys 64, values 32:
    # 64·(128 + 64) = 12,288; 512; conv (128 + 32 = 160) × 4 = 640; 8; 8; 2,048
    (None, 12_288 + 512 + 640 + 8 + 8 + 2_048),
])
def test_gated_deltanet_linear_layer_by_hand(key_heads, expected):
    lin = LinearLayerSpec(kind="gated_deltanet", heads=4, key_dim=16, value_dim=8, key_heads=key_heads, conv_kernel=4)
    assert params.linear_layer_params(lin, D) == expected


@pytest.mark.parametrize("mlp,matrices", [("gated", 3), ("plain", 2)])
def test_dense_mlp_counts_its_matrices(mlp, matrices):
    # gated: gate, up (64 → 256) and down (256 → 64); plain: up and down
    assert params.mlp_params(_model(mlp=mlp), D, 0, "x") == matrices * 64 * 256


def test_moe_layer_counts_every_expert_the_shared_ones_and_the_router():
    moe = MoESpec(experts=8, experts_per_token=2, d_ff=32, shared_experts=1, shared_d_ff=48, first_dense=1)
    model = _model(moe=moe, layer_types=("full", "full"))
    assert params.mlp_params(model, D, 0, "x") == 3 * 64 * 256  # the first layer stays dense
    # 8 routed experts of 3·64·32, one shared of 3·64·48, router 64 → 8
    assert params.mlp_params(model, D, 1, "x") == 8 * 3 * 64 * 32 + 3 * 64 * 48 + 64 * 8


def test_a_refused_count_names_the_first_unsized_field():
    model = _model(unsized=(("mamba", "mamba layers: not counted"), ("moe", "other")))
    with pytest.raises(InputError) as e:
        params.check_sized(model, "cfg.json", "parameter counts")
    assert str(e.value).endswith("mamba layers: not counted; parameter counts refused")
    model = _model(unsized=(("intermediate_size", "missing"),))
    with pytest.raises(InputError) as e:
        params.check_sized(model, "cfg.json", "parameter counts")
    assert str(e.value).endswith("intermediate_size: missing, and parameter counts need it")


@pytest.mark.parametrize("path,named", [("/configs/model/config.json", "/configs/model/config.json"), ("", "mymodel")])
def test_a_refusal_names_the_file_it_came_from_or_else_the_preset(path, named):
    from attncli.spec import PresetSpec

    preset = PresetSpec(name="mymodel", d_model=D, n_heads=8, path=path,
                        model=ModelSpec(attention="gqa", layer_types=("full",), dense_d_ff=256))  # no vocab_size
    with pytest.raises(InputError) as e:
        params.model_params(GQA, preset)
    assert str(e.value).startswith(f"{named}: vocab_size: missing"), str(e.value)
