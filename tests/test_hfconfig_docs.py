"""docs/real-models.md's table of published configs is the code's output: each row is rebuilt here
from the fixture and compared cell by cell (the byte figures themselves are checked by hand in
test_hfconfig_published.py)."""

from pathlib import Path

from attncli import hfconfig, serving
from attncli.presets import build_spec

ROOT = Path(__file__).resolve().parent.parent
HEADER = "| config | layer kinds | KV heads from | 32,768 tokens | 131,072 tokens | 131,072 at TP 8, fp8 | recurrent state |"


def iec(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            v = n / scale
            return f"{int(v)} {unit}" if v == int(v) else f"{v:.3g} {unit}"
    return f"{n} B"


def row_of(model: str) -> str:
    p = hfconfig.load(ROOT / "tests" / "fixtures" / "hf" / model)
    spec = build_spec(p.model.attention, p, {}, p.name)

    def held(seq_len, tp=1, dtype="bfloat16"):
        groups = serving.layer_groups(spec, p.model, p.n_layers, tp)
        return serving.cache_bytes(groups, serving.Storage.of(dtype), seq_len, 1)

    a, b, c = held(32768), held(131072), held(131072, 8, "fp8")
    state = iec(b.state) if b.state else "–"
    return (f"| `{model}` | {p.model.describe()} | `{p.model.kv_heads_from.split(' (')[0]}` | {iec(a.data + a.state)} | "
            f"{iec(b.data + b.state)} | {iec(c.data + c.state)} | {state} |")


def test_the_published_config_table_is_what_the_code_gives():
    text = (ROOT / "docs" / "real-models.md").read_text()
    lines = text[text.index(HEADER):].splitlines()[2:]
    table = lines[: next(i for i, line in enumerate(lines) if not line.startswith("|"))]
    assert len(table) >= 12
    for line in table:
        model = line.split("`")[1]
        assert line == row_of(model), model
