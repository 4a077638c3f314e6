"""The checks themselves: the Great Expectations run (an ephemeral context, no project folder) and the
table-level and row-level checks of a batch against the suite. Over 400 lines because every check writes the
same kind of record from the same GX run; split further, each piece would need the others' helpers."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.ingest import INGEST_ERRORS
from components.params import ValidateParams
from components.schema import COLUMNS, ROW_NUMBER
from components.validation.records import _clip, _distinct, _jsonable, _Record, _resolve, _RowHits, _share
from components.validation.suite import (
    _COLUMN_SET,
    _COLUMN_TYPES,
    _DUPLICATE_ROWS,
    _INTERNAL_COLUMNS,
    _META_KEY,
    _N_SAMPLES,
    _NOT_NULL,
    _PARSED,
    _REPEATED_HEADER,
    _REPEATED_VALUES,
    _RESULT_FORMAT,
    _ROW_COUNT,
    RowRule,
    SuiteConfig,
    TableCheck,
    _build_row_expectation,
)

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult
    from great_expectations.expectations.expectation import Expectation


# ------------------------------------------------------------------------------------------ GX run


class _GX:
    """An ephemeral GX context: one pandas data source, one dataframe asset, a whole-dataframe batch
    definition; each suite runs through a ValidationDefinition on the frame it is given."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        # tqdm bars on stderr would pollute the flow's logs.
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = self.context.data_sources.add_pandas("trackflow").add_dataframe_asset("tracks_batch")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole_batch")

    def run(
        self, name: str, expectations: list[Expectation], frame: pd.DataFrame
    ) -> dict[int, ExpectationValidationResult]:
        """Validate `frame` against the expectations; results keyed by each expectation's meta index."""
        if not expectations:
            return {}
        suite = self.context.suites.add(self._gx.ExpectationSuite(name=name, expectations=expectations))
        definition = self.context.validation_definitions.add(
            self._gx.ValidationDefinition(name=name, data=self.batch_definition, suite=suite)
        )
        results = definition.run(batch_parameters={"dataframe": frame}, result_format=dict(_RESULT_FORMAT))
        return {r.expectation_config.meta[_META_KEY]: r for r in results.results}


def _exception(result: ExpectationValidationResult) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():  # suite runs key exception_info by metric id
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


# ---------------------------------------------------------------------------------------- the gate


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int, np.integer),
    "float": (float, int, np.floating, np.integer),
    "boolean": (bool, np.bool_),
}


def _off_type_values(values: pd.Series, logical: str) -> list:
    """Up to 5 distinct non-null values of an object column that are not of the logical type."""
    fits = _PYTHON_TYPES[logical]

    def off(value: Any) -> bool:
        is_bool = isinstance(value, bool | np.bool_)
        return not isinstance(value, fits) or (is_bool and logical != "boolean")

    present = values.dropna()
    return _distinct(present[present.map(off).astype(bool)].tolist())


def _describe(rule: RowRule) -> str:
    """What is wrong with a failing value of this rule, as a phrase."""
    kw = rule.kwargs
    if rule.expectation == "expect_column_values_to_be_between":
        return f"outside [{kw.get('min_value')}, {kw.get('max_value')}]"
    if rule.expectation == "expect_column_values_to_match_regex":
        return f"not matching {kw.get('regex')}"
    if rule.expectation == "expect_column_values_to_be_in_set":
        if rule.value_set_file:
            return f"not one of the {len(kw['value_set'])} values of {PurePath(rule.value_set_file).name}"
        return f"not in {list(kw['value_set'])}"
    return f"fails {rule.expectation}"


def _prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """A private copy with a positional index and both bookkeeping columns (the input is never touched)."""
    work = frame.reset_index(drop=True)  # always a new frame
    if ROW_NUMBER not in work.columns:
        # Not from ingest: number rows as file lines (header = line 1).
        work.insert(0, ROW_NUMBER, np.arange(2, len(work) + 2, dtype=np.int64))
    elif not work[ROW_NUMBER].is_unique or work[ROW_NUMBER].isna().any():
        raise ValueError(f"{ROW_NUMBER} must be unique and non-null to map failures back to rows")
    if INGEST_ERRORS not in work.columns:
        work[INGEST_ERRORS] = pd.Series(pd.NA, index=work.index, dtype="string")
    for name in work.columns:
        # GX's type check can name only the default string storage; pyarrow-backed text is still text.
        dtype = work[name].dtype
        if isinstance(dtype, pd.StringDtype) and dtype.storage != "python":
            work[name] = work[name].astype(pd.StringDtype("python"))
    return work


def _columns_reordered(columns_in_file: Sequence[str] | None, present: Sequence[str]) -> bool:
    order = [c for c in (columns_in_file if columns_in_file is not None else present) if c in COLUMNS]
    return order != [c for c in COLUMNS if c in order]


