"""The gate: reject a batch, or quarantine a few bad rows and pass the rest (validate_tracks)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd

from components.params import ValidateParams
from components.schema import COLUMNS, ROW_NUMBER
from components.validation.checks import _GX, _columns_reordered, _prepare, _row_checks, _table_checks
from components.validation.outcome import DataValidationError, ExpectationFailure, ValidationOutcome
from components.validation.records import _jsonable, _Record, _share
from components.validation.report import render_report
from components.validation.suite import (
    _DUPLICATE_ROWS,
    _INTERNAL_COLUMNS,
    _N_SAMPLES,
    _REPEATED_VALUES,
    _TOLERANCE,
    QUARANTINE_REASON,
    SuiteConfig,
)


def validate_tracks(
    frame: pd.DataFrame,
    suite: SuiteConfig,
    params: ValidateParams,
    *,
    columns_in_file: list[str] | None = None,
) -> ValidationOutcome:
    """Judge one ingested batch: split it into valid and quarantined rows, or reject it whole.

    Raises DataValidationError (naming every failed expectation, with counts and samples) when a table-level
    check fails or more than `params.row_failure_tolerance` of the rows fail row-level checks.
    """
    import great_expectations as gx

    started = time.perf_counter()
    work = _prepare(frame)
    rows_in = len(work)
    ignored = [c for c in suite.optional_columns if c in work.columns and c not in suite.scoring_inputs]
    work = work.drop(columns=ignored)  # labels at scoring time: neither checked nor passed on
    # Scoring: inputs that may be given (track_genre) and a batch's own extra columns are carried past the
    # checks to the valid output. With a required column missing the extras stay, so that the column-set
    # check can suggest a rename.
    given_inputs = [c for c in suite.scoring_inputs if c in work.columns]
    extra: list[str] = []
    if suite.for_scoring and set(suite.required_columns) <= set(work.columns):
        known = {*suite.required_columns, *_INTERNAL_COLUMNS, *given_inputs}
        extra = [c for c in work.columns if c not in known]
    carried = work[given_inputs + extra]
    work = work.drop(columns=given_inputs + extra)
    dataset_columns = [c for c in work.columns if c not in _INTERNAL_COLUMNS]
    gx_run = _GX()

    table_records, well_typed = _table_checks(work, suite, params, dataset_columns, gx_run)
    row_records, hits = _row_checks(work, suite, well_typed, gx_run)
    records = table_records + row_records

    failing = np.unique(np.concatenate([h.positions for h in hits])) if hits else np.empty(0, dtype=np.int64)
    allowed = params.row_failure_tolerance * rows_in
    tolerance = _Record(
        _TOLERANCE,
        None,
        "batch",
        "passed",
        {"row_failure_tolerance": params.row_failure_tolerance, "max_rows": math.floor(allowed)},
        unexpected_count=len(failing),
        observed=f"{len(failing)} of {rows_in} rows ({_share(len(failing), rows_in)})",
    )
    if len(failing) > allowed:
        tolerance.status = "failed"
        tolerance.samples = work[ROW_NUMBER].to_numpy()[failing[:_N_SAMPLES]].tolist()
        tolerance.message = (
            f"{_TOLERANCE}: {len(failing)} of {rows_in} rows ({_share(len(failing), rows_in)}) fail "
            f"row-level expectations, above row_failure_tolerance={params.row_failure_tolerance:g} "
            f"({math.floor(allowed)} rows): too many to quarantine, the batch is rejected"
        )
    records.append(tolerance)

    failures = [
        ExpectationFailure(
            expectation=r.expectation,
            column=r.column,
            level=r.level,
            unexpected_count=r.unexpected_count,
            sample_values=[_jsonable(v) for v in r.samples[:_N_SAMPLES]],
            message=r.message,
        )
        # Batch-level failures first: they are why a batch is rejected.
        for r in sorted(records, key=lambda r: r.level != "batch")
        if r.status in ("failed", "error")
    ]
    rejected = any(f.level == "batch" for f in failures)
    required = [c for c in COLUMNS if c in suite.required_columns]
    summary: dict[str, Any] = {
        "suite": suite.name,
        "suite_version": suite.version,
        "for_scoring": suite.for_scoring,
        "great_expectations_version": gx.__version__,
        "verdict": "rejected" if rejected else "accepted",
        "rows_in": rows_in,
        "rows_valid": 0 if rejected else rows_in - len(failing),
        "rows_quarantined": 0 if rejected else len(failing),
        "rows_failing_row_checks": len(failing),
        "expectations_evaluated": sum(r.status != "skipped" for r in records),
        "expectations_failed": len(failures),
        "expectations_skipped": sum(r.status == "skipped" for r in records),
        "failed_expectations": [
            f"{f.expectation}({f.column})" if f.column else f.expectation for f in failures
        ],
        "columns_reordered": _columns_reordered(columns_in_file, dataset_columns),
        "columns_ignored": ignored,
        "inputs_given": given_inputs,
        "columns_passed_through": extra,
        "duration_s": 0.0,
    }
    for r in records:  # the observed duplicate counts, for metrics even when the checks pass
        if r.expectation == _DUPLICATE_ROWS:
            summary["duplicate_rows"] = r.unexpected_count
        elif r.expectation == _REPEATED_VALUES and r.status != "skipped":
            summary[f"repeated_{r.column}_rows"] = r.unexpected_count

    if rejected:
        summary["duration_s"] = round(time.perf_counter() - started, 3)
        report = render_report(records, summary, pd.DataFrame(columns=[ROW_NUMBER, QUARANTINE_REASON]))
        message = (
            f"validation rejected the batch ({rows_in} rows, suite {suite.name} v{suite.version}): "
            f"{len(failures)} failed expectation(s):\n"
            + "\n".join(f"  - [{f.level}] {f.message}" for f in failures)
        )
        raise DataValidationError(message, failures, summary=summary, report_html=report)

    reasons: dict[int, list[str]] = {}
    for hit in hits:
        for position, reason in zip(hit.positions.tolist(), hit.reasons, strict=True):
            reasons.setdefault(position, []).append(reason)
    mask = np.zeros(rows_in, dtype=bool)
    mask[failing] = True
    valid = pd.concat([work.loc[~mask, required], carried.loc[~mask]], axis=1).reset_index(drop=True)
    quarantined = work.loc[mask, [ROW_NUMBER, *required]].reset_index(drop=True)
    quarantined[QUARANTINE_REASON] = pd.array(["; ".join(reasons[int(p)]) for p in failing], dtype="string")
    summary["duration_s"] = round(time.perf_counter() - started, 3)
    return ValidationOutcome(
        valid=valid,
        quarantined=quarantined,
        failures=failures,
        summary=summary,
        report_html=render_report(records, summary, quarantined),
    )
