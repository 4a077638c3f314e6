"""How BENCHMARKS.md writes a number: durations, sizes, rates, spreads, tables."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any


def seconds(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value >= 120:
        minutes, rest = divmod(value, 60)
        return f"{int(minutes)} min {rest:04.1f} s"
    if value >= 10:
        return f"{value:.1f} s"
    return f"{value:.2f} s"


def megabytes(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.0f} MB"


def number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def ranged(spread: Mapping[str, Any], fmt: Callable[[float], str] = seconds) -> str:
    """'median [min - max]' of repeated runs; one run says so."""
    if spread["n"] == 1:
        return f"{fmt(spread['median'])} (1 run)"
    return f"{fmt(spread['median'])} [{fmt(spread['min'])} - {fmt(spread['max'])}]"


def rate(value: float) -> str:
    return f"{value:,.0f}"


def yes_no(flag: bool | None) -> str:
    return "n/a" if flag is None else ("**yes**" if flag else "**no**")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def steal_note(share: float | None) -> str:
    """How much CPU the hypervisor took (empty when unknown): wall times are only comparable without it."""
    return "" if share is None else f"CPU steal {share:.0%}"
