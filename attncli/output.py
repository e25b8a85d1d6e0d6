"""The one writer of every file attncli produces (CSV, JSON, markdown, plots, --save-io, caches).

What it guarantees (docs/reliability.md):
- A path is resolved through its links first, so a symlinked report keeps its link and its
  target gets the new contents.
- A target that exists and is not a regular file (a FIFO, a character device, a socket's peer)
  is written through: opened and written in place, never replaced by a regular file.
- A regular file (or a new one) is written to a temporary file beside it and renamed over it, so
  it holds the old contents or the new ones, never a part. The new file keeps the mode (and,
  when allowed, the owner) of the file it replaces; a new file gets 0666 less the umask, as
  `open()` would give it.
- `check` runs before any work: every output path is usable, no two outputs are one file, and no
  output is one of the command's inputs.
- An OS error while writing is one line (exit 2 for a path the user can fix, 3 for a full disk
  or another resource), never an internal error.
Pure Python, no torch.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from .errors import AttncliError, InputError, ResourceError

STDOUT = "-"
# OS errors the user fixes by choosing another path (exit 2); the others are resources (exit 3).
_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
                errno.ELOOP, errno.ENXIO, errno.ETXTBSY}  # fmt: skip


def resolve(path: str) -> Path:
    """The file a path names once its links are followed (a dangling link: where it points)."""
    return Path(os.path.realpath(os.path.expanduser(path)))


def umask_mode() -> int:
    """The mode `open()` gives a new file: 0666 less the process umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def os_error(option: str, path: str, e: OSError, doing: str = "write") -> AttncliError:
    """One-line error for an OS failure on `path`: bad path → InputError, resource → ResourceError."""
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceError(option, f"cannot {doing} {path}: {reason} (the disk is full)", "free space or choose another folder")
    if e.errno in _PATH_ERRNOS:
        return InputError(option, f"cannot {doing} {path}: {reason}")
    return ResourceError(option, f"cannot {doing} {path}: {reason}")


def _is_regular_or_new(target: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(target).st_mode)
    except FileNotFoundError:
        return True


def check_path(option: str, path: str) -> Path:
    """Fail before any work when `path` cannot be written: its folder is missing or not writable,
    or it is a folder. Returns the resolved target."""
    target = resolve(path)
    if os.path.lexists(path) and not os.path.exists(path) and not target.parent.is_dir():
        raise InputError(option, f"'{path}' is a link to a missing folder '{target.parent}'")
    if target.is_dir():
        raise InputError(option, f"'{path}' is a folder")
    if not target.parent.is_dir():
        raise InputError(option, f"folder '{Path(path).parent}' does not exist")
    if _is_regular_or_new(target):
        # The temporary file and the rename need a writable folder (EROFS counts for root too).
        if not os.access(target.parent, os.W_OK | os.X_OK):
            raise InputError(option, f"folder '{target.parent}' is not writable", "choose another folder")
    elif not os.access(target, os.W_OK):
        raise InputError(option, f"'{path}' is not writable")
    return target


def _files_of(path: str) -> set[Path]:
    """The files an input names: the file itself, every file of a folder (a checkpoint), or the
    file part of `my.yaml:overrides`; nothing for a name that is not on disk."""
    found = set()
    for candidate in (path, path.split(":", 1)[0]):
        if not candidate or not os.path.exists(candidate):
            continue
        target = resolve(candidate)
        if target.is_dir():
            try:
                found |= {resolve(str(p)) for p in target.iterdir() if p.is_file()}
            except OSError:
                pass
        else:
            found.add(target)
        break
    return found


def check(outputs: Mapping[str, str | None], inputs: Iterable[tuple[str, str | None]] = ()) -> None:
    """Check every output of a command before any work: at most one on stdout, each path
    writable, no two outputs one file (after links), and no output one of the `inputs`
    ((what it is, path) pairs: a preset, a checkpoint folder, an --inputs file, a report read)."""
    given = {option: path for option, path in outputs.items() if path}
    on_stdout = [option for option, path in given.items() if path == STDOUT]
    if len(on_stdout) > 1:
        raise InputError("/".join(on_stdout), "only one of them can write to stdout ('-')")
    seen: dict[Path, str] = {}
    targets = {}
    for option, path in given.items():
        if path == STDOUT:
            continue
        target = check_path(option, path)
        if target in seen:
            raise InputError(f"{seen[target]}/{option}", f"both name the file {path}", "give each its own file")
        seen[target], targets[option] = option, target
    for what, path in inputs:
        if not path or path == STDOUT:
            continue
        for f in _files_of(path):
            if f in seen:
                raise InputError(seen[f], f"{given[seen[f]]} is {what} ({path}): writing it would destroy the input",
                                 "choose another output file")  # fmt: skip


