"""Grid sweeps whose CSV survives interruption. Pure Python (measuring is passed in).

Rows are appended to the CSV and flushed as they finish, so Ctrl-C leaves every finished row on
disk. `--resume` re-reads the file, refuses it when its columns or settings differ from this
sweep's, and runs only the combinations it lacks.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from dataclasses import dataclass
from typing import Callable, Iterable

from . import output
from .errors import InputError, ResourceError
from .rows import COLUMNS, COMPARE_COLUMNS, MEASURED_COLUMNS, QUALITY_COLUMNS, ROOFLINE_COLUMNS, TP_COLUMNS
from .spec import AttentionSpec, Shape

KEY_COLUMNS = ("label", "mode", "seq_len", "batch", "tp")  # one combination (tp: --tp, analytic or measured)
SETTING_COLUMNS = ("preset", "dtype", "device", "layers", "seed", "kv_scales")  # must agree for --resume


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


class CsvTarget:
    """A sweep's --csv file, held for the whole sweep.

    A regular file (or a new one) is opened without truncation and locked (`fcntl.flock`, exclusive,
    not waiting): a second sweep on the same file exits 3 instead of interleaving its rows. The
    lock goes with the process, so a killed sweep leaves no stale lock. A FIFO or device is written
    through, unlocked; stdout ('-') and no --csv hold nothing."""

    def __init__(self, path: str | None):
        self.path, self.raw, self.regular, self.existed, self.created = path, None, False, False, False
        if not path or path == "-":
            return
        target = output.resolve(path)
        try:
            st = os.stat(target)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise output.os_error("--csv", path, e, "open") from None
        self.existed = st is not None
        self.regular = st is None or stat.S_ISREG(st.st_mode)
        if not self.regular:
            return
        try:
            fd = os.open(target, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as e:
            raise output.os_error("--csv", path, e, "open") from None
        self.created = st is None
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - no fcntl (Windows): no lock
            pass
        except OSError:
            os.close(fd)
            raise ResourceError("--csv", f"{path} is being written by another attncli sweep (it holds the file's lock)",
                                "wait for it to finish, or write to another file") from None  # fmt: skip
        self.raw = os.fdopen(fd, "r+b", buffering=0)

    def read(self) -> bytes:
        self.raw.seek(0)
        return self.raw.read()

    def truncate(self, size: int) -> None:
        """Cut the file to `size` bytes in place (never a rewrite of what comes before)."""
        self.raw.truncate(size)

    def size(self) -> int:
        return os.fstat(self.raw.fileno()).st_size

    def close(self) -> None:
        """Release the lock; a file this sweep created and never wrote to is removed again."""
        if self.raw is None:
            return
        if self.created and self.size() == 0:
            try:
                os.unlink(output.resolve(self.path))
            except OSError:
                pass
        self.raw.close()
        self.raw = None


def plan(combinations: list[Combination], target: CsvTarget, columns: list[str], settings: dict,
         resume: bool, overwrite: bool) -> list[Combination]:  # fmt: skip
    """The combinations still to run, after checking what an existing file holds."""
    if target.path is None or target.path == "-":
        return combinations
    if not target.regular:
        if resume:
            raise InputError("--resume", f"{target.path} is not a regular file: there is nothing to continue")
        return combinations
    if not target.existed or overwrite:
        return combinations
    if not resume:
        raise InputError("--csv", f"{target.path} exists", "--resume continues it; --overwrite starts it again")
    done = finished_keys(target, columns, settings)
    return [c for c in combinations if c.key not in done]


def finished_keys(target: CsvTarget, columns: list[str], settings: dict) -> set[tuple[str, ...]]:
    data = target.read()
    if data and not data.endswith(b"\n"):  # a row cut short by a hard kill: drop it, in place
        data = data[: data.rfind(b"\n") + 1]
        target.truncate(len(data))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(target.path, "is not a UTF-8 text file") from None
    reader = csv.DictReader(io.StringIO(text))
    found = reader.fieldnames or []
    if found != columns:
        missing = [c for c in columns if c not in found]
        extra = [c for c in found if c not in columns]
        raise InputError(str(target.path), f"its columns differ from this sweep's (missing: {', '.join(missing) or '-'}; "
                         f"extra: {', '.join(extra) or '-'})", "write to another file")  # fmt: skip
    named = [c for c in SETTING_COLUMNS if settings.get(c) is not None]  # None: not a setting of this sweep
    want = dict(zip(named, _as_csv(settings[c] for c in named)))
    keys = set()
    for row in reader:
        for column, value in want.items():
            if column in row and row[column] != value:
                raise InputError(str(target.path), f"was written with {column}={row[column] or '(none)'}, "
                                 f"this sweep has {column}={value or '(none)'}",
                                 "write to another file or match the settings")  # fmt: skip
        keys.add(tuple(row.get(c, "") for c in KEY_COLUMNS))  # a file without `tp` was not sharded
    return keys


class Appender:
    """Writes the header once (to a new file or stdout), then each row as it finishes, flushed.
    A signal during a row's write waits until the row is whole (signals.deferred)."""

    def __init__(self, target: CsvTarget, columns: list[str], stdout=None, append: bool = False):
        self.columns, self.count, self.file, self.owned, self.path = columns, 0, None, False, target.path
        fresh = True
        if target.path == "-":
            self.file = stdout
        elif target.raw is not None:
            fresh = not append or target.size() == 0
            if fresh:
                target.truncate(0)
            # A second descriptor of the same open file: it shares the lock, which stays with `target`.
            self.file, self.owned = os.fdopen(os.dup(target.raw.fileno()), "a", encoding="utf-8", newline=""), True
        elif target.path:  # a FIFO or device: written through
            try:
                self.file, self.owned = open(output.resolve(target.path), "w", encoding="utf-8", newline=""), True
            except OSError as e:
                raise output.os_error("--csv", target.path, e, "open") from None
        if self.file is not None:
            self.writer = csv.DictWriter(self.file, fieldnames=columns, lineterminator="\n")
            if fresh:
                self._flushed(self.writer.writeheader)

    def _flushed(self, write, *args) -> None:
        from . import signals

        with signals.deferred():
            try:
                write(*args)
                self.file.flush()
            except OSError as e:
                raise output.os_error("--csv", self.path, e) from None

    def write(self, row: dict) -> None:
        extra = set(row) - set(self.columns)
        if extra:  # a column the schema groups do not list: a bug, never silently dropped
            raise ValueError(f"row has columns outside the sweep's header: {sorted(extra)}")
        if self.file is not None:
            from .report import clean

            self._flushed(self.writer.writerow, {c: clean(row.get(c)) for c in self.columns})
        self.count += 1

    def close(self) -> None:
        if self.owned:
            try:
                self.file.close()
            except OSError:
                pass
            self.owned = False


def run(todo: list[Combination], row_of: Callable[[Combination], dict], appender: Appender,
        progress: Callable[[str], None] = lambda _: None, out: list | None = None) -> list[dict]:  # fmt: skip
    """Run every combination, appending each row as it finishes (to `out` too). An interruption
    propagates after the rows already written are safe on disk."""
    out = [] if out is None else out
    for combo in todo:
        progress(f"{combo.spec.label} {combo.shape.mode} s={combo.shape.seq_len} b={combo.shape.batch}"
                 + (f" tp={combo.tp}" if combo.tp else ""))  # fmt: skip
        row = row_of(combo)
        appender.write(row)
        out.append(row)
    return out
