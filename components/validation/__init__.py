"""The validation gate: a raw ingested batch -> valid rows, quarantined rows, or a rejected batch.

The rules live in configs/expectations/tracks.yaml and run as Great Expectations 1.x expectations in an
ephemeral context (checks.py) (pandas data source, dataframe asset, whole-dataframe batch definition; no GX
project folder). Two kinds of failure:

* table level (column set, column types, row count, duplicate shares, repeated header): reject the batch;
* row level (value rules, nulls where not allowed, cells ingest could not parse): the failing rows are
  quarantined with their reasons while there are at most `row_failure_tolerance` x rows of them; above that
  the batch is rejected.

Accepted batches lose nothing: rows_valid + rows_quarantined == rows_in. Duplicates are kept (the feature
stage collapses them by rule). `validate_tracks` does no I/O and never mutates its input.
"""

from __future__ import annotations

from components.validation.gate import validate_tracks
from components.validation.outcome import DataValidationError, ExpectationFailure, ValidationOutcome
from components.validation.report import render_report
from components.validation.suite import (
    QUARANTINE_REASON,
    ColumnRule,
    RowRule,
    SuiteConfig,
    SuiteConfigError,
    TableCheck,
    parse_suite,
)

__all__ = [
    "QUARANTINE_REASON",
    "ColumnRule",
    "DataValidationError",
    "ExpectationFailure",
    "RowRule",
    "SuiteConfig",
    "SuiteConfigError",
    "TableCheck",
    "ValidationOutcome",
    "parse_suite",
    "render_report",
    "validate_tracks",
]
