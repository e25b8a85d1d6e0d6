"""The error types library code raises; the CLI turns each into one line and an exit code.

Library code never prints or exits: it raises one of these with *where* (the file, argument or
option at fault), *what* (the rule broken) and an optional *hint*. `cli.main` formats them as
``attncli: <where>: <what>; <hint>`` on stderr.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a self-check failed (--verify-flops: counted FLOPs differ from the analytic count)
EXIT_INPUT = 2  # bad input: the user can fix the command line, preset or config
EXIT_UNAVAILABLE = 3  # device or resource unavailable on this machine
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERNAL = 1  # a bug in attncli: one line, `--debug` shows the traceback


class AttncliError(Exception):
    exit_code = EXIT_INPUT

    def __init__(self, where: str, what: str, hint: str | None = None):
        # User text (arguments, keys, values) may hold line breaks: keep the message one line.
        self.where, self.what, self.hint = _one_line(where), _one_line(what), hint and _one_line(hint)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text}; {self.hint}" if self.hint else text


class InputError(AttncliError, ValueError):
    """Bad input: unknown names, wrong types, impossible shapes, unreadable files (exit 2)."""

    exit_code = EXIT_INPUT


class DeviceError(AttncliError):
    """The requested device is not available here (exit 3)."""

    exit_code = EXIT_UNAVAILABLE


class ResourceError(AttncliError):
    """Not enough memory (or another resource) for the requested work (exit 3)."""

    exit_code = EXIT_UNAVAILABLE


MAX_MESSAGE = 600  # characters of one error line; a longer user value is cut in the middle


def _one_line(text: str) -> str:
    text = str(text).replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > MAX_MESSAGE:
        text = f"{text[: MAX_MESSAGE // 2]}… ({len(text):,} characters) …{text[-MAX_MESSAGE // 4 :]}"
    return text


def closest(name: str, choices) -> str | None:
    """The closest valid name to a misspelt one, for 'did you mean' hints."""
    import difflib

    found = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return found[0] if found else None


def did_you_mean(name: str, choices) -> str:
    """A hint naming the closest choice (if any) and listing them all."""
    choices = list(choices)
    best = closest(name, choices)
    listed = ", ".join(choices)
    return f"did you mean '{best}'? (choices: {listed})" if best else f"choices: {listed}"


MAX_TEXT_BYTES = 16 * 2**20  # a preset, variant file or config.json: the largest real config.json is under 1 MiB


def regular_file(path, where: str | None = None, what: str = "file") -> None:
    """Refuse, without opening it, anything that is not a regular file (after links): a FIFO would
    block the read, a device such as /dev/zero would never end. A missing path is left to the
    caller's open (which names it)."""
    import os
    import stat

    where = str(path) if where is None else where
    try:
        st = os.stat(path)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise InputError(where, f"is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(
            st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file"  # fmt: skip
        raise InputError(where, f"is {kind}, not a regular {what}", "give a regular file")


def read_text(path, where: str | None = None, limit: int = MAX_TEXT_BYTES) -> str:
    """A text file's contents, or an InputError naming the file: not a regular file, larger than
    `limit` bytes, unreadable, not UTF-8."""
    where = str(path) if where is None else where
    regular_file(path, where)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except PermissionError:
        raise InputError(where, "cannot be read (permission denied)") from None
    except OSError as e:
        raise InputError(where, f"cannot be read ({e.strerror or e})") from None
    if len(data) > limit:
        raise InputError(where, f"is larger than {limit // 2**20} MiB: not a preset or config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(where, "is not a UTF-8 text file") from None
