import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from attncli.cli import main
from attncli.spec import PresetSpec

# A tiny shape for exact-count tests: 4 query heads of 8, d_model 32.
TINY = PresetSpec(name="tiny", d_model=32, n_heads=4, n_layers=2, variants={"gqa": {"n_kv_heads": 2}})


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets an empty cache directory: no measured peak from the user's machine leaks in."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process through the same `main` the console script uses."""

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return SimpleNamespace(code=code, out=out, err=err, rows=lambda: json.loads(out))

    return run


def run_process(*args, timeout=120):
    """Run `python -m attncli ...` in a fresh interpreter (real exit codes, real stderr)."""
    p = subprocess.run([sys.executable, "-m", "attncli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)  # fmt: skip
    return SimpleNamespace(code=p.returncode, out=p.stdout, err=p.stderr)


def counted(fn) -> int:
    """FLOPs torch's FlopCounterMode counts while fn runs (the independent check of cost.py)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


TORCH_PROBE = """
import contextlib, io, json, sys
from attncli.cli import main
codes = []
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    for args in json.loads(sys.argv[1]):
        codes.append(main(args))
print(json.dumps([any(m == "torch" or m.startswith("torch.") for m in sys.modules), codes]))
"""


def torch_imported_by(*commands):
    """Run attncli commands (argument lists) in one fresh interpreter, as the CLI's `main` runs
    them; returns (whether torch got imported, their exit codes)."""
    p = subprocess.run([sys.executable, "-c", TORCH_PROBE, json.dumps([list(map(str, c)) for c in commands])],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    imported, codes = json.loads(p.stdout.strip().splitlines()[-1])
    return imported, codes
