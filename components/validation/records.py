"""Bookkeeping of one validation run: each expectation's result as a record for the summary and report."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from components.params import ValidateParams
from components.validation.suite import _N_SAMPLES

# ------------------------------------------------------------------------------------- bookkeeping


@dataclass
class _Record:
    """One evaluated (or skipped) rule, for the failures list, the summary and the HTML report."""

    expectation: str
    column: str | None
    level: Literal["batch", "row"]
    status: Literal["passed", "failed", "error", "skipped"]
    arguments: dict
    unexpected_count: int = 0
    samples: list = field(default_factory=list)
    message: str = ""
    observed: str = ""


@dataclass
class _RowHits:
    """Row positions that failed one row-level rule, and the reason of each."""

    positions: np.ndarray
    reasons: list[str]


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _share(count: int, total: int) -> str:
    if not total:
        return "n/a"
    share = count / total
    return "<0.01%" if 0 < share < 0.0001 else f"{share:.2%}"


def _distinct(values: Sequence[Any], limit: int = _N_SAMPLES) -> list:
    seen: list = []
    for value in values:
        value = _jsonable(value)
        if value not in seen:
            seen.append(value)
            if len(seen) == limit:
                break
    return seen


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _resolve(value: Any, params: ValidateParams) -> Any:
    return getattr(params, value["param"]) if isinstance(value, Mapping) else value
