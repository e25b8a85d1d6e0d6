"""Every command's default table at 80, 100 and 120 columns: whole cells on one line, no column
narrower than its widest value, the columns dropped to fit named in the caption (issue 15)."""

import json

import pytest

from attncli import report, views

WIDTHS = (80, 100, 120)


def parse(text: str) -> dict:
    """A Rich table printed with heavy head borders: its title, headers, cells, column widths, caption."""
    lines = [line.rstrip() for line in text.splitlines()]
    top = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    mid = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    bottom = next(i for i, line in enumerate(lines) if line.startswith("└"))
    widths = [len(part) for part in lines[top][1:-1].split("┳")]
    head = [line[1:-1].split("┃") for line in lines[top + 1 : mid]]
    headers = [" ".join(h[i].strip() for h in head if h[i].strip()) for i in range(len(widths))]
    body = [[c.strip() for c in line[1:-1].split("│")] for line in lines[mid + 1 : bottom]]
    return {"title": " ".join(lines[:top]), "headers": headers, "body": body, "widths": widths,
            "caption": " ".join(line.strip() for line in lines[bottom + 1 :]), "lines": lines}  # fmt: skip


def check_fits(table_text: str, rows: list[dict], view: str, width: int) -> dict:
    t = parse(table_text)
    assert max(len(line) for line in t["lines"]) <= width  # the table fits the terminal
    by_header = {report.HEADER.get(c, c): c for c in (*views.TITLE_COLUMNS, *views.VIEWS[view].columns)}
    columns = [by_header[h] for h in t["headers"]]
    assert len(t["body"]) == len(rows)  # one line per row: nothing wrapped
    for i, c in enumerate(columns):
        texts = [report.cell(c, report._value(r, c)) for r in rows]
        assert [line[i] for line in t["body"]] == texts, c  # every cell whole on its row's line
        assert t["widths"][i] - 2 >= max(map(len, texts)), c  # no column narrower than its widest value
        assert t["widths"][i] - 2 >= max(len(w) for w in t["headers"][i].split()), c  # nor than a header word
    full = report.layout(rows, view, None).columns
    assert columns == full[: len(columns)]  # the dropped ones are the lowest-priority
    dropped = full[len(columns) :]
    caption = t["caption"]
    for c in dropped:
        assert c in caption, (c, caption)
    if dropped:
        assert f"not shown at {width} columns" in caption and "--wide" in caption
    return {"columns": columns, "dropped": dropped, "title": t["title"], "caption": caption}


def run_json(cli, *args):
    r = cli(*args, "--json", "-")
    assert r.code == 0, r.err
    return r.rows(), r.err  # rows on stdout, the table on stderr


def _convert_checkpoint(tmp_path):
    from test_convert import make

    return make(tmp_path / "ckpt")


def _cached_peak():
    """A cached peak for this machine's cpu/float32 key, so `peak` prints without measuring."""
    import torch

    from attncli.measure.device import device_name
    from attncli.measure.peak import Peak, save

    assert save(Peak(device_name=device_name(torch.device("cpu")), dtype="float32", torch_version=torch.__version__,
                     threads=torch.get_num_threads(), gflops=123.4, gbps=12.3, matmul_n=512, copy_bytes=2**26,
                     measured_at="2026-01-01T00:00:00")) is None  # fmt: skip


MEASURED = ("--min-time", "0", "-p", "micro", "-s", "8", "--device", "cpu", "--threads", "1")
COMMANDS = {
    "bench": (["bench", "mha", *MEASURED], "bench"),
    "compare": (["compare", "mha", "gqa", "mqa", "mla", *MEASURED], "compare"),
    "kv-memory": (["kv-memory", "-p", "gemma-2-9b", "-s", "8192", "--budget", "19GiB", "--include-weights",
                   "--per-layer"], "kv-memory"),  # fmt: skip
    "flops": (["flops"], "flops"),
    "presets": (["presets"], "presets"),
    "peak": (["peak", "--device", "cpu", "--dtype", "float32"], "peak"),
    "sweep": (["sweep", "mha", "gqa", "mla", "-p", "micro", "-s", "128:1024"], "flops"),
    "convert": (["convert", "CKPT", "-s", "16"], "convert"),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_default_table_fits_80_100_120(cli, tmp_path, monkeypatch, command):
    """Each command at each width; a saved CSV of it (--csv) through `report` at the same width too,
    which must print the command's own table: title, columns, cells and caption."""
    if command == "peak":
        _cached_peak()
    args, view = COMMANDS[command]
    if command == "convert":
        args = [a if a != "CKPT" else _convert_checkpoint(tmp_path) for a in args]
    seen = {}
    for width in WIDTHS:
        monkeypatch.setenv("COLUMNS", str(width))
        saved = tmp_path / f"{width}.csv"
        r = cli(*args, "--csv", saved)
        assert r.code == 0, r.err
        rows = report.read_rows(str(saved))
        seen[width] = check_fits(r.out, rows, view, width)
        again = cli("report", saved)
        assert again.code == 0, again.err
        check_fits(again.out, rows, view, width)
        if command != "peak":  # peak's caption names the cache file it read, which a saved CSV cannot know
            assert again.out == r.out
    # A wider terminal never shows fewer columns.
    assert len(seen[80]["columns"]) <= len(seen[100]["columns"]) <= len(seen[120]["columns"])


def test_compare_at_80_columns_keeps_what_answers_the_question(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rows, text = run_json(cli, *COMMANDS["compare"][0])
    shown = check_fits(text, rows, "compare", 80)
    assert rows[0]["threads"] == 1
    assert shown["columns"][:4] == ["label", "latency_ms_median", "noisy", "speedup_vs_base"] or shown["columns"][:3] == [
        "label", "latency_ms_median", "speedup_vs_base"]  # fmt: skip
    assert "mla-r256-naive" in text and "mla-r256-absorb" in text  # labels whole
    # Constants live in the title, once: preset, mode, seq len, batch, layers, dtype, device, threads.
    title = shown["title"]
    for words in ("preset micro", "prefill", "seq len 8", "batch 1", "1 layer", "float32", "cpu", "1 thread"):
        assert words in title
    assert "threads" not in title and "layers" not in title


def test_presets_fit_drops_description_first(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rows, text = run_json(cli, "presets")
    shown = check_fits(text, rows, "presets", 80)
    assert shown["columns"][:7] == ["preset", "d_model", "n_heads", "head_dim", "n_layers", "d_ff", "gqa_n_kv_heads"]
    assert "description" in shown["dropped"]


def test_wide_shows_every_column_whole_however_wide(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rows, text = run_json(cli, "flops", "--wide")
    t = parse(text)
    assert len(t["body"]) == len(rows) and max(len(line) for line in t["lines"]) > 80
    headers = set(t["headers"])
    for c in ("flops", "proj_flops", "params", "family", "d_model", "kv_bytes_per_token"):
        assert report.HEADER.get(c, c) in headers, c
    assert "not shown" not in t["caption"]
    assert json.dumps(rows)  # files carry every column whatever the table shows
