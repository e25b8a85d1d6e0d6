"""Regenerate every console block of README.md and docs/*.md from its own commands, at 100 columns.

A console block is a fenced block tagged `console`; its lines that begin with `$ ` are commands,
the lines after each command are that command's output:

    ```console
    $ attncli flops mha gqa -p small
    FLOPs · preset small · ...
    ```

Each block runs on its own in a fresh temporary folder (files one command writes, e.g. a sweep's
CSV, are there for the next command of the block), with `attncli` meaning this checkout, COLUMNS=100,
an empty peak cache, stdout and stderr together, trailing spaces removed. Blocks whose commands
measure (bench, compare, peak, convert, sweep --measure) give other figures on every run;
tests/test_docs_blocks.py checks the analytic blocks (flops, kv-memory, presets, report, analytic
sweep) for an exact match, so after a change to any table run:

    .venv/bin/python docs/regenerate.py            # every block of README.md and docs/*.md
    .venv/bin/python docs/regenerate.py --analytic # only the blocks the test checks (seconds)
    .venv/bin/python docs/regenerate.py docs/real-models.md   # one file
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 100
FENCE = re.compile(r"^```console\n(.*?)^```\n", re.S | re.M)
MEASURING = {"bench", "compare", "peak", "convert"}


@dataclass
class Block:
    start: int  # offsets of the block's body in the file's text
    end: int
    commands: list[str]
    body: str

    @property
    def measured(self) -> bool:
        return any(measures(c) for c in self.commands)


def measures(command: str) -> bool:
    """Whether an `attncli ...` command line measures (its figures change from run to run)."""
    words = shlex.split(command, comments=True)
    if not words or words[0] != "attncli" or len(words) < 2:
        return False
    return words[1] in MEASURING or (words[1] == "sweep" and "--measure" in words)


def blocks(text: str) -> list[Block]:
    found = []
    for m in FENCE.finditer(text):
        body = m.group(1)
        commands = [line[2:] for line in body.splitlines() if line.startswith("$ ")]
        found.append(Block(m.start(1), m.end(1), commands, body))
    return found


def run(commands: list[str]) -> str:
    """The block body these commands print: each `$ command`, its output, a blank line between."""
    with tempfile.TemporaryDirectory(prefix="attncli-docs-") as tmp:
        bin_dir = Path(tmp) / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "attncli"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m attncli "$@"\n')
        shim.chmod(0o755)
        env = {**os.environ, "COLUMNS": str(WIDTH), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(Path(tmp) / "cache"), "TERM": "dumb"}  # fmt: skip
        env.pop("NO_COLOR", None)
        work = Path(tmp) / "work"
        work.mkdir()
        parts = []
        for command in commands:
            p = subprocess.run(["bash", "-c", command], cwd=work, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=600)  # fmt: skip
            output = "\n".join(line.rstrip() for line in p.stdout.rstrip("\n").splitlines())
            parts.append(f"$ {command}\n{output}\n" if output else f"$ {command}\n")
        return "\n".join(parts)


def regenerate(path: Path, analytic_only: bool = False) -> int:
    """Rewrite the console blocks of one file; the number of blocks that changed."""
    text = path.read_text(encoding="utf-8")
    changed, pieces, last = 0, [], 0
    for block in blocks(text):
        pieces.append(text[last : block.start])
        new = block.body
        if block.commands and not (analytic_only and block.measured):
            new = run(block.commands)
            changed += new != block.body
        pieces.append(new)
        last = block.end
    pieces.append(text[last:])
    if changed:
        path.write_text("".join(pieces), encoding="utf-8")
    return changed


def files(names: list[str]) -> list[Path]:
    if names:
        return [Path(n).resolve() for n in names]
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="markdown files (default: README.md and docs/*.md)")
    parser.add_argument("--analytic", action="store_true", help="only the blocks that do not measure")
    args = parser.parse_args(argv)
    for path in files(args.files):
        n = regenerate(path, analytic_only=args.analytic)
        print(f"{path.relative_to(ROOT)}: {n} block{'s' if n != 1 else ''} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
