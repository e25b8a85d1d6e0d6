"""Cost figures the mutation run (tools/mutate.py) found unpinned, each against a hand derivation."""

from attncli import cost, presets
from attncli.spec import Shape
from conftest import TINY


def test_linear_elementwise_is_feature_map_on_q_and_k_plus_one_divide_per_output():
    # TINY: 4 heads of 8. φ(x) = elu(x) + 1 costs 2 FLOPs per element of q and of k (2 · n · h · hd
    # elements), and each output element is divided by its normaliser once (n · h · hd).
    spec = presets.parse_variant("linear", TINY)
    h, hd = 4, 8
    for mode, n in (("prefill", 6), ("decode", 1)):
        f = cost.linear_flops(spec, Shape(mode, 6))
        assert f.elementwise == 2 * 2 * n * h * hd + 1 * n * h * hd  # prefill 960, decode 160
