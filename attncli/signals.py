"""SIGINT, SIGTERM and SIGHUP end a run the same way: the finished rows are written, one line
goes to stderr, and the exit code is 128 + the signal's number (130, 143, 129).

`install()` (called by `cli.main`) replaces the three handlers, except one the process was
started with ignored: `nohup` ignores SIGHUP and a shell without job control ignores SIGINT in
`cmd &`, so that a hang-up or a Ctrl-C meant for others leaves the run alone, and it still does
(CPython keeps an inherited SIG_IGN for SIGINT in the same way). The first signal raises
`Interrupted` where the program is (a measuring loop catches it and keeps its rows); every later
signal is only recorded, so a second Ctrl-C cannot cut the writing of those rows short. Inside
`deferred()` (a file being written) even the first signal only records; it is raised when the
block ends. `restore()` puts the previous handlers back (in-process callers, tests).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

HANDLED = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


class Interrupted(BaseException):
    """A run was ended by a signal (a BaseException, as KeyboardInterrupt, so `except Exception`
    does not swallow it; not a KeyboardInterrupt, so Click does not turn it into a bare Abort)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal_name(signum))

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_state = {"received": None, "raised": False, "depth": 0, "previous": None}


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _handler(signum, frame):
    if _state["received"] is None:
        _state["received"] = signum
    if _state["raised"] or _state["depth"] > 0:
        return  # already unwinding, or a file is being written: recorded, not raised
    _state["raised"] = True
    raise Interrupted(_state["received"])


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP as above (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    reset()
    if _state["previous"] is None:
        current = {s: signal.getsignal(s) for s in HANDLED}
        _state["previous"] = {s: h for s, h in current.items() if h is not signal.SIG_IGN}  # ignored stays ignored
    for s in _state["previous"]:
        signal.signal(s, _handler)


def restore() -> None:
    """Put back the handlers `install` replaced."""
    previous = _state["previous"]
    if previous is None or threading.current_thread() is not threading.main_thread():
        return
    for s, h in previous.items():
        signal.signal(s, h if h is not None else signal.SIG_DFL)
    _state["previous"] = None


def reset() -> None:
    _state.update(received=None, raised=False, depth=0)


def received() -> int | None:
    """The first signal received since `install`, or None."""
    return _state["received"]


def exit_code(default: int = 130) -> int:
    """128 + the first signal's number (130 when the interruption was a plain KeyboardInterrupt)."""
    return 128 + _state["received"] if _state["received"] is not None else default


def describe() -> str:
    return signal_name(_state["received"]) if _state["received"] is not None else "Ctrl-C"


@contextmanager
def deferred():
    """Hold signals while a file is written; the first one is raised when the block ends."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
    if _state["depth"] == 0 and _state["received"] is not None and not _state["raised"]:
        _state["raised"] = True
        raise Interrupted(_state["received"])


def ignore_further() -> None:
    """From now on every signal is only recorded (the rows are being saved)."""
    _state["raised"] = True
