#!/usr/bin/env python
"""Mutation testing for the modules whose numbers attncli prints (docs/testing.md).

Each mutant is one small change to one module's syntax tree (an operator swapped, a comparison
loosened, a constant moved by one, a condition negated). The module's tests run against it; the
mutant is *killed* when a test fails (or the run times out), and *survives* when every test still
passes: a change nothing notices. Survivors are printed with their line, to be killed by a new
test or explained as equivalent (the same behaviour written differently).

How it runs: the checkout is copied once to a temporary folder; one parent process imports the
heavy libraries (torch, pandas, hypothesis, …) and forks a child per mutant, which writes the
mutated module into the copy, imports attncli fresh and runs pytest on that module's test files
(`-x`: the first failure kills). Each child has a timeout (3 × its phase's clean run, at least
`--min-timeout` seconds). Not part of CI: it takes minutes per module.

    nice -n 19 python tools/mutate.py                       # every module in MODULES
    nice -n 19 python tools/mutate.py cost serving params   # some of them (short names)
    python tools/mutate.py cost --list                      # the mutants, without running them
    python tools/mutate.py sweep --sample 40 --seed 1       # a seeded sample of a module's mutants
    python tools/mutate.py cost --json out.json             # also write every result as JSON
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT  # where module sources are read: the copy once it exists (a merge mid-run changes nothing)

# Module (short name → path) and the test files that cover it: a mutant is run against these only.
# HEAVY_TESTS (a pytest -k expression) names the slow ones (torch modules, FlopCounterMode): they
# run second, only for a mutant the fast ones did not kill.
MODULES: dict[str, tuple[str, list[str]]] = {
    "cost": ("attncli/cost.py", ["tests/test_cost_hand.py", "tests/test_cost_reference.py", "tests/test_cost_bytes.py", "tests/test_hfconfig_layers.py",
                                 "tests/test_hfconfig.py", "tests/test_hfconfig_more_types.py",
                                 "tests/test_hfconfig_published.py", "tests/test_hfconfig_ssm.py", "tests/test_cost_kv.py",
                                 "tests/test_cost_flops.py", "tests/test_cost_mla.py", "tests/test_mla_bytes.py",
                                 "tests/test_sizes_reference.py", "tests/test_swa.py", "tests/test_linear.py",
                                 "tests/test_hybrid.py", "tests/test_verify_flops.py"]),
    "serving": ("attncli/serving.py", ["tests/test_serving_hand.py", "tests/test_hfconfig_layers.py", "tests/test_hfconfig_ssm.py",
                                       "tests/test_hfconfig_more_types.py", "tests/test_hfconfig_published.py",
                                       "tests/test_hfconfig_sweep.py", "tests/test_hfconfig_docs.py", "tests/test_models.py",
                                       "tests/test_cost_kv.py", "tests/test_hybrid.py", "tests/test_tp.py"]),
    "params": ("attncli/params.py", ["tests/test_params_reference.py", "tests/test_models.py", "tests/test_cost_bytes.py",
                                     "tests/test_cost_flops.py", "tests/test_hfconfig_published.py",
                                     "tests/test_hfconfig.py", "tests/test_hfconfig_more_types.py"]),
    "error": ("attncli/measure/error.py", ["tests/test_error_reference.py", "tests/test_measure_grading.py"]),
    "timing": ("attncli/measure/timing.py", ["tests/test_timing_clock.py", "tests/test_measure_timing.py",
                                             "tests/test_timing.py", "tests/test_interleave.py", "tests/test_peak_reference.py"]),
    "peak": ("attncli/measure/peak.py", ["tests/test_peak_hand.py", "tests/test_peak_reference.py", "tests/test_measure_peak.py",
                                           "tests/test_cost_bytes.py", "tests/test_model_rows.py"]),
    "common": ("attncli/variants/common.py", ["tests/test_rope_reference.py", "tests/test_variants_gqa.py",
                                              "tests/test_position.py", "tests/test_swa.py", "tests/test_mla.py",
                                              "tests/test_weights_rope.py", "tests/test_decode_fast_path.py",
                                              "tests/test_weights_variant_fields.py", "tests/test_weights_architectures.py"]),
    "sweep": ("attncli/sweep.py", ["tests/test_sweep_plan.py", "tests/test_sweep_reference.py", "tests/test_sweep.py", "tests/test_reliability_sweep.py",
                                   "tests/test_hfconfig_sweep.py"]),
}  # fmt: skip

HEAVY_TESTS = {
    "cost": "allocated or flop_counter or really_keeps or module_parameters or cache_tensors_hold",
    "params": "bench or compare or module_parameters or flop_counter or sliding_layers",
    "serving": "bench or compare or sliding_layers or torch",
    "common": "transformers or checkpoint or weights",
    "sweep": "sigint or measure or resume_measures or oom",
}

# Libraries every child would import: imported once in the parent, so a child starts in milliseconds.
HEAVY = ("torch", "torch.nn.functional", "torch.utils.flop_counter", "pandas", "numpy", "yaml", "typer", "rich",
         "rich.console", "rich.table", "hypothesis", "hypothesis.strategies", "pytest", "safetensors")  # fmt: skip

BINOPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
          ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.LShift: ast.RShift, ast.RShift: ast.LShift}  # fmt: skip
CMPOPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
          ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}  # fmt: skip
BOOLOPS = {ast.And: ast.Or, ast.Or: ast.And}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
          ast.LShift: "<<", ast.RShift: ">>", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
          ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.And: "and",
          ast.Or: "or"}  # fmt: skip


@dataclass
class Mutant:
    module: str
    index: int  # the index-th mutable spot of the module, in tree order (stable while the file is)
    line: int
    what: str  # e.g. "+ -> -", "128 -> 129", "not removed"
    source: str  # the original line, stripped
    status: str = "pending"  # killed, survived, timeout, error (the mutated file does not compile)
    seconds: float = 0.0


def _skipped_subtrees(tree: ast.AST) -> set[int]:
    """ids of nodes not to mutate: docstrings, f-strings (message text), annotations, error messages
    (the arguments of a `raise`), and `__all__`."""
    skip: set[int] = set()

    def mark(node):
        for n in ast.walk(node):
            skip.add(id(n))

    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            mark(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if a.annotation is not None:
                    mark(a.annotation)
            if node.returns is not None:
                mark(node.returns)
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif isinstance(node, ast.Raise) and node.exc is not None:
            mark(node.exc)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                mark(first)
    return skip


def _spots(tree: ast.AST):
    """(node, kind, description) for every mutable spot, in tree order."""
    skip = _skipped_subtrees(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINOPS:
            yield node, "binop", f"{SYMBOL[type(node.op)]} -> {SYMBOL[BINOPS[type(node.op)]]}"
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in CMPOPS:
                    yield (node, i), "cmp", f"{SYMBOL[type(op)]} -> {SYMBOL[CMPOPS[type(op)]]}"
        elif isinstance(node, ast.BoolOp):
            yield node, "boolop", f"{SYMBOL[type(node.op)]} -> {SYMBOL[BOOLOPS[type(node.op)]]}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            yield node, "unary", f"{'not' if isinstance(node.op, ast.Not) else 'unary -'} removed"
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            v = node.value
            new = v + 1 if isinstance(v, int) else (v * 2 if v else 1.0)
            yield node, "const", f"{v!r} -> {new!r}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            yield node, "const", f"{node.value!r} -> {not node.value!r}"
        elif isinstance(node, (ast.If, ast.While, ast.IfExp)) and not _negation_is_covered(node.test):
            yield node, "cond", "condition negated"


NEGATING = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)  # swapping these negates the test


def _negation_is_covered(test: ast.AST) -> bool:
    """`if not x` (the removal of `not`) and `if a is None` (`is` -> `is not`) already give the negation."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return True
    return isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], NEGATING)


