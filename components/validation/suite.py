"""The expectation suite as typed rules: columns, table checks and row rules, parsed from the content of
configs/expectations/tracks.yaml (trackflow/config.py reads the file and the value sets it names) and
checked against the raw schema ingest produces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from components.ingest import INGEST_ERRORS
from components.params import ValidateParams
from components.schema import COLUMNS, RAW_SCHEMA, ROW_NUMBER

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation


QUARANTINE_REASON = "quarantine_reason"
_INTERNAL_COLUMNS = (ROW_NUMBER, INGEST_ERRORS)
_N_SAMPLES = 5
_REPORT_ROWS = 100
_RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [ROW_NUMBER],
    "return_unexpected_index_query": False,
    "partial_unexpected_count": _N_SAMPLES,
}
# The Arrow type ingest gives each logical type: the suite must describe what ingest produces.
_LOGICAL_TYPES = {"string": pa.string(), "integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_()}
_COLUMN_SET = "expect_table_columns_to_match_set"
_COLUMN_TYPES = "expect_column_values_to_be_in_type_list"
_ROW_COUNT = "expect_table_row_count_to_be_between"
_DUPLICATE_ROWS = "duplicate_row_share"
_REPEATED_VALUES = "repeated_value_share"
_REPEATED_HEADER = "repeated_header_rows"
_TABLE_CHECKS = frozenset(
    {_COLUMN_SET, _COLUMN_TYPES, _ROW_COUNT, _DUPLICATE_ROWS, _REPEATED_VALUES, _REPEATED_HEADER}
)
_NOT_NULL = "expect_column_values_to_not_be_null"
_PARSED = "expect_column_values_to_be_null"  # on ingest_errors: a non-null note = a cell that did not parse
_TOLERANCE = "row_failure_tolerance"
_META_KEY = "trackflow_rule"


class SuiteConfigError(ValueError):
    """The expectation suite YAML is unreadable or inconsistent with the raw schema."""


@dataclass(frozen=True)
class ColumnRule:
    name: str
    type: str
    nullable: bool
    label: bool
    # A label that is also a model input (track_genre): optional in a scoring batch, and used when given.
    scoring_input: bool = False


@dataclass(frozen=True)
class TableCheck:
    check: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RowRule:
    expectation: str
    column: str
    kwargs: Mapping[str, Any]
    description: str | None = None
    value_set_file: str | None = None


@dataclass(frozen=True)
class SuiteConfig:
    name: str
    version: str
    source: str
    columns: tuple[ColumnRule, ...]
    dtypes: Mapping[str, tuple[str, ...]]
    table_checks: tuple[TableCheck, ...]
    row_rules: tuple[RowRule, ...]
    # Allowed but neither required nor checked, and left out of the valid output (labels when scoring).
    optional_columns: tuple[str, ...] = ()
    for_scoring: bool = False
    # Scoring: optional columns that are model inputs when given (kept in the valid output), with the value
    # set of their row rule (what the scoring path normalises them to).
    scoring_inputs: tuple[str, ...] = ()
    input_value_sets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.columns)

    def column(self, name: str) -> ColumnRule:
        return next(rule for rule in self.columns if rule.name == name)


# ---------------------------------------------------------------------------------------------- suite


def _check_param_refs(options: Mapping[str, Any], where: str) -> None:
    for key, value in options.items():
        if isinstance(value, Mapping):
            name = value.get("param")
            if set(value) != {"param"} or name not in ValidateParams.model_fields:
                raise SuiteConfigError(
                    f"{where}.{key}: expected {{param: <one of {sorted(ValidateParams.model_fields)}>}}, "
                    f"got {dict(value)}"
                )


def parse_suite(
    raw: Any, source: str, value_sets: Mapping[str, Sequence[str]], *, for_scoring: bool = False
) -> SuiteConfig:
    """The expectation suite's content (`source` names its file in errors) into a SuiteConfig; `value_sets`
    holds the lines of every `value_set_file` it names, by that name.

    `for_scoring` drops the label columns (popularity, track_genre) from the required set and from every
    rule: a scoring batch may lack them. If present, a label is ignored unless it is a `scoring_input`
    (track_genre): that one is kept, and the value set of its row rule is what scoring normalises it to.
    """
    path = source
    if not isinstance(raw, Mapping):
        raise SuiteConfigError(f"{path}: expected a mapping at the top level")
    try:
        columns = tuple(
            ColumnRule(
                name=name,
                type=spec["type"],
                nullable=bool(spec.get("nullable", False)),
                label=bool(spec.get("label", False)),
                scoring_input=bool(spec.get("scoring_input", False)),
            )
            for name, spec in raw["columns"].items()
        )
        dtypes = {kind: tuple(names) for kind, names in raw["dtypes"].items()}
        table_checks = tuple(
            TableCheck(check=item["check"], options={k: v for k, v in item.items() if k != "check"})
            for item in raw.get("table") or []
        )
        row_items = list(raw.get("rows") or [])
    except (KeyError, TypeError, AttributeError) as exc:
        raise SuiteConfigError(f"{path}: malformed suite ({exc!r})") from exc

    # The suite must describe exactly the schema ingest produces, or the gate would judge the wrong table.
    expected = {name: RAW_SCHEMA.field(name).type for name in COLUMNS}
    declared = {rule.name: _LOGICAL_TYPES.get(rule.type) for rule in columns}
    if declared != expected:
        diff = sorted(set(declared.items()) ^ set(expected.items()), key=str)
        raise SuiteConfigError(f"{path}: `columns` disagree with components.schema.RAW_SCHEMA: {diff}")
    if missing_types := sorted({rule.type for rule in columns} - set(dtypes)):
        raise SuiteConfigError(f"{path}: `dtypes` has no entry for {missing_types}")
    for check in table_checks:
        if check.check not in _TABLE_CHECKS:
            raise SuiteConfigError(
                f"{path}: unknown table check {check.check!r} (known: {sorted(_TABLE_CHECKS)})"
            )
        _check_param_refs(check.options, f"{path}: table {check.check}")

    row_rules = []
    for item in row_items:
        kwargs = dict(item)
        try:
            expectation = kwargs.pop("expectation")
            column = kwargs.pop("column")
        except KeyError as exc:
            raise SuiteConfigError(f"{path}: row rule {item} lacks {exc}") from exc
        if column not in expected:
            raise SuiteConfigError(f"{path}: row rule {expectation} names unknown column {column!r}")
        description = kwargs.pop("description", None)
        value_set_file = kwargs.pop("value_set_file", None)
        if value_set_file is not None:
            if value_set_file not in value_sets:
                raise SuiteConfigError(f"{path}: value_set_file {value_set_file} was not read")
            kwargs["value_set"] = [line.strip() for line in value_sets[value_set_file] if line.strip()]
        row_rules.append(RowRule(expectation, column, kwargs, description, value_set_file))
    for rule in row_rules:  # fail at load time, not in the middle of a run
        _build_row_expectation(rule, index=0)

    optional: tuple[str, ...] = ()
    scoring_inputs: tuple[str, ...] = ()
    input_value_sets: dict[str, tuple[str, ...]] = {}
    if for_scoring:
        optional = tuple(rule.name for rule in columns if rule.label)
        scoring_inputs = tuple(rule.name for rule in columns if rule.label and rule.scoring_input)
        input_value_sets = {
            rule.column: tuple(rule.kwargs["value_set"])
            for rule in row_rules
            if rule.column in scoring_inputs and "value_set" in rule.kwargs
        }
        columns = tuple(rule for rule in columns if not rule.label)
        row_rules = [rule for rule in row_rules if rule.column not in optional]
        table_checks = tuple(c for c in table_checks if c.options.get("column") not in optional)
    return SuiteConfig(
        name=str(raw.get("suite", PurePath(path).stem)),
        version=str(raw.get("version", "0")),
        source=str(path),
        columns=columns,
        dtypes=dtypes,
        table_checks=table_checks,
        row_rules=tuple(row_rules),
        optional_columns=optional,
        for_scoring=for_scoring,
        scoring_inputs=scoring_inputs,
        input_value_sets=input_value_sets,
    )


def _expectation_class(name: str) -> type[Expectation]:
    # GX is imported lazily: it takes seconds to import and most commands never validate.
    import great_expectations.expectations as gxe

    class_name = "".join(part.capitalize() for part in name.split("_"))
    cls = getattr(gxe, class_name, None)
    if cls is None:
        raise SuiteConfigError(f"{name}: not a Great Expectations expectation")
    return cls


def _build_row_expectation(rule: RowRule, index: int) -> Expectation:
    from great_expectations.expectations.expectation import ColumnMapExpectation

    cls = _expectation_class(rule.expectation)
    # Only column map expectations report the failing rows, which quarantine needs.
    if not issubclass(cls, ColumnMapExpectation):
        raise SuiteConfigError(f"{rule.expectation}: row rules must be column map expectations")
    try:
        return cls(column=rule.column, description=rule.description, meta={_META_KEY: index}, **rule.kwargs)
    except Exception as exc:  # pydantic errors of GX: name the rule in the message
        raise SuiteConfigError(f"{rule.expectation}({rule.column}): invalid arguments ({exc})") from exc
