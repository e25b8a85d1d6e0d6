"""Shared by the benchmark scripts: run attncli in this process and read its rows back."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout: measure this checkout's attncli
    sys.path.insert(0, str(ROOT))


def private_cache() -> str:
    """Point the peak cache at a fresh temporary folder (the user's cache is left alone)."""
    folder = tempfile.mkdtemp(prefix="attncli-bench-cache-")
    os.environ["XDG_CACHE_HOME"] = folder
    return folder


def attncli(*args: str, show: bool = False) -> list[dict]:
    """Run `attncli ARGS --json FILE` in this process; return its rows (tables hidden unless `show`)."""
    from attncli.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.json")
        sink = contextlib.nullcontext() if show else contextlib.redirect_stdout(io.StringIO())
        with sink:
            code = main([*args, "--json", path])
        if code != 0:
            raise SystemExit(f"attncli {' '.join(args)} exited {code}")
        with open(path, encoding="utf-8") as f:
            return json.load(f)