def _rename_hints(missing: list[str], extra: list[str]) -> list[str]:
    def norm(name: str) -> str:
        return re.sub(r"[^0-9a-z]", "", name.lower())

    hints = []
    for name in extra:
        same = [m for m in missing if norm(m) == norm(name)]
        close = same or difflib.get_close_matches(name, missing, n=1, cutoff=0.8)
        if close:
            hints.append(f"{name!r} looks like {close[0]!r} renamed")
    return hints


def _table_checks(
    work: pd.DataFrame,
    suite: SuiteConfig,
    params: ValidateParams,
    dataset_columns: list[str],
    gx_run: _GX,
) -> tuple[list[_Record], set[str]]:
    """Run the table-level checks; return their records and the columns whose dtype is right."""
    import great_expectations.expectations as gxe

    checks = {check.check: check for check in suite.table_checks}
    rows_in = len(work)
    required = list(suite.required_columns)
    present_required = [c for c in required if c in work.columns]
    expectations: list[Expectation] = []
    plan: dict[int, tuple[str, str | None, dict]] = {}

    def add(expectation: Expectation, name: str, column: str | None, arguments: dict) -> None:
        expectation.meta = {_META_KEY: len(plan)}
        plan[len(plan)] = (name, column, arguments)
        expectations.append(expectation)

    if _COLUMN_SET in checks:
        # The bookkeeping columns are always there (see _prepare), so they are part of the set.
        add(
            gxe.ExpectTableColumnsToMatchSet(column_set=[*required, *_INTERNAL_COLUMNS], exact_match=True),
            _COLUMN_SET,
            None,
            {"column_set": required, "exact_match": True, "order": "ignored"},
        )
    if _COLUMN_TYPES in checks:
        for name in present_required:
            type_list = list(suite.dtypes[suite.column(name).type])
            add(
                gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=type_list),
                _COLUMN_TYPES,
                name,
                {"type": suite.column(name).type, "type_list": type_list},
            )
    if _ROW_COUNT in checks:
        bounds = {k: _resolve(v, params) for k, v in checks[_ROW_COUNT].options.items()}
        add(gxe.ExpectTableRowCountToBeBetween(**bounds), _ROW_COUNT, None, bounds)

    records: list[_Record] = []
    well_typed = set(present_required) if _COLUMN_TYPES not in checks else set()
    for index, result in sorted(gx_run.run(f"{suite.name}.table", expectations, work).items()):
        name, column, arguments = plan[index]
        record = _Record(name, column, "batch", "passed" if result.success else "failed", arguments)
        details = result.result or {}
        error = _exception(result)
        if error:
            record.status, record.message = "error", f"{name}: could not be evaluated ({error})"
        elif name == _COLUMN_SET:
            columns_seen = [c for c in work.columns if c not in _INTERNAL_COLUMNS]
            record.observed = ", ".join(columns_seen)
            mismatched = (details.get("details") or {}).get("mismatched") or {}
            missing = [c for c in required if c in set(mismatched.get("missing") or [])]
            extra = [c for c in columns_seen if c in set(mismatched.get("unexpected") or [])]
            record.unexpected_count = len(missing) + len(extra)
            record.samples = [*missing, *extra][:_N_SAMPLES]
            if not result.success:
                parts = []
                if missing:
                    parts.append(f"missing column(s): {', '.join(missing)}")
                if extra:
                    parts.append(f"unexpected column(s): {', '.join(extra)}")
                parts.extend(_rename_hints(missing, extra))
                record.message = (
                    f"{_COLUMN_SET}: the column set differs from the suite (matched by name, order "
                    f"ignored): {'; '.join(parts)}"
                )
        elif name == _COLUMN_TYPES:
            dtype = str(work[column].dtype)
            record.observed = dtype
            if result.success:
                well_typed.add(column)
            else:
                record.unexpected_count = int(details.get("unexpected_count") or rows_in)
                record.samples = [dtype]
                offending = ""
                if work[column].dtype == object:
                    # Checked value by value; GX counts even fitting Python floats against numpy types, so
                    # sample the values that really do not fit.
                    record.samples = _off_type_values(work[column], arguments["type"])
                    offending = f"; e.g. {record.samples}" if record.samples else ""
                record.message = (
                    f"{_COLUMN_TYPES}({column}): has dtype {dtype}, expected {arguments['type']} (accepted: "
                    f"{', '.join(arguments['type_list'])}){offending}; its value rules were skipped"
                )
        elif name == _ROW_COUNT:
            record.observed = str(rows_in)
            if not result.success:
                record.unexpected_count = rows_in
                record.samples = [rows_in]
                record.message = (
                    f"{_ROW_COUNT}: {rows_in} row(s), expected between {arguments.get('min_value')} "
                    f"and {arguments.get('max_value')} (params validate.min_rows/max_rows)"
                )
        records.append(record)

    # Our own table checks (GX has no share-of-duplicates expectation).
    if _DUPLICATE_ROWS in checks:
        records.append(_duplicate_rows(work, dataset_columns, checks[_DUPLICATE_ROWS], params))
    if _REPEATED_VALUES in checks:
        records.append(_repeated_values(work, checks[_REPEATED_VALUES], params))
    if _REPEATED_HEADER in checks:
        records.append(_repeated_header(work, dataset_columns))
    return records, well_typed