def _node_line(spot) -> int:
    node = spot[0] if isinstance(spot, tuple) else spot
    return getattr(node, "lineno", 0)


def mutants_of(name: str) -> list[Mutant]:
    path = MODULES[name][0]
    text = (SOURCE / path).read_text(encoding="utf-8")
    lines = text.splitlines()
    out = []
    for i, (spot, _kind, what) in enumerate(_spots(ast.parse(text))):
        line = _node_line(spot)
        out.append(Mutant(name, i, line, what, lines[line - 1].strip() if line else ""))
    return out


class _Apply(ast.NodeTransformer):
    """Rewrites the index-th spot of the tree (same walk as _spots, on a fresh copy)."""

    def __init__(self, tree: ast.AST, index: int):
        spot, kind, _ = list(_spots(tree))[index]
        self.kind, self.target = kind, spot

    def apply(self, tree):
        spot, kind = self.target, self.kind
        if kind == "binop":
            spot.op = BINOPS[type(spot.op)]()
        elif kind == "cmp":
            node, i = spot
            node.ops[i] = CMPOPS[type(node.ops[i])]()
        elif kind == "boolop":
            spot.op = BOOLOPS[type(spot.op)]()
        elif kind == "const":
            v = spot.value
            spot.value = (not v) if isinstance(v, bool) else (v + 1 if isinstance(v, int) else (v * 2 if v else 1.0))
        elif kind == "unary":
            tree = self._replace(tree, spot, spot.operand)
        elif kind == "cond":
            spot.test = ast.UnaryOp(op=ast.Not(), operand=spot.test)
        return ast.fix_missing_locations(tree)

    @staticmethod
    def _replace(tree, old, new):
        class R(ast.NodeTransformer):
            def visit(self, node):
                return new if node is old else super().visit(node)

        return R().visit(tree)


