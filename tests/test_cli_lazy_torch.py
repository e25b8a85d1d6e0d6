"""Analytic commands never import torch (DESIGN.md), now that `peak` and the roofline exist."""

import subprocess
import sys

SCRIPT = """
import contextlib, io, sys
from attncli.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    for args in (["kv-memory"], ["flops", "-m", "both"], ["presets"], ["--help"], ["peak", "--help"], ["bench", "--help"]):
        assert main(args) == 0, args
print("torch" in sys.modules)
"""


def test_analytic_commands_and_help_do_not_import_torch():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