def write(path: str, data: str | bytes, option: str) -> None:
    """Write `data` (text as UTF-8) to `path`: stdout for '-', through to a FIFO or device,
    else atomically (temporary file and rename) keeping the old file's mode."""
    from . import signals

    raw = data.encode("utf-8") if isinstance(data, str) else data
    with signals.deferred():  # a signal waits until the file is whole
        if path == STDOUT:
            stream = getattr(sys.stdout, "buffer", None)
            if stream is None:
                sys.stdout.write(raw.decode("utf-8"))
            else:
                sys.stdout.flush()
                stream.write(raw)
            sys.stdout.flush()
            return
        target = resolve(path)
        try:
            st = os.stat(target)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise os_error(option, path, e) from None
        try:
            if st is not None and not stat.S_ISREG(st.st_mode):
                _write_through(target, raw)
            else:
                _write_atomic(target, raw, st)
        except IsADirectoryError:
            raise InputError(option, f"'{path}' is a folder") from None
        except OSError as e:
            raise os_error(option, path, e) from None


def _write_through(target: Path, raw: bytes) -> None:
    """A FIFO or device: open it for writing (no truncation of a device, no replacement)."""
    fd = os.open(target, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _write_atomic(target: Path, raw: bytes, st: os.stat_result | None) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        try:
            if st is not None:
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                if os.geteuid() == 0 or st.st_uid == os.geteuid():
                    try:
                        os.fchown(fd, st.st_uid, st.st_gid)
                    except OSError:
                        pass  # the mode is kept; an owner we may not give is not
            else:
                os.fchmod(fd, umask_mode())
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_all(exports: list[tuple[str, str | None, object]]) -> list[AttncliError]:
    """Write each (option, path, render) export on its own: one that fails does not stop the
    others. `render` is the data or a function returning it. Returns the errors, in order."""
    errors = []
    for option, path, render in exports:
        if not path:
            continue
        try:
            write(path, render() if callable(render) else render, option)
        except AttncliError as e:
            errors.append(e)
    return errors


def raise_first(errors: list[AttncliError]) -> None:
    """Raise the first export error, naming the others in the same line."""
    if not errors:
        return
    first = errors[0]
    if len(errors) > 1:
        first.what += " (also: " + "; ".join(e.message for e in errors[1:]) + ")"
    raise first


# ------------------------------------------------------------------------------------------------
# terminals that cannot encode what the tables print

ASCII = {"·": "-", "–": "-", "—": "-", "×": "x", "…": "...", "≤": "<=", "≥": ">=", "→": "->", "←": "<-", "Σ": "sum",
         "²": "^2", "³": "^3", "½": "1/2", "ᵀ": "T", "≈": "~", "±": "+-", "√": "sqrt", "·": "-", "µ": "u", "′": "'",
         "‘": "'", "’": "'", "“": '"', "”": '"', "−": "-"}  # fmt: skip
ERRORS = "attncli-ascii"
SAMPLE = "·–×…≤"


def _ascii_stand_in(error: UnicodeEncodeError):
    bad = error.object[error.start : error.end]
    return "".join(ASCII.get(ch, "?") for ch in bad), error.end


def safe_streams() -> None:
    """Give stdout and stderr an error handler that writes ASCII stand-ins (· → -, × → x, ≤ → <=,
    anything else → ?) when their encoding (LC_ALL=C without UTF-8 mode, PYTHONIOENCODING=ascii,
    latin-1) cannot encode a character, instead of raising UnicodeEncodeError mid-table."""
    import codecs

    try:
        codecs.lookup_error(ERRORS)
    except LookupError:
        codecs.register_error(ERRORS, _ascii_stand_in)
    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None)
        if not encoding or not hasattr(stream, "reconfigure"):
            continue
        try:
            SAMPLE.encode(encoding)
        except UnicodeEncodeError:
            try:
                stream.reconfigure(errors=ERRORS)
            except (ValueError, OSError, AttributeError):
                pass
        except LookupError:
            pass