def mutated_source(name: str, index: int, text: str | None = None) -> str:
    """The module with its index-th mutation applied to `text` (default: the file as it is now;
    run_module passes the clean text, since each child leaves its mutant written in the copy)."""
    path = MODULES[name][0]
    tree = ast.parse(text if text is not None else (SOURCE / path).read_text(encoding="utf-8"))
    return ast.unparse(_Apply(tree, index).apply(tree))


# ------------------------------------------------------------------------------------------------
# running


def _copy_checkout() -> Path:
    dest = Path(tempfile.mkdtemp(prefix="attncli-mutate-"))
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", "build",
                                    "dist", "*.egg-info")  # fmt: skip
    for item in ("attncli", "presets", "tests", "pyproject.toml", "README.md", "docs", "benchmarks"):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / item)
    return dest


def _phases(name: str, tests: list[str]) -> list[list[str]]:
    """pytest arguments: the first file alone (the module's own hand-derived tests: most mutants
    die there, before the other files are even collected), then the fast rest, then (if any) the
    heavy ones."""
    heavy = HEAVY_TESTS.get(name)
    first, rest = tests[:1], tests[1:]
    phases = [first] if rest else []
    phases += [tests + ["-k", f"not ({heavy})"], tests + ["-k", heavy]] if heavy else [tests]
    return phases


def _run(copy_root, module_path, source, name, tests, timeouts: list[float]) -> tuple[str, list[float]]:
    """Killed as soon as one phase fails; survived when every phase passes. `timeouts`: seconds
    per phase (_phases); returns the status and the seconds of each phase that ran."""
    spent = []
    for args, limit in zip(_phases(name, tests), timeouts):
        status, t = _run_child(copy_root, module_path, source, args, limit)
        spent.append(t)
        if status != "survived":
            return status, spent
    return "survived", spent


def _run_child(copy_root: Path, module_path: str, source: str | None, tests: list[str], timeout: float) -> tuple[str, float]:
    """Fork; the child writes `source` over the module (None: the clean file) and runs pytest."""
    target = copy_root / module_path
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.setpgid(0, 0)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            if source is not None:
                target.write_text(source, encoding="utf-8")
            os.chdir(copy_root)
            sys.path[:0] = [str(copy_root), str(copy_root / "tests")]
            import pytest

            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=", *tests])
            os._exit(0 if int(code) == 5 else int(code))  # 5: no test selected in this phase
        except BaseException:  # noqa: BLE001 - a mutant that breaks the import is killed, not a crash of the tool
            os._exit(99)
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.perf_counter() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            code = None
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    if code is None:
        return "timeout", elapsed
    return ("survived" if code == 0 else "killed"), elapsed


def _wait_while_paused(pause_file: str | None, say) -> None:
    """Hold before the next mutant while `pause_file` exists (a benchmark wants the cores)."""
    if pause_file and os.path.exists(pause_file):
        say(f"  paused while {pause_file} exists")
        while os.path.exists(pause_file):
            time.sleep(1.0)


def run_module(name: str, copy_root: Path, mutants: list[Mutant], min_timeout: float, say,
               budget: float | None = None, pause_file: str | None = None,
               after_each: Callable[[], None] = lambda: None) -> list[Mutant]:  # fmt: skip
    module_path, tests = MODULES[name]
    clean = (copy_root / module_path).read_text(encoding="utf-8")
    status, phase_seconds = _run(copy_root, module_path, None, name, tests, [1800.0] * len(_phases(name, tests)))
    base = sum(phase_seconds)
    if status != "survived":
        say(f"{name}: skipped, the clean tests do not pass ({status} after {base:.0f} s); fix them before mutating")
        return mutants
    timeout = [max(min_timeout, 3 * t) for t in phase_seconds]  # per phase: a hang dies at its own phase's pace
    say(f"{name}: {len(mutants)} mutants, tests {', '.join(Path(t).name for t in tests)} "
        f"(clean run {base:.1f} s, timeouts {', '.join(f'{t:.0f}' for t in timeout)} s by phase)")  # fmt: skip
    began = time.perf_counter()
    try:
        for m in mutants:
            _wait_while_paused(pause_file, say)
            if budget is not None and time.perf_counter() - began > budget:
                say(f"  {name}: --budget spent; {sum(x.status == 'pending' for x in mutants)} mutants not run")
                break
            try:
                src = mutated_source(name, m.index, clean)  # never mutant on mutant
                compile(src, module_path, "exec")
            except (SyntaxError, ValueError):
                m.status = "error"
                continue
            m.status, spent = _run(copy_root, module_path, src, name, tests, timeout)
            m.seconds = sum(spent)
            (copy_root / module_path).write_text(clean, encoding="utf-8")  # the child left its mutant there
            if m.status == "survived":
                say(f"  survived #{m.index} line {m.line}: {m.what}    {m.source}")
            after_each()
    finally:
        (copy_root / module_path).write_text(clean, encoding="utf-8")
    return mutants


