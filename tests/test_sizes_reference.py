"""Zero, negative and huge sizes are bad input (exit 2, one line naming the field), never an
internal error: `flops mha:n_heads=0` once divided by zero. The property test is seeded (the `ci`
hypothesis profile in conftest.py); ATTNCLI_HYPOTHESIS=long draws many more at random."""

import contextlib
import dataclasses
import io

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from attncli import registry
from attncli.cli import main
from conftest import examples

# The integer fields of each family's spec, less those the family pins (mha's n_kv_heads).
SIZE_FIELDS = sorted(
    (name, f.name)
    for name, fam in registry.FAMILIES.items()
    for f in dataclasses.fields(fam.spec_cls)
    if str(f.type).startswith("int") and f.name not in fam.fixed
)


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def assert_refused(code, err, field):
    assert code == 2, err
    assert err.startswith("attncli: ") and err.count("\n") == 1, err
    assert "internal error" not in err and field in err, err


@pytest.mark.parametrize("variant,field", [("mha", "n_heads"), ("gqa", "n_heads"), ("mla", "n_heads"),
                                           ("linear", "n_heads"), ("hybrid:softmax=[gqa", "n_heads")])  # fmt: skip
def test_zero_heads_is_bad_input(variant, field):
    arg = f"{variant}:{field}=0]" if variant.startswith("hybrid") else f"{variant}:{field}=0"
    code, _, err = run("flops", arg)
    assert_refused(code, err, f"{field}: 0 must be positive")


@pytest.mark.parametrize("option", ["--seq-len", "--batch", "--layers"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_zero_or_negative_shape_options_are_bad_input(option, value):
    code, _, err = run("flops", "mha", option, value)
    assert_refused(code, err, option)


@settings(max_examples=examples(100))
@given(case=st.sampled_from(SIZE_FIELDS), command=st.sampled_from(["flops", "kv-memory"]),
       value=st.one_of(st.integers(-4, 4), st.integers(-(2**62), -5), st.sampled_from([2**31, 2**62])),
       mode=st.sampled_from(["prefill", "decode"]))  # fmt: skip
def test_any_integer_size_gives_rows_or_a_one_line_refusal(case, command, value, mode):
    family, field = case
    assume(not (field == "softmax_every" and value > 2**10))  # a pattern of that many layers is built (no error)
    modes = ["-m", mode] if command == "flops" else []
    code, out, err = run(command, f"{family}:{field}={value}", "-p", "micro", "-s", "64", *modes, "--json", "-")
    if code == 0:
        assert value > 0 and out.lstrip().startswith("[")  # a size the spec accepted is positive
    else:
        assert_refused(code, err, field)
