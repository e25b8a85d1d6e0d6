"""--columns, --wide and --markdown on every command; captions built from the rows (issue 15)."""

import pytest

from attncli import report, views


def markdown_table(text: str) -> tuple[list[str], list[list[str]]]:
    """Parse a GitHub-flavoured markdown table: header cells, then the body rows' cells. The
    delimiter row must have one `---` cell (optionally with colons) per header cell."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(lines) >= 2, text

    def cells(line):
        assert line.startswith("|") and line.endswith("|"), line
        parts, cur, i = [], "", 1
        while i < len(line) - 1:
            if line[i] == "\\" and i + 1 < len(line) - 1:
                cur += line[i + 1]
                i += 2
                continue
            if line[i] == "|":
                parts.append(cur.strip())
                cur = ""
            else:
                cur += line[i]
            i += 1
        parts.append(cur.strip())
        return parts

    header, delim, *body = (cells(x) for x in lines)
    assert len(delim) == len(header) and all(d.strip(":") and set(d.strip(":")) == {"-"} for d in delim), delim
    assert all(len(b) == len(header) for b in body)
    return header, body


def test_markdown_to_stdout_is_the_views_table(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # the terminal's width does not narrow the markdown
    r = cli("kv-memory", "mha", "gqa", "-p", "small", "-s", "1024,4096", "--budget", "1GiB", "--markdown", "-")
    assert r.code == 0, r.err
    header, body = markdown_table(r.out)
    rows_json = cli("kv-memory", "mha", "gqa", "-p", "small", "-s", "1024,4096", "--budget", "1GiB", "--json", "-").rows()
    expected = report.layout(rows_json, "kv-memory", None).columns
    assert header == [report.HEADER.get(c, c) for c in expected]
    # The view's columns in priority order, constants (preset, batch, layers, dtype) in the title.
    assert header[:3] == ["variant", "seq len", "KV cache"] and "preset" not in header
    assert "**KV cache · preset small · batch 1 · 6 layers · bfloat16 · budget 1 GiB per GPU**" in r.out
    # Hand figures: 2 (K, V) × 8 heads × 64 dims × 2 bytes × 6 layers per token; mha at 1,024 = 12 MiB.
    assert body[0][:3] == ["mha", "1,024", "12 MiB"] and body[2][:3] == ["mha", "4,096", "48 MiB"]
    assert len(body) == 4 and "┏" in r.err  # the Rich table went to stderr


def test_markdown_file_and_escaping(cli, tmp_path):
    out = tmp_path / "t.md"
    r = cli("flops", "hybrid:softmax=[gqa:n_kv_heads=2]", "mha", "-p", "micro", "--markdown", out)
    assert r.code == 0, r.err
    text = out.read_text()
    header, body = markdown_table(text)
    assert header[0] == "variant" and len(body) == 2
    assert "FLOPs" in header


def test_markdown_and_csv_cannot_both_take_stdout(cli):
    r = cli("flops", "--csv", "-", "--markdown", "-")
    assert r.code == 2 and r.err.count("\n") == 1 and "only one of them can write to stdout" in r.err


@pytest.mark.parametrize("command", [["flops"], ["kv-memory"], ["presets"], ["report", "x.csv"],
                                     ["bench", "--device", "cpu"], ["compare"], ["sweep"], ["peak"],
                                     ["convert", "DIR"]])  # fmt: skip
def test_unknown_column_is_one_line_with_the_closest_name(cli, command):
    r = cli(*command, "--columns", "label,latency_ms_medain")
    assert r.code == 2, r.err
    assert r.err == ("attncli: --columns: unknown column 'latency_ms_medain'; did you mean 'latency_ms_median'? "
                     "(--columns all shows every one)\n")  # fmt: skip


def test_columns_picks_by_schema_name_in_the_order_given(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    r = cli("flops", "-p", "micro", "--columns", "kv_cache_bytes,label,params,preset", "--json", "-")
    assert r.code == 0, r.err
    head = [line for line in r.err.splitlines() if "┃" in line]
    words = " ".join(head).replace("┃", " ").split()
    assert words == ["KV", "cache", "variant", "params", "preset"]
    # A constant asked for as a column is a column, and no longer in the title.
    assert "preset micro" not in r.err.splitlines()[0]


def test_columns_all_is_wide(cli):
    a = cli("presets", "--columns", "all")
    b = cli("presets", "--wide")
    assert a.code == b.code == 0 and a.out == b.out and "description" in a.out and "source" in a.out


def test_every_command_declares_the_view_options(cli):
    for command in ("flops", "kv-memory", "presets", "report", "bench", "compare", "sweep", "peak", "convert"):
        r = cli(command, "--help")
        assert r.code == 0
        for option in ("--columns", "--wide", "--markdown"):
            assert option in r.out, (command, option)


def test_caption_notes_name_the_rows_they_are_about():
    rows = [{"label": "mha", "mode": "prefill", "seq_len": 8, "backend_used": "flash", "device_name": "X",
             "backend": "auto", "torch_version": "2", "seed": 0, "device": "cpu", "dtype": "float32", "threads": 1},
            {"label": "mla", "mode": "prefill", "seq_len": 8, "backend_used": "math"},
            {"label": "mla", "mode": "decode", "seq_len": 8, "backend_used": "math"}]  # fmt: skip
    caption = report.caption_for(rows, "bench")
    assert "SDPA backend auto → flash: mha prefill; math: mla prefill, mla decode" in caption
    assert views.which(rows, lambda r: True) == "every row"
    assert views.which(rows, lambda r: False) is None


def test_a_registered_note_reaches_the_caption(monkeypatch):
    monkeypatch.setitem(views.NOTES, "flops", [*views.NOTES.get("flops", []), lambda rows: "hello from a note"])
    assert report.caption_for([{"label": "mha"}], "flops").endswith("hello from a note")
