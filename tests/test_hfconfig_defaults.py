"""The model-type defaults table (attncli/models/defaults.py) against the config classes of the
installed transformers: every value it holds is the class's default, and no field the
normaliser reads that a class declares is left out."""

import dataclasses

import pytest
import transformers

from attncli.models import defaults

# The class each transformers-backed entry names (nemotron-nas is remote code: checked below)
TYPES = [t for t in defaults.SOURCES if defaults.SOURCES[t].startswith("transformers.") and "(" not in defaults.SOURCES[t]]


def config_class(model_type):
    return getattr(transformers, defaults.SOURCES[model_type].removeprefix("transformers."))


def declared(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("model_type", TYPES)
def test_table_holds_the_config_class_defaults(model_type):
    cls = config_class(model_type)
    assert cls.model_type == model_type
    fields, entry = declared(cls), defaults.DEFAULTS[model_type]
    for key, value in entry.items():
        if key == "rope_theta":
            theta = getattr(cls, "default_theta", 10_000.0)
            assert value == (theta["global"] if isinstance(theta, dict) else theta), key
        elif key not in defaults.POST_INIT_KEYS:
            assert key in fields, f"{model_type}: {cls.__name__} declares no field {key}"
            assert fields[key] == value, f"{model_type}.{key}: table {value!r}, {cls.__name__} {fields[key]!r}"
    missing = [k for k in defaults.READ_FIELDS if k in fields and k not in entry]
    assert not missing, f"{model_type}: {cls.__name__} declares {missing}, which the table leaves out"


@pytest.mark.parametrize("model_type,key,kind", [
    ("gemma2", "sliding_window_pattern", "sliding_attention"),
    ("gpt_oss", "sliding_window_pattern", "sliding_attention"),
    ("gemma3_text", "sliding_window_pattern", "sliding_attention"),
    ("cohere2", "sliding_window_pattern", "sliding_attention"),
    ("qwen3_next", "full_attention_interval", "linear_attention"),
    ("olmo3", "sliding_window_pattern", "sliding_attention"),
    ("exaone4", "sliding_window_pattern", "sliding_attention"),
])  # fmt: skip
def test_post_init_rules_match_the_layer_types_transformers_builds(model_type, key, kind):
    period = defaults.DEFAULTS[model_type][key]
    built = config_class(model_type)(num_hidden_layers=12).layer_types
    assert built == ["full_attention" if (i + 1) % period == 0 else kind for i in range(12)]


def test_wrappers_name_the_text_model_type_transformers_uses():
    for wrapper, text_type in defaults.TEXT_CONFIG_TYPES.items():
        cls = transformers.CONFIG_MAPPING[wrapper]
        sub = cls.sub_configs_defaults["text_config"]
        assert getattr(sub, "model_type", None) == text_type, wrapper
        assert text_type in defaults.DEFAULTS


def test_nemotron_nas_takes_llama_defaults_plus_block_configs():
    nas = defaults.defaults_for("nemotron-nas")
    assert nas.pop("block_configs") is None and nas == defaults.defaults_for("llama")


def test_lookups():
    assert defaults.defaults_for("RefinedWebModel") == defaults.defaults_for("falcon")
    assert defaults.defaults_for("no-such-type") is None and defaults.defaults_for(None) is None
    assert defaults.source_of("gemma3_text") == "transformers.Gemma3TextConfig"
    assert defaults.defaults_for("gemma3_text")["head_dim"] == 256  # not hidden_size / heads
    entry = defaults.defaults_for("llama")
    entry["hidden_size"] = 1
    assert defaults.DEFAULTS["llama"]["hidden_size"] == 4096  # callers get a copy
    assert defaults.known_types() == tuple(sorted(defaults.DEFAULTS))


def test_minimax_without_layer_kinds_alternates_as_transformers_does():
    from attncli import hfconfig

    built = transformers.MiniMaxConfig(num_hidden_layers=6).layer_types
    config = {"model_type": "minimax", "hidden_size": 512, "num_attention_heads": 8, "num_hidden_layers": 6}
    kinds = hfconfig.normalise(config, "c", "t").model.layer_types
    assert kinds == tuple({"full_attention": "full", "linear_attention": "linear"}[k] for k in built)
