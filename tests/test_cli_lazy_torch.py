"""Analytic commands never import torch (DESIGN.md), now that `peak` and the roofline exist."""

from conftest import torch_imported_by


def test_analytic_commands_and_help_do_not_import_torch():
    commands = (["kv-memory"], ["flops", "-m", "both"], ["presets"], ["--help"], ["peak", "--help"], ["bench", "--help"])
    imported, codes = torch_imported_by(*commands)
    assert codes == [0] * len(commands)
    assert not imported
