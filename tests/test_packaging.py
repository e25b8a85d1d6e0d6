"""The package as users get it: README commands, CI script, presets inside the wheel."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from attncli.rows import COLUMNS

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```")[1]
    return [line for line in first_block.splitlines()[1:] if line.strip()]


def test_readme_begins_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert text.startswith("# attncli\n\n```bash\n")
    setup_and_run, setup_and_test = readme_commands()
    assert setup_and_run.startswith("python3 -m venv .venv") and setup_and_run.endswith("attncli compare mha gqa")
    assert "torch==2.13.0" in setup_and_run and "torch==2.13.0" in setup_and_test
    assert setup_and_test.endswith("-m pytest tests")


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "awk '/^```/ { fence++; next } fence == 1' README.md" in ci
    assert 'bash -c "${commands[0]}"' in ci and 'bash -c "${commands[1]}"' in ci


def test_docs_document_every_row_column():
    table = (ROOT / "docs" / "columns.md").read_text()
    missing = [c for c in COLUMNS if f"`{c}`" not in table]
    assert not missing, f"docs/columns.md lacks {missing}"


@pytest.mark.slow
def test_wheel_ships_the_presets(tmp_path):
    """Build a wheel, install it alone into a folder, and list presets from outside the checkout."""
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", ROOT],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    if p.returncode != 0 and re.search(r"(?i)could not|connection|network|resolve", p.stderr):
        pytest.skip(f"cannot fetch the build backend here: {p.stderr.strip().splitlines()[-1]}")
    assert p.returncode == 0, p.stderr
    wheel = next((tmp_path / "dist").glob("attncli-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"attncli/_presets/{n}.yaml" for n in ("micro", "small", "medium", "large")} <= set(names)
    assert "attncli/variants/decode_kernel.c" in names  # built on first use (variants/cdecode.py)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", target, wheel], check=True)
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "attncli", "presets", "--json", "-"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert '"preset": "small"' in out.stdout
    assert str(target) in subprocess.run(
        [sys.executable, "-c", "import attncli.presets as p; print(p.preset_dirs()[0])"],
        cwd=tmp_path, env=env, capture_output=True, text=True).stdout  # fmt: skip