def _duplicate_rows(
    work: pd.DataFrame, dataset_columns: list[str], check: TableCheck, params: ValidateParams
) -> _Record:
    max_share = float(_resolve(check.options.get("max_share", 0.0), params))
    record = _Record(_DUPLICATE_ROWS, None, "batch", "passed", {"max_share": max_share})
    if not dataset_columns or work.empty:
        record.observed = "0 rows"
        return record
    # Hash each row once: far cheaper than DataFrame.duplicated over 20 extension-dtype columns.
    hashes = pd.util.hash_pandas_object(work[dataset_columns], index=False)
    duplicated = hashes.duplicated(keep="first").to_numpy()
    count = int(duplicated.sum())
    record.unexpected_count = count
    record.observed = f"{count} rows ({_share(count, len(work))})"
    sample_column = "track_id" if "track_id" in work.columns else ROW_NUMBER
    record.samples = _distinct(work.loc[duplicated, sample_column].tolist())
    if count / len(work) > max_share:
        record.status = "failed"
        record.message = (
            f"{_DUPLICATE_ROWS}: {count} of {len(work)} rows ({_share(count, len(work))}) are exact copies "
            f"of an earlier row, above max_duplicate_row_share={max_share:g}; e.g. {sample_column} "
            f"{record.samples}"
        )
    return record


def _repeated_values(work: pd.DataFrame, check: TableCheck, params: ValidateParams) -> _Record:
    column = str(check.options.get("column"))
    max_share = float(_resolve(check.options.get("max_share", 0.0), params))
    record = _Record(_REPEATED_VALUES, column, "batch", "passed", {"column": column, "max_share": max_share})
    if column not in work.columns:
        record.status, record.message = "skipped", f"{_REPEATED_VALUES}({column}): column missing"
        return record
    values = work[column]
    repeated = (values.notna() & values.duplicated(keep="first")).to_numpy()
    count = int(repeated.sum())
    record.unexpected_count = count
    record.observed = f"{count} rows ({_share(count, len(work))}), {values.nunique()} distinct"
    record.samples = _distinct(values[repeated].tolist())
    if len(work) and count / len(work) > max_share:
        record.status = "failed"
        record.message = (
            f"{_REPEATED_VALUES}({column}): {count} of {len(work)} rows ({_share(count, len(work))}) repeat "
            f"an earlier row's {column}, above max_share={max_share:g}; e.g. {record.samples}"
        )
    return record


def _repeated_header(work: pd.DataFrame, dataset_columns: list[str]) -> _Record:
    record = _Record(_REPEATED_HEADER, None, "batch", "passed", {"min_header_cells": 3})
    names = {*COLUMNS, *dataset_columns}
    text_columns = [c for c in dataset_columns if work[c].dtype == "string" or work[c].dtype == object]
    if not text_columns or work.empty:
        return record
    header_cells = sum(work[c].isin(names).to_numpy(dtype=bool) for c in text_columns)
    flagged = header_cells >= min(3, len(text_columns))
    count = int(flagged.sum())
    record.unexpected_count = count
    record.samples = _distinct(work.loc[flagged, ROW_NUMBER].tolist())
    if count:
        record.status = "failed"
        record.message = (
            f"{_REPEATED_HEADER}: {count} data row(s) repeat the header (file line(s) {record.samples}): the "
            f"file looks like several CSV files concatenated, so later rows may be misaligned"
        )
    return record


def _row_frame(
    work: pd.DataFrame, suite: SuiteConfig, plan: Mapping[int, tuple[str, str, Any]], well_typed: set[str]
) -> pd.DataFrame:
    """The columns the row rules read, numeric ones as numpy float64 (NaN for null).

    GX compares nullable extension dtypes (Int64, Float64) one Python value at a time (~0.25 s per rule on
    114,000 rows) but numpy dtypes vectorised; the types were already checked on the real dtypes. Failing
    values are reported from the original frame, so integers stay integers in messages.
    """
    needed = list(dict.fromkeys([ROW_NUMBER, *(column for _, column, _ in plan.values())]))
    frame = work[needed].copy()
    for name in needed:
        if name in well_typed and suite.column(name).type in ("integer", "float"):
            frame[name] = work[name].to_numpy(dtype="float64", na_value=np.nan)
    return frame


