"""README.md and docs/*.md: every console block is its command's output (docs/regenerate.py); the
analytic ones must match exactly, so a change to a table fails here until the script is rerun.
The README is one screen before its links, and links every page of docs/."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("regenerate", ROOT / "docs" / "regenerate.py")
regenerate = importlib.util.module_from_spec(spec)
sys.modules["regenerate"] = regenerate  # dataclasses look their module up while the file runs
spec.loader.exec_module(regenerate)

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(page, b) for page in PAGES for b in regenerate.blocks(page.read_text(encoding="utf-8"))]
ANALYTIC = [(p, b) for p, b in BLOCKS if not b.measured]


def _id(case):
    page, block = case
    return f"{page.name}:{block.commands[0][:60] if block.commands else '?'}"


def test_every_console_block_names_its_commands():
    assert len(BLOCKS) >= 8 and len(ANALYTIC) >= 4
    for page, block in BLOCKS:
        assert block.commands, f"{page.name}: a console block without a '$ attncli ...' line"
        assert all(c.startswith("attncli ") for c in block.commands), (page.name, block.commands)
        assert block.body.startswith("$ "), page.name  # output always follows the command that printed it


@pytest.mark.parametrize("case", ANALYTIC, ids=_id)
def test_analytic_block_is_its_commands_output(case):
    page, block = case
    fresh = regenerate.run(block.commands)
    assert fresh == block.body, f"{page.name}: rerun `python docs/regenerate.py {page.relative_to(ROOT)}`"


def test_measured_blocks_are_told_apart_by_their_command():
    assert regenerate.measures("attncli compare mha gqa") and regenerate.measures("attncli sweep mha --measure")
    assert not regenerate.measures("attncli sweep mha -s 1k:4k") and not regenerate.measures("attncli kv-memory")
    assert not regenerate.measures("attncli report s.csv")


def test_regenerate_rewrites_a_stale_block(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("text\n\n```console\n$ attncli flops mha -p micro -s 8\nstale output\n```\n\nafter\n")
    assert regenerate.regenerate(page) == 1
    text = page.read_text()
    assert text.startswith("text\n\n```console\n$ attncli flops mha -p micro -s 8\nFLOPs · preset micro")
    assert text.endswith("```\n\nafter\n") and "stale output" not in text
    assert "│ mha " in text
    assert regenerate.regenerate(page) == 0  # a second run changes nothing


def test_readme_is_one_screen_before_its_links():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    before, _, after = text.partition("\n## Read more\n")
    assert after, "README.md has a '## Read more' section"
    assert len(before.splitlines()) <= 150
    commands = [c for page, b in BLOCKS if page.name == "README.md" for c in b.commands]
    assert len(commands) == 5  # five everyday commands, each with its output
    assert "## Exit codes" in after


def test_readme_links_every_docs_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)\)", text))
    wanted = {"variants.md", "real-models.md", "weights.md", "sweeps.md", "measuring.md", "columns.md", "backends.md",
              "tensor-parallel.md", "reliability.md", "testing.md"}  # fmt: skip
    assert wanted <= linked
    assert {p.name for p in (ROOT / "docs").glob("*.md")} <= linked
