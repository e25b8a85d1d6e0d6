import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from hypothesis import settings as hypothesis_settings

from attncli.cli import main
from attncli.spec import PresetSpec

# Property tests (hypothesis). The default profile, `ci`, is derandomised: every run of the suite
# tries the same examples (a seed derived from each test's source), so CI never turns red on a
# draw that did not happen locally. `ATTNCLI_HYPOTHESIS=long` selects the `long` profile: random
# draws, LONG_FACTOR × the examples of every test that sizes itself with `examples(n)`. Run it
# now and then (docs/testing.md); a failure prints a `@reproduce_failure` blob to pin the case.
LONG_FACTOR = 20
hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
hypothesis_settings.register_profile("long", derandomize=False, deadline=None, print_blob=True,
                                     max_examples=LONG_FACTOR * 100)  # fmt: skip
HYPOTHESIS_PROFILE = os.environ.get("ATTNCLI_HYPOTHESIS", "ci")
hypothesis_settings.load_profile(HYPOTHESIS_PROFILE)


def examples(n: int) -> int:
    """A test's max_examples: n in CI (derandomised), LONG_FACTOR × n under the long profile."""
    return n * LONG_FACTOR if HYPOTHESIS_PROFILE == "long" else n


# A tiny shape for exact-count tests: 4 query heads of 8, d_model 32.
TINY = PresetSpec(name="tiny", d_model=32, n_heads=4, n_layers=2, variants={"gqa": {"n_kv_heads": 2}})


@pytest.fixture(autouse=True, scope="session")
def _one_kernel_build(tmp_path_factory):
    """The C decode kernel (variants/cdecode.py) is built once for the whole run, in a folder of its
    own that every test and the subprocesses they start share (each test's cache folder is fresh)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATTNCLI_KERNEL_DIR", str(tmp_path_factory.mktemp("kernels")))
        yield


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets an empty cache directory: no measured peak from the user's machine leaks in."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture(autouse=True)
def _torch_threads_as_asked(monkeypatch):
    """In-process runs keep torch's thread count whatever else the machine runs (a busy CI box would
    otherwise lower it, for the rest of the process); tests/test_load.py injects free cores to test
    that choice."""
    from attncli.measure import load

    monkeypatch.setattr(load, "free_cores_now", lambda seconds=0.1: None)


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


def default_signals() -> None:
    """`preexec_fn` for a child a test signals: SIGINT, SIGTERM and SIGHUP at their defaults, so
    the child handles them even where this run inherited them ignored (`nohup`, `pytest &` from a
    script), which attncli keeps ignored (attncli/signals.py)."""
    import signal

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def counted(fn) -> int:
    """FLOPs torch's FlopCounterMode counts while fn runs (the independent check of cost.py)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


TORCH_PROBE = """
import contextlib, io, json, sys
assert "torch" not in sys.modules
from attncli.cli import main
codes, loaded = [], []
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    for args in json.loads(sys.argv[1]):
        codes.append(main(args))
        loaded.append(any(m == "torch" or m.startswith("torch.") for m in sys.modules))
print(json.dumps([loaded, codes]))
"""


def torch_loaded_after(*commands):
    """Run attncli commands (argument lists) one after the other in one fresh interpreter, as the
    CLI's `main` runs them (never the test process: whatever pytest imported cannot hide an
    import). Returns, per command, whether torch was loaded once it finished, and the exit codes;
    the first True names the command that imported it."""
    p = subprocess.run([sys.executable, "-c", TORCH_PROBE, json.dumps([list(map(str, c)) for c in commands])],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    loaded, codes = json.loads(p.stdout.strip().splitlines()[-1])
    return loaded, codes


def torch_imported_by(*commands):
    """Whether any of the commands imported torch (see torch_loaded_after), and their exit codes."""
    loaded, codes = torch_loaded_after(*commands)
    return any(loaded), codes
