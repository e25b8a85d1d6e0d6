"""Parsing of list-valued options (`-s 1024,4096`, `--mode prefill,decode`). Pure Python."""

from __future__ import annotations

from .errors import InputError
from .spec import MODES


def parse_positive_int(text: str, option: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise InputError(option, f"'{text.strip()}' is not a whole number") from None
    if value <= 0:
        raise InputError(option, f"{value} must be a positive integer")
    return value


def parse_int_list(text: str, option: str) -> list[int]:
    """`1024`, `1024,4096`, or a doubling range `128:4096` (128, 256, …, 4096)."""
    values: list[int] = []
    for item in str(text).split(","):
        if ":" in item:
            lo_text, _, hi_text = item.partition(":")
            lo, hi = parse_positive_int(lo_text, option), parse_positive_int(hi_text, option)
            if lo > hi:
                raise InputError(option, f"range '{item}' runs backwards", f"e.g. {hi}:{lo}")
            while lo <= hi:
                values.append(lo)
                lo *= 2
        else:
            values.append(parse_positive_int(item, option))
    return list(dict.fromkeys(values))


def parse_modes(text: str) -> list[str]:
    """`prefill`, `decode`, `both`, or a comma list of them."""
    modes: list[str] = []
    for item in str(text).split(","):
        key = item.strip().lower()
        if key == "both":
            modes.extend(MODES)
        elif key in MODES:
            modes.append(key)
        else:
            raise InputError("--mode", f"unknown mode '{item.strip()}'", f"choices: {', '.join(MODES)}, both")
    return list(dict.fromkeys(modes))
