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
    if value >= 2**63:  # beyond any machine; the products of such sizes would overflow floats
        raise InputError(option, f"{value:,} is out of range (at most 2^63 - 1)")
    return value


# Token counts are quoted in powers of 1024 (a "32k context" is 32,768 tokens, "128k" 131,072).
COUNT_SUFFIXES = {"k": 2**10, "m": 2**20}


def parse_count(text: str, option: str) -> int:
    """A positive whole number, optionally with k (×1,024) or m (×1,048,576): 32k = 32,768."""
    item = str(text).strip()
    scale = COUNT_SUFFIXES.get(item[-1:].lower()) if item else None
    if scale is None:
        return parse_positive_int(item, option)
    return parse_positive_int(item[:-1], option) * scale


def parse_int_list(text: str, option: str) -> list[int]:
    """`1024`, `1024,4096`, `32k,128k` (k = 1,024), or a doubling range `128:4096` (128, 256, …,
    4096). A range whose end doubling does not reach exactly also holds its end: `100:1000` is
    100, 200, 400, 800, 1000."""
    values: list[int] = []
    for item in str(text).split(","):
        if ":" in item:
            lo_text, _, hi_text = item.partition(":")
            lo, hi = parse_count(lo_text, option), parse_count(hi_text, option)
            if lo > hi:
                raise InputError(option, f"range '{item}' runs backwards", f"e.g. {hi_text.strip()}:{lo_text.strip()}")
            while lo <= hi:
                values.append(lo)
                lo *= 2
            values.append(hi)
        else:
            values.append(parse_count(item, option))
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


# Byte units: decimal (SI) and binary (IEC). A bare number is bytes; `80G` is refused as ambiguous.
BYTE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip


def parse_bytes(text: str, option: str) -> int:
    """`80GiB` (80·2^30), `80GB` (80·10^9), `1.5TiB`, `123456` (bytes) → whole bytes."""
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m:
        raise InputError(option, f"'{text}' is not a size", "e.g. 80GiB, 80GB or a byte count")
    number, unit = m.group(1), m.group(2).lower()
    if unit not in BYTE_UNITS and unit != "":
        power = {"k": 1, "m": 2, "g": 3, "t": 4}.get(unit)
        letter = unit.upper()
        hint = (f"write {number}{letter}iB (2^{10 * power}) or {number}{letter}B (10^{3 * power})" if power
                else "units: B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB (powers of 1024)")  # fmt: skip
        raise InputError(option, f"unknown unit '{m.group(2)}' in '{text.strip()}'", hint)
    from fractions import Fraction

    value = Fraction(number) * BYTE_UNITS.get(unit, 1)
    if value <= 0:
        raise InputError(option, f"{text.strip()} must be positive")
    return int(value)  # whole bytes, rounded down
