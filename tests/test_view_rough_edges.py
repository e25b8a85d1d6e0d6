"""The rough edges of issue 15's walk-through, one test each."""

import os
import stat

import pytest

from attncli import options, views
from attncli.errors import InputError


def title_line(err_or_out: str) -> str:
    lines = err_or_out.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    return " ".join(line.strip() for line in lines[:top])


def test_titles_say_1_thread_1_layer_and_6_layers(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    r = cli("flops", "-p", "small")  # small has 6 layers
    assert r.code == 0 and "6 layers" in title_line(r.out) and "layer(s)" not in r.out
    r = cli("flops", "-p", "small", "--layers", "1")
    assert "· 1 layer ·" in title_line(r.out)
    r = cli("bench", "-p", "micro", "-s", "8", "--min-time", "0", "--device", "cpu", "--threads", "1")
    title = title_line(r.out)
    assert r.code == 0 and "1 thread" in title and "1 threads" not in title and "· 1 layer ·" in title
    assert views.title_piece("threads", 2) == "2 threads" and views.title_piece("layers", 32) == "32 layers"


def test_help_shows_no_bool_metavar(cli):
    for command in ("bench", "kv-memory", "sweep", "peak"):
        r = cli(command, "--help")
        assert r.code == 0 and "<bool>" not in r.out, command
    r = cli("bench", "--help")
    assert "--force" in r.out and "<int>" not in r.out.split("--force")[1].splitlines()[0]


@pytest.mark.parametrize("text,values", [
    ("32k,128k", [32 * 1024, 128 * 1024]), ("1K", [1024]), ("2m", [2 * 1024 * 1024]), ("4096", [4096]),
    ("1k:8k", [1024, 2048, 4096, 8192]),
    ("100:1000", [100, 200, 400, 800, 1000]),  # doubling misses the end: the end is kept
    ("128:1024", [128, 256, 512, 1024]),  # an end doubling reaches is not repeated
])  # fmt: skip
def test_sizes_take_k_and_m_and_ranges_keep_their_end(text, values):
    assert options.parse_int_list(text, "--seq-len") == values


def test_a_bad_size_suffix_is_one_line(cli):
    r = cli("kv-memory", "-s", "32q")
    assert r.code == 2 and r.err == "attncli: --seq-len: '32q' is not a whole number\n"
    with pytest.raises(InputError, match="range '8k:1k' runs backwards; e.g. 1k:8k"):
        options.parse_int_list("8k:1k", "--seq-len")


def test_seq_len_suffix_reaches_the_rows(cli):
    rows = cli("kv-memory", "mha", "-p", "small", "-s", "32k", "--json", "-").rows()
    # 2 (K, V) × 8 heads × 64 dims × 2 bytes (bfloat16) × 6 layers per token, × 32,768 tokens
    assert rows[0]["seq_len"] == 32768 and rows[0]["kv_cache_bytes"] == 2 * 8 * 64 * 2 * 6 * 32768
    r = cli("kv-memory", "--help")
    assert "k = 1,024" in " ".join(r.out.split())


def test_exports_follow_the_umask(cli, tmp_path):
    old = os.umask(0o022)
    try:
        paths = [tmp_path / "r.csv", tmp_path / "r.json", tmp_path / "r.md"]
        assert cli("flops", "-p", "micro", "--csv", paths[0], "--json", paths[1], "--markdown", paths[2]).code == 0
    finally:
        os.umask(old)
    assert [stat.S_IMODE(os.stat(p).st_mode) for p in paths] == [0o644] * 3  # 0666 & ~022, not mkstemp's 0600


def test_hybrid_shorter_than_its_period_says_so(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    r = cli("flops", "mha", "hybrid", "-p", "micro", "--json", "-")
    hybrid = r.rows()[1]
    # micro has 4 layers; the default hybrid's period is 7 linear + 1 gqa: the 4 layers are all linear.
    assert hybrid["layers"] == 4 and hybrid["stack"] == "4×linear" and hybrid["stack_missing"] == "gqa-kv2"
    caption = " ".join(r.err.split())
    assert "hybrid-7×linear+gqa-kv2 on 4 layers is 4×linear" in caption and "no gqa-kv2 layer" in caption
    whole = cli("flops", "hybrid", "-p", "micro", "--layers", "8", "--json", "-")
    assert whole.rows()[0]["stack_missing"] is None and "fewer layers than one period" not in whole.err


def test_threads_beyond_the_cores_warn(cli, monkeypatch):
    from attncli import cli as cli_module

    monkeypatch.setattr(cli_module, "_cores", lambda: 2)
    r = cli("bench", "--threads", "3", "-p", "micro", "-s", "4", "--min-time", "0", "--device", "cpu", "--json", "-")
    assert r.code == 0
    assert ("attncli: warning: --threads 3 is more than the 2 CPU cores this process can use; the threads will "
            "share cores and the timings measure that contention") in r.err  # fmt: skip
    r = cli("bench", "--threads", "2", "-p", "micro", "-s", "4", "--min-time", "0", "--device", "cpu", "--json", "-")
    assert "warning" not in r.err
    real = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    monkeypatch.undo()
    assert cli_module._cores() == real


def test_a_save_io_file_is_accepted_by_inputs(cli, tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    from test_convert import make

    ckpt = make(tmp_path / "ckpt", layers=1)
    first, again = tmp_path / "io.safetensors", tmp_path / "again.safetensors"
    common = ("--device", "cpu", "--dtype", "float32", "--min-time", "0", "--json", "-")
    r = cli("bench", "--weights", ckpt, "-s", "6", "-b", "2", "--save-io", first, *common)
    assert r.code == 0, r.err
    r = cli("bench", "--weights", ckpt, "--inputs", first, "--save-io", again, *common)
    assert r.code == 0, r.err
    row = r.rows()[0]
    assert (row["batch"], row["seq_len"], row["inputs"]) == (2, 6, str(first))
    a, b = load_file(str(first)), load_file(str(again))
    assert torch.equal(a["input"], b["input"])  # the saved input went in unchanged
    assert torch.equal(a["output_float64"], b["output_float64"])  # so the same layer gives the same output


def _sweep_rows(cli, tmp_path):
    from attncli import report

    saved = tmp_path / "s.csv"
    assert cli("sweep", "mha", "mla", "-p", "small", "-s", "128:1024", "--csv", saved).code == 0
    return saved, report.read_rows(str(saved))


def test_plot_says_what_it_shows_and_coinciding_lines_stay_visible(cli, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from attncli import plot

    _, rows = _sweep_rows(cli, tmp_path)
    fig, n = plot.figure(rows)
    try:
        assert fig._suptitle.get_text().startswith("preset small · prefill and decode · bfloat16 · 6 layers · batch 1")
        kv = fig.axes[0]
        assert kv.get_title() == "KV cache"
        fig.canvas.draw()
        ticks = [t.get_text() for t in kv.get_yticklabels() if t.get_text()]
        assert ticks and all(t.endswith(("KiB", "MiB", "GiB")) for t in ticks), ticks
        lines = {line.get_label(): line for line in kv.get_lines()}
        naive, absorbed = lines["mla-r256-naive prefill"], lines["mla-r256-absorb prefill"]
        assert list(naive.get_ydata()) == list(absorbed.get_ydata())  # the same cache: the lines coincide
        style = lambda line: (line.get_linestyle(), line.get_marker(), line.get_linewidth())  # noqa: E731
        assert len({style(line) for line in kv.get_lines()}) == len(kv.get_lines())  # each drawn its own way
        assert naive.get_linewidth() != absorbed.get_linewidth() and naive.get_markerfacecolor() == "none"
    finally:
        plt.close(fig)


def test_report_group_by_adds_to_the_line_key(cli, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from attncli import plot

    _, rows = _sweep_rows(cli, tmp_path)
    fig, _ = plot.figure(rows, ["mode"])
    try:
        labels = {line.get_label() for line in fig.axes[0].get_lines()}
        # every variant keeps its own line per mode (the key was label + mode; --group-by mode adds nothing new)
        assert labels == {f"{v} {m}" for v in ("mha", "mla-r256-naive", "mla-r256-absorb") for m in ("prefill", "decode")}
    finally:
        plt.close(fig)
    fig, _ = plot.figure([r for r in rows if r["mode"] == "prefill"], ["batch"])
    try:
        labels = {line.get_label() for line in fig.axes[0].get_lines()}
        assert labels == {"mha 1", "mla-r256-naive 1", "mla-r256-absorb 1"}  # label kept, batch added
    finally:
        plt.close(fig)
