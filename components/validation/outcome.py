"""What the gate answers: the outcome of an accepted batch, or the error of a rejected one, with every
failed expectation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd


@dataclass(frozen=True)
class ExpectationFailure:
    expectation: str
    column: str | None
    level: Literal["batch", "row"]
    unexpected_count: int
    sample_values: list
    message: str


class DataValidationError(ValueError):
    """The whole batch is rejected; the message names every failed expectation with counts and samples."""

    def __init__(
        self,
        message: str,
        failures: list[ExpectationFailure],
        *,
        summary: dict | None = None,
        report_html: str | None = None,
    ) -> None:
        super().__init__(message)
        self.failures = failures
        # So that a caller can still save the report of a rejected batch.
        self.summary = summary
        self.report_html = report_html


@dataclass(frozen=True)
class ValidationOutcome:
    valid: pd.DataFrame
    quarantined: pd.DataFrame
    failures: list[ExpectationFailure]
    summary: dict
    report_html: str
