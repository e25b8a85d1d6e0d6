"""Fuzzed hostile loaders: alias bombs, recursive anchors, deep nesting, huge integers and wrong
types in variant YAML, preset YAML, override strings and config.json. Every input loads or raises
InputError with one line — never another exception (an internal error, exit 1) — and fast.

CI runs a derandomised few hundred examples (conftest's `ci` profile); `ATTNCLI_HYPOTHESIS=long`
runs 20× as many with random draws (docs/reliability.md gives the figure of the last such run).
"""

import json
import time

from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attncli import hfconfig, presets
from attncli.errors import InputError

SMALL = presets.load_preset("small")
KEYS = ["family", "d_model", "n_heads", "head_dim", "n_kv_heads", "window", "rope_theta", "n_layers", "softmax_every",
        "pattern", "memory_len", "kv_lora_rank", "chunk_size", "label", "variants", "model"]  # fmt: skip
FAMILIES = ["gqa", "mha", "mqa", "swa", "cross", "linear", "mla", "hybrid"]
SECONDS = 5  # per input: a bomb or a deep document that is expanded or recursed would take far longer

HUGE = st.one_of(st.integers(-(10**30), 10**30), st.integers(2**62, 2**65), st.integers(4000, 4290).map(lambda n: 10 ** (n - 1)))
DIGITS = st.integers(1, 6000).map(lambda n: "9" * n)  # as text: 4,301 digits and more are past int()'s limit


def bomb(depth: int, width: int, key: str) -> str:
    """A billion-laughs document: `depth` levels of anchors, each `width` aliases of the last."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, depth)]
    return "\n".join(lines) + f"\n{key}: *a{depth - 1}\n"


def nested(depth: int, flow: str) -> str:
    if flow == "[":
        return "[" * depth + "1" + "]" * depth
    if flow == "{":
        return "{a: " * depth + "1" + "}" * depth
    return "\n".join("  " * i + "a:" for i in range(depth)) + " 1"  # block mappings


VALUES = st.one_of(
    HUGE.map(str), DIGITS,
    st.sampled_from([".inf", "-.inf", ".nan", "1e400", "-0", "0x7fffffffffffffffff", "'8'", "true", "null", "[]", "{}",
                     "[1, 2]", "!!binary aGk=", "!!python/name:os.system", "&x 1", "*x", "<<: *x"]),
    st.integers(1, 3000).map(lambda d: nested(d, "[")),
    st.integers(1, 3000).map(lambda d: nested(d, "{")),
)  # fmt: skip
DOCS = st.one_of(
    st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from(KEYS)).map(
        lambda t: f"family: {FAMILIES[t[0] % len(FAMILIES)]}\n" + bomb(*t)),
    st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from(KEYS)).map(lambda t: bomb(*t)),
    DIGITS.map(lambda d: f"family: gqa\nn_kv_heads: {d}\n"),
    st.sampled_from(["family: gqa\nx: &a [*a]\n", "&a [*a]\n", "family: gqa\n<<: {n_kv_heads: 2}\n",
                     "a: &a {b: *a}\n", "family: gqa\nn_kv_heads: !!int '2'\n"]),
    st.tuples(st.integers(1, 2000), st.sampled_from(["[", "{", "block"])).map(lambda t: "family: gqa\nx: " + nested(*t)),
    st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=5).map(
        lambda kv: "family: gqa\n" + "".join(f"{k}: {v}\n" for k, v in kv)),
    st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=5).map(
        lambda kv: "d_model: 512\nn_heads: 8\n" + "".join(f"{k}: {v}\n" for k, v in kv)),
)  # fmt: skip


def loads_or_input_error(load) -> None:
    start = time.perf_counter()
    try:
        load()
    except InputError as e:
        assert e.message and "\n" not in e.message and len(e.message) < 1000
    assert time.perf_counter() - start < SECONDS


@settings(max_examples=examples(150), suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=DOCS)
def test_hostile_yaml_documents_load_or_raise_input_error(tmp_path_factory, text):
    f = tmp_path_factory.mktemp("fuzz") / "v.yaml"
    f.write_text(text, encoding="utf-8")
    loads_or_input_error(lambda: presets.parse_variant(str(f), SMALL))
    loads_or_input_error(lambda: presets.load_preset(str(f)))


OVERRIDE_VALUES = st.one_of(VALUES, DIGITS, st.integers(1, 400).map(lambda d: "[" * d + "gqa" + "]" * d),
                            st.integers(1, 50).map(lambda d: "hybrid:softmax=" * d + "gqa"))  # fmt: skip


@settings(max_examples=examples(150), suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(FAMILIES), parts=st.lists(st.tuples(st.sampled_from(KEYS), OVERRIDE_VALUES), max_size=3))
def test_hostile_override_strings_load_or_raise_input_error(family, parts):
    arg = family + (":" + ",".join(f"{k}={v}" for k, v in parts) if parts else "")
    loads_or_input_error(lambda: presets.parse_variant_paths(arg, SMALL))


BASE = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
        "num_hidden_layers": 2, "vocab_size": 10, "intermediate_size": 128, "max_position_embeddings": 128}  # fmt: skip
CONFIG_KEYS = list(BASE) + ["sliding_window", "layer_types", "head_dim", "rope_theta", "rope_scaling", "kv_lora_rank",
                            "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "text_config",
                            "sliding_window_pattern", "use_sliding_window", "max_window_layers", "torch_dtype"]  # fmt: skip
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), HUGE, st.floats(allow_nan=False), st.text(max_size=8),
              st.sampled_from(["4096", "full_attention", "sliding_attention", "llama", "deepseek_v3", "bfloat16"])),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(CONFIG_KEYS), inner, max_size=3),
    max_leaves=8)  # fmt: skip
CONFIGS = st.one_of(
    st.dictionaries(st.sampled_from(CONFIG_KEYS), JSON_VALUES, max_size=4).map(lambda d: json.dumps({**BASE, **d})),
    st.integers(1, 200_000).map(lambda d: "[" * d + "]" * d),
    st.integers(1, 5000).map(lambda d: '{"model_type": "llama", "x": ' + '{"a": ' * d + "1" + "}" * d + "}"),
    st.sampled_from(list(BASE)).map(lambda k: json.dumps(BASE)[:-1] + f', "{k}": 7}}'),  # a key given twice
    st.just(json.dumps({**BASE, "layer_types": [[], None]})),  # found by the long run: an unhashable kind
    st.integers(4300, 6000).map(lambda n: json.dumps(BASE)[:-1] + ', "num_hidden_layers": ' + "9" * n + "}"),
)  # fmt: skip


@settings(max_examples=examples(150), suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=CONFIGS)
def test_hostile_configs_load_or_raise_input_error(tmp_path_factory, text):
    f = tmp_path_factory.mktemp("fuzz") / "config.json"
    f.write_text(text, encoding="utf-8")
    loads_or_input_error(lambda: hfconfig.load(f))
