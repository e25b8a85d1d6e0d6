"""The two dtypes of a Mamba layer's state, as vLLM stores them. Every figure is computed here by hand.

vLLM (vllm/model_executor/layers/mamba/mamba_utils.py, MambaStateDtypeCalculator._mamba_state_dtype):
the convolution state takes mamba_cache_dtype (`auto`: the model dtype), the temporal (SSM) state
mamba_ssm_cache_dtype (`auto`: the convolution state's dtype); both default to `auto`
(vllm/config/cache.py). One model config hook changes that for a model attncli sizes:
NemotronHForCausalLMConfig (vllm/model_executor/models/config.py, registered for NemotronHForCausalLM
and NemotronHPuzzleForCausalLM) sets an `auto` mamba_ssm_cache_dtype to
getattr(hf_config, "mamba_ssm_cache_dtype", "float32") — "Only float32 is known to have no accuracy
issues by default" — and transformers' NemotronHConfig declares the field with default "float32".
Jamba, Zamba2, Falcon-H1, GraniteMoeHybrid, Bamba, Mamba, Mamba-2 and Falcon-Mamba have no such hook
(their get_mamba_state_dtype_from_config passes cache_config's values through; MambaModelConfig and
HybridAttentionMambaModelConfig do not touch the dtypes), so a mamba_ssm_cache_dtype in their
config.json is not read. The KV cache dtype (--dtype fp8) is a different setting: the state keeps
its dtypes, bfloat16 standing for the model dtype under a quantised KV cache.

Nemotron-H-8B-Base-8K (tests/fixtures/hf): 52 layers, `M` × 24 Mamba-2, `*` × 4 attention (8 KV heads
of 4096 / 32 = 128); Mamba-2 with mamba_num_heads 128 × mamba_head_dim 64 = d_inner 8192, n_groups 8,
ssm_state_size 128, conv_kernel 4, per layer and sequence on one of TP GPUs:
conv ((8192 + 2·8·128) / TP) × (4 − 1) elements, SSM (128 / TP) × 64 × 128 elements.
"""

import json
from pathlib import Path

import pytest

from attncli import hfconfig
from attncli.errors import InputError
from attncli.spec import MambaLayerSpec

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf"
NEMOTRON_H = FIXTURES / "nemotron-h-8b-base-8k"
CONV = (8192 + 2 * 8 * 128) * 3  # 30,720 conv elements per Mamba layer at TP 1
SSM = 128 * 64 * 128  # 1,048,576 SSM elements per Mamba layer at TP 1