def summary(results: dict[str, list[Mutant]]) -> list[str]:
    lines = [f"{'module':<8} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'killed %':>8}"]
    total = killed_all = 0
    for name, ms in results.items():
        ran = [m for m in ms if m.status in ("killed", "survived", "timeout")]
        killed = sum(m.status in ("killed", "timeout") for m in ran)
        survived = sum(m.status == "survived" for m in ran)
        timeout = sum(m.status == "timeout" for m in ran)
        total, killed_all = total + len(ran), killed_all + killed
        pct = 100 * killed / len(ran) if ran else 0.0
        lines.append(f"{name:<8} {len(ran):>7} {killed - timeout:>6} {timeout:>7} {survived:>8} {pct:>7.1f}%")
    if total:
        lines.append(f"{'all':<8} {total:>7} {'':>6} {'':>7} {total - killed_all:>8} {100 * killed_all / total:>7.1f}%")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"short names (default: all): {', '.join(MODULES)}")
    ap.add_argument("--list", action="store_true", help="print the mutants and exit")
    ap.add_argument("--sample", type=int, help="run a seeded sample of this many mutants per module")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", help="comma list of mutant indices (with one module)")
    ap.add_argument("--min-timeout", type=float, default=30.0)
    ap.add_argument("--json", help="write every mutant's result to this file")
    ap.add_argument("--budget", type=float, help="seconds per module: stop starting mutants after this")
    ap.add_argument("--pause-file", help="while this file exists, start no new mutant (free the cores for a benchmark)")
    a = ap.parse_args()
    global SOURCE
    names = a.modules or list(MODULES)
    for n in names:
        if n not in MODULES:
            raise SystemExit(f"unknown module '{n}' (choices: {', '.join(MODULES)})")
    copy_root = None if a.list else _copy_checkout()
    SOURCE = copy_root or ROOT
    chosen = {}
    for n in names:
        ms = mutants_of(n)
        if a.only:
            keep = {int(i) for i in a.only.split(",")}
            ms = [m for m in ms if m.index in keep]
        if a.sample and a.sample < len(ms):
            ms = sorted(random.Random(a.seed).sample(ms, a.sample), key=lambda m: m.index)
        chosen[n] = ms
    if a.list:
        for n, ms in chosen.items():
            for m in ms:
                print(f"{n} #{m.index} line {m.line}: {m.what}    {m.source}")
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    say = lambda s: print(s, flush=True)  # noqa: E731
    os.environ["PYTHONPATH"] = str(copy_root)
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    for lib in HEAVY:
        try:
            __import__(lib)
        except ImportError:
            pass
    if "common" in chosen:
        import transformers  # noqa: F401 - the RoPE reference test uses it

    results = {}
    start = time.perf_counter()

    def write_json():  # after every mutant, so a long run can be read (or resumed by --only) before it ends
        if a.json:
            Path(a.json).write_text(json.dumps({n: [asdict(m) for m in ms] for n, ms in results.items()}, indent=1))

    try:
        for n, ms in chosen.items():
            results[n] = ms  # in the summary even when interrupted mid-module
            run_module(n, copy_root, ms, a.min_timeout, say, a.budget, a.pause_file, write_json)
    except KeyboardInterrupt:
        say("interrupted: the summary covers the mutants run so far")
    finally:
        shutil.rmtree(copy_root, ignore_errors=True)
    say(f"\nmutation summary ({time.perf_counter() - start:.0f} s):")
    for line in summary(results):
        say(line)
    not_run = sum(m.status == "pending" for ms in results.values() for m in ms)
    if not_run:
        say(f"({not_run} mutants not run: --budget, a skipped module or an interruption)")
    write_json()


if __name__ == "__main__":
    main()
