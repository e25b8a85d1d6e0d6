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


def _one_line(text: str) -> str:
    return str(text).replace("\r", "\\r").replace("\n", "\\n")


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


def read_text(path, where: str | None = None) -> str:
    """A text file's contents, or an InputError naming the file: unreadable, not UTF-8."""
    where = str(path) if where is None else where
    try:
        return open(path, "rb").read().decode("utf-8")
    except PermissionError:
        raise InputError(where, "cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise InputError(where, "is not a UTF-8 text file") from None
    except OSError as e:
        raise InputError(where, f"cannot be read ({e.strerror or e})") from None