def nemotron_h(seq_len, tp=1, kv_bytes=2, conv_bytes=2, ssm_bytes=4):
    """(K/V bytes, state bytes) of one sequence of Nemotron-H-8B on one of tp GPUs."""
    kv = 4 * 2 * max(1, 8 // tp) * 128 * seq_len * kv_bytes
    state = 24 * (CONV // tp * conv_bytes + SSM // tp * ssm_bytes)  # conv and heads split over tp (8 groups, 128 heads)
    return kv, state


def with_field(tmp_path, source, **fields):
    data = json.loads((source / "config.json").read_text())
    data.update(fields)
    (tmp_path / "config.json").write_text(json.dumps(data))
    return tmp_path


def kv_memory(cli, path, *args):
    r = cli("kv-memory", "--hf-config", path, *args, "--json", "-")
    assert r.code == 0, r.err
    return r.rows()[-1]


def test_nemotron_h_without_the_field_keeps_its_ssm_state_in_float32(cli):
    row = kv_memory(cli, NEMOTRON_H, "-s", "1024")
    kv, state = nemotron_h(1024)
    assert state == 24 * (30_720 * 2 + 1_048_576 * 4) == 102_137_856  # 97.4 MiB
    assert row["ssm_state_bytes"] == state and row["kv_cache_bytes"] == kv + state == 118_915_072
    # before: the SSM part at bfloat16 too, 24 × (30,720 + 1,048,576) × 2 = 51,806,208 (49.4 MiB), half the SSM bytes
    assert nemotron_h(1024, ssm_bytes=2)[1] == 51_806_208
    assert hfconfig.load(NEMOTRON_H).model.mamba.ssm_dtype == "float32"


@pytest.mark.parametrize("tp", [1, 8])
def test_an_fp8_kv_cache_leaves_both_parts_of_the_state_as_they_are(cli, tp):
    bf16 = kv_memory(cli, NEMOTRON_H, "-s", "4096", "--tp", str(tp))
    fp8 = kv_memory(cli, NEMOTRON_H, "-s", "4096", "--tp", str(tp), "--dtype", "fp8")
    kv, state = nemotron_h(4096, tp, kv_bytes=1)  # K/V at 1 byte; conv still bfloat16, SSM still float32
    assert fp8["ssm_state_bytes"] == bf16["ssm_state_bytes"] == state
    assert fp8["kv_cache_bytes"] == kv + state
    assert fp8["kv_scale_bytes"] == 4 * 2 * 4  # per-tensor float32 k_scale, v_scale of the 4 attention layers
    if tp == 8:  # conv 10,240 / 8 × 3 = 3,840 at 2 bytes + SSM 16 × 64 × 128 = 131,072 at 4 bytes, 24 layers
        assert state == 24 * (3_840 * 2 + 131_072 * 4) == 12_767_232


def test_the_model_dtype_sizes_the_conv_part_and_an_auto_ssm_part(cli, tmp_path):
    # --dtype float32: conv at 4 bytes, SSM float32 (the hook) at 4 bytes
    row = kv_memory(cli, NEMOTRON_H, "-s", "1024", "--dtype", "float32")
    assert row["ssm_state_bytes"] == 24 * (CONV + SSM) * 4 == nemotron_h(1024, conv_bytes=4)[1]
    # mamba_ssm_cache_dtype "auto" in the config: the hook keeps `auto`, the SSM part follows the conv dtype
    auto = with_field(tmp_path, NEMOTRON_H, mamba_ssm_cache_dtype="auto")
    assert hfconfig.load(auto).model.mamba.ssm_dtype is None
    assert kv_memory(cli, auto, "-s", "1024")["ssm_state_bytes"] == 24 * (CONV + SSM) * 2 == 51_806_208
    assert kv_memory(cli, auto, "-s", "1024", "--dtype", "float16")["ssm_state_bytes"] == 24 * (CONV + SSM) * 2


def test_nemotron_h_with_bfloat16_in_its_config_keeps_the_ssm_state_in_bfloat16(cli, tmp_path):
    path = with_field(tmp_path, NEMOTRON_H, mamba_ssm_cache_dtype="bfloat16")
    row = kv_memory(cli, path, "-s", "1024")
    assert row["ssm_state_bytes"] == nemotron_h(1024, ssm_bytes=2)[1] == 24 * (CONV + SSM) * 2
    # bfloat16 is the state's own dtype, not the model's: a float32 model keeps the SSM part at 2 bytes
    row = kv_memory(cli, path, "-s", "1024", "--dtype", "float32")
    assert row["ssm_state_bytes"] == 24 * (CONV * 4 + SSM * 2)


def test_the_per_layer_mamba_row_holds_both_parts(cli):
    rows = cli("kv-memory", "--hf-config", NEMOTRON_H, "-s", "1024", "--per-layer", "--json", "-").rows()
    mamba = next(r for r in rows if r["layer_kind"] == "mamba")
    assert mamba["layers"] == 24 and mamba["ssm_state_bytes"] == mamba["kv_cache_bytes"] == 102_137_856
    assert rows[-1]["ssm_state_bytes"] == 102_137_856


@pytest.mark.parametrize("value", ["fp32", "fp8", None, 32, ["float32"]], ids=repr)
def test_a_value_vllm_cannot_store_is_refused_naming_the_field(cli, tmp_path, value):
    path = with_field(tmp_path, NEMOTRON_H, mamba_ssm_cache_dtype=value)
    r = cli("kv-memory", "--hf-config", path)
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert f"mamba_ssm_cache_dtype: {value!r} is not a dtype vLLM stores the SSM state in" in r.err, r.err


def test_an_architecture_the_hook_is_not_registered_for_is_refused(cli, tmp_path):
    path = with_field(tmp_path, NEMOTRON_H, architectures=["NemotronHForSomethingElse"])
    r = cli("kv-memory", "--hf-config", path)
    assert r.code == 2 and r.err.count("\n") == 1 and "architectures: ['NemotronHForSomethingElse'] names none of" in r.err
    puzzle = with_field(tmp_path, NEMOTRON_H, architectures=["NemotronHPuzzleForCausalLM"])
    assert kv_memory(cli, puzzle, "-s", "1024")["ssm_state_bytes"] == 102_137_856


@pytest.mark.parametrize("model,by_hand", [
    # Jamba-v0.1: 28 Mamba-1 layers, d_inner 2 × 4096, state 16, conv 4, both parts at bfloat16
    ("jamba-v0.1", 28 * (8192 * 3 + 8192 * 16) * 2),
    # Bamba-9B: 29 Mamba-2 layers, d_inner 8192 = 128 heads × 64, 1 group, state 128, conv 4, bfloat16
    ("bamba-9b", 29 * ((8192 + 2 * 128) * 3 + 128 * 64 * 128) * 2),
    # Mamba-Codestral (mamba2): 64 layers, 8192 = 128 × 64, 8 groups, state 128, conv 4, bfloat16
    ("mamba-codestral-7b-v0.1", 64 * ((8192 + 2 * 8 * 128) * 3 + 128 * 64 * 128) * 2),
])  # fmt: skip
def test_other_mamba_models_do_not_read_the_field(cli, tmp_path, model, by_hand):
    """No vLLM hook reads mamba_ssm_cache_dtype for these: float32 in their config changes nothing."""
    plain = kv_memory(cli, FIXTURES / model, "-s", "1024")
    given = kv_memory(cli, with_field(tmp_path, FIXTURES / model, mamba_ssm_cache_dtype="float32"), "-s", "1024")
    assert plain["ssm_state_bytes"] == given["ssm_state_bytes"] == by_hand
    assert hfconfig.load(FIXTURES / model).model.mamba.ssm_dtype is None


def test_the_spec_refuses_a_dtype_vllm_does_not_store():
    with pytest.raises(InputError) as e:
        MambaLayerSpec(version=1, d_inner=8, d_state=4, d_conv=4, ssm_dtype="fp8")
    assert e.value.what.startswith("mamba.ssm_dtype: 'fp8' is not one of float32, float16, bfloat16")
