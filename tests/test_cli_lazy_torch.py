"""Commands that promise not to import torch (DESIGN.md: the analytic path is torch-free) are run in
a fresh interpreter (conftest.torch_loaded_after), each checked on its own, so that neither the
test process nor an earlier test's import can hide one."""

from conftest import torch_loaded_after

ANALYTIC = (
    ["kv-memory"],
    ["kv-memory", "gqa", "mla", "-p", "llama-3.1-8b", "--tp", "2", "--include-weights"],
    ["flops", "-m", "both"],
    ["flops", "mla", "hybrid", "--per-layer"],
    ["presets"],
    ["--help"],
    ["peak", "--help"],
    ["bench", "--help"],
    ["sweep", "--help"],
)


def test_analytic_commands_and_help_do_not_import_torch(tmp_path):
    csv = tmp_path / "s.csv"
    commands = [
        *ANALYTIC,
        ["sweep", "mha", "gqa", "-s", "128:512"],  # the table only
        ["sweep", "mha", "mla", "-s", "128,256", "--csv", csv],
        ["report", csv],
        ["report", csv, "--group-by", "mode", "--json", tmp_path / "r.json"],
    ]
    loaded, codes = torch_loaded_after(*commands)
    assert codes == [0] * len(commands)
    assert [c for c, imported in zip(commands, loaded) if imported] == []
    assert csv.read_text().count("\n") > 1  # the sweep really wrote rows for report to read


def test_cpu_preflight_refuses_before_torch_in_a_fresh_process():
    """On an explicit --device cpu, a hopeless request is refused (exit 3) before torch is imported:
    checked in a process of its own, whatever the test process already imported. Ten million
    tokens of large need terabytes: no machine running the suite has them."""
    commands = (
        ["bench", "mha", "-p", "large", "-s", "10000000", "--device", "cpu"],
        ["compare", "mha", "gqa", "-p", "large", "-s", "10000000", "--device", "cpu"],
    )
    loaded, codes = torch_loaded_after(*commands)
    assert codes == [3, 3]
    assert loaded == [False, False]