def _row_checks(
    work: pd.DataFrame,
    suite: SuiteConfig,
    well_typed: set[str],
    gx_run: _GX,
) -> tuple[list[_Record], list[_RowHits]]:
    """Run nullability, value rules and the ingest-parse check; return records and failing rows."""
    import great_expectations.expectations as gxe

    rows_in = len(work)
    positions_of = pd.Index(work[ROW_NUMBER])
    expectations: list[Expectation] = []
    plan: dict[int, tuple[str, str, RowRule | None]] = {}
    records: list[_Record] = []

    def add(expectation: Expectation, name: str, column: str, rule: RowRule | None) -> None:
        expectation.meta = {_META_KEY: len(plan)}
        plan[len(plan)] = (name, column, rule)
        expectations.append(expectation)

    add(gxe.ExpectColumnValuesToBeNull(column=INGEST_ERRORS), _PARSED, INGEST_ERRORS, None)
    for rule in suite.columns:
        if not rule.nullable and rule.name in work.columns:
            add(gxe.ExpectColumnValuesToNotBeNull(column=rule.name), _NOT_NULL, rule.name, None)
    for index, rule in enumerate(suite.row_rules):
        if rule.column in well_typed:
            add(_build_row_expectation(rule, index), rule.expectation, rule.column, rule)
        else:
            why = "column missing" if rule.column not in work.columns else "column has the wrong dtype"
            records.append(
                _Record(rule.expectation, rule.column, "row", "skipped", dict(rule.kwargs), message=why)
            )

    hits: list[_RowHits] = []
    results = gx_run.run(f"{suite.name}.rows", expectations, _row_frame(work, suite, plan, well_typed))
    for index, result in sorted(results.items()):
        name, column, rule = plan[index]
        arguments = dict(rule.kwargs) if rule else {}
        if rule and rule.value_set_file:  # 114 genres would drown the report
            arguments["value_set"] = f"{len(rule.kwargs['value_set'])} values from {rule.value_set_file}"
        record = _Record(name, column, "row", "passed" if result.success else "failed", arguments)
        records.append(record)
        error = _exception(result)
        if error:
            record.status, record.message = "error", f"{name}({column}): could not be evaluated ({error})"
            continue
        details = result.result or {}
        record.observed = f"{details.get('unexpected_count', 0)} of {details.get('element_count', rows_in)}"
        if result.success:
            continue
        unexpected = details.get("unexpected_index_list") or []
        lines = [item[ROW_NUMBER] for item in unexpected]
        positions = positions_of.get_indexer(lines)
        values = work[column].iloc[positions].tolist()  # original dtype, not GX's float view
        count = len(positions)
        record.unexpected_count = count
        where = f"{count} of {rows_in} rows ({_share(count, rows_in)})"
        if name == _PARSED:
            # The ingest note is the reason itself: it names the column and the offending text.
            reasons = [str(v) for v in values]
            record.samples = _distinct(values)
            record.message = f"{name}({column}): {where} have cells that ingest could not parse; e.g. " + (
                " | ".join(
                    f"line {line}: {_clip(str(note))}"
                    for line, note in zip(lines[:3], values[:3], strict=True)
                )
            )
        elif name == _NOT_NULL:
            # A cell that did not parse is null now; its ingest note already explains it, say it once.
            unparsed = (
                work[INGEST_ERRORS].iloc[positions].str.contains(rf"(?:^|; ){re.escape(column)}: '", na=False)
            ).to_numpy()
            keep = ~unparsed
            positions = positions[keep]
            reasons = [f"{column} is null"] * len(positions)
            record.samples = [int(line) for line in lines[:_N_SAMPLES]]
            if unparsed.all():
                note = ", all of them cells ingest could not parse (see ingest_errors)"
            elif unparsed.any():
                note = f", {int(unparsed.sum())} of them cells ingest could not parse (see ingest_errors)"
            else:
                note = ""
            record.message = f"{name}({column}): {where} are null{note}; e.g. at lines {record.samples}"
        else:
            assert rule is not None
            phrase = _describe(rule)
            reasons = [f"{column}={_jsonable(v)!r} {phrase}" for v in values]
            record.samples = _distinct(values)
            record.message = f"{name}({column}): {where} {phrase}; e.g. " + ", ".join(
                f"{_jsonable(v)!r} (line {line})" for v, line in zip(values[:3], lines[:3], strict=True)
            )
        hits.append(_RowHits(positions=np.asarray(positions, dtype=np.int64), reasons=reasons))
    return records, hits
