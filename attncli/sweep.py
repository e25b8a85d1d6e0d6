"""Grid sweeps whose CSV survives interruption. Pure Python (measuring is passed in).

Rows are appended to the CSV and flushed as they finish, so Ctrl-C leaves every finished row on
disk. `--resume` re-reads the file, refuses it when its columns or settings differ from this
sweep's, and runs only the combinations it lacks.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .errors import InputError
from .rows import COLUMNS, COMPARE_COLUMNS, MEASURED_COLUMNS, QUALITY_COLUMNS, ROOFLINE_COLUMNS, TP_COLUMNS
from .spec import AttentionSpec, Shape

KEY_COLUMNS = ("label", "mode", "seq_len", "batch", "tp")  # one combination (tp: --measure --tp; empty otherwise)
SETTING_COLUMNS = ("preset", "dtype", "device", "layers", "seed")  # must agree for --resume


@dataclass(frozen=True)
class Combination:
    spec: AttentionSpec
    shape: Shape
    tp: int | None = None  # ranks the layer is sharded over (--tp); None: unsharded

    @property
    def key(self) -> tuple[str, ...]:
        return _as_csv((self.spec.label, self.shape.mode, self.shape.seq_len, self.shape.batch, self.tp))


def _as_csv(values: Iterable) -> tuple[str, ...]:
    """Values as csv.writer writes them (None → ''), so file rows and planned rows compare."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return tuple(next(csv.reader([buf.getvalue()])))


def header(analytic_columns: Iterable[str], measured: bool, tp: bool = False) -> list[str]:
    """The sweep's columns, in schema order: the analytic ones its rows fill, then measured ones
    (and with `tp`, the tensor-parallel ones)."""
    present = set(analytic_columns) | (set(MEASURED_COLUMNS + QUALITY_COLUMNS + ROOFLINE_COLUMNS) if measured else set())
    if tp:
        present |= set(TP_COLUMNS) | {"tp", "kv_heads_per_gpu"}
    return [c for c in COLUMNS if c in present and c not in COMPARE_COLUMNS]


def plan(combinations: list[Combination], path: str | None, columns: list[str], settings: dict,
         resume: bool, overwrite: bool) -> list[Combination]:  # fmt: skip
    """The combinations still to run, after checking what an existing file holds."""
    if not path or path == "-":
        return combinations
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError("--csv", f"folder '{target.parent}' does not exist")
    if not target.exists() or overwrite:
        return combinations
    if not resume:
        raise InputError("--csv", f"{path} exists", "--resume continues it; --overwrite starts it again")
    done = finished_keys(target, columns, settings)
    return [c for c in combinations if c.key not in done]


def finished_keys(path: Path, columns: list[str], settings: dict) -> set[tuple[str, ...]]:
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):  # a row cut short by a hard kill: drop it
        text = text[: text.rfind("\n") + 1]
        path.write_text(text, encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    found = reader.fieldnames or []
    if found != columns:
        missing = [c for c in columns if c not in found]
        extra = [c for c in found if c not in columns]
        raise InputError(str(path), f"its columns differ from this sweep's (missing: {', '.join(missing) or '-'}; "
                         f"extra: {', '.join(extra) or '-'})", "write to another file")  # fmt: skip
    named = [c for c in SETTING_COLUMNS if settings.get(c) is not None]  # None: not a setting of this sweep
    want = dict(zip(named, _as_csv(settings[c] for c in named)))
    keys = set()
    for row in reader:
        for column, value in want.items():
            if column in row and row[column] != value:
                raise InputError(str(path), f"was written with {column}={row[column] or '(none)'}, "
                                 f"this sweep has {column}={value or '(none)'}",
                                 "write to another file or match the settings")  # fmt: skip
        keys.add(tuple(row.get(c, "") for c in KEY_COLUMNS))  # a file without `tp` was not sharded
    return keys


class Appender:
    """Writes the header once (to a new file or stdout), then each row as it finishes, flushed."""

    def __init__(self, path: str | None, columns: list[str], stdout=None, append: bool = False):
        self.columns, self.count, self.file, self.owned = columns, 0, None, False
        fresh = True
        if path == "-":
            self.file = stdout
        elif path:
            target = Path(path)
            fresh = not append or not target.exists() or target.stat().st_size == 0
            self.file, self.owned = open(target, "w" if fresh else "a", encoding="utf-8", newline=""), True
        if self.file is not None:
            self.writer = csv.DictWriter(self.file, fieldnames=columns, lineterminator="\n")
            if fresh:
                self.writer.writeheader()
                self.file.flush()

    def write(self, row: dict) -> None:
        extra = set(row) - set(self.columns)
        if extra:  # a column the schema groups do not list: a bug, never silently dropped
            raise ValueError(f"row has columns outside the sweep's header: {sorted(extra)}")
        if self.file is not None:
            from .report import clean

            self.writer.writerow({c: clean(row.get(c)) for c in self.columns})
            self.file.flush()
        self.count += 1

    def close(self) -> None:
        if self.owned:
            self.file.close()


def run(todo: list[Combination], row_of: Callable[[Combination], dict], appender: Appender,
        progress: Callable[[str], None] = lambda _: None) -> list[dict]:  # fmt: skip
    """Run every combination, appending each row as it finishes. KeyboardInterrupt propagates
    after the rows already written are safe on disk."""
    out = []
    for combo in todo:
        progress(f"{combo.spec.label} {combo.shape.mode} s={combo.shape.seq_len} b={combo.shape.batch}"
                 + (f" tp={combo.tp}" if combo.tp else ""))  # fmt: skip
        row = row_of(combo)
        appender.write(row)
        out.append(row)
    return out
