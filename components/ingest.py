"""Ingestion: raw CSV bytes -> a typed table with the leaking index column removed.

Every value is read as text first and then converted column by column, so that one unparseable value does not
abort the whole file: it becomes null and its row records why in `ingest_errors`. The validation gate then
decides whether those rows are quarantined or the whole batch is rejected. Nothing is dropped here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from components.schema import INDEX_COLUMN, RAW_SCHEMA, ROW_NUMBER

INGEST_ERRORS = "ingest_errors"
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


class IngestError(ValueError):
    """The file cannot be read as a CSV table at all (empty, not UTF-8, not CSV)."""


@dataclass(frozen=True)
class IngestResult:
    frame: pd.DataFrame
    columns_in_file: list[str]
    rows: int
    content_hash: str
    unparseable_values: dict[str, int] = field(default_factory=dict)


def read_csv_as_text(path: Path) -> pa.Table:
    """Read every column of the CSV as strings (no type inference), keeping empty cells as null."""
    expected = {name: pa.string() for name in [INDEX_COLUMN, *RAW_SCHEMA.names]}
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types=expected, strings_can_be_null=True, null_values=[""]
            ),
        )
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "Empty CSV file" in message:
            raise IngestError(f"{path}: the file is empty (no header, no rows)") from exc
        if "UTF8" in message:
            raise IngestError(f"{path}: the file is not valid UTF-8 text ({message})") from exc
        raise IngestError(f"{path}: not a readable CSV table ({message})") from exc
    # Columns pyarrow inferred (not in the expected schema) are kept as text for the gate to report.
    return table.cast(pa.schema([(name, pa.string()) for name in table.column_names]))


def _to_integer(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    numbers = pd.to_numeric(values, errors="coerce")
    integral = numbers.notna() & (numbers == np.floor(numbers.fillna(0)))
    bad = values.notna() & ~integral
    return numbers.where(integral).astype("Int64"), bad


def _to_float(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    numbers = pd.to_numeric(values, errors="coerce").astype("Float64")
    bad = values.notna() & numbers.isna()
    return numbers, bad


def _to_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    lowered = values.str.strip().str.lower()
    result = pd.Series(pd.NA, index=values.index, dtype="boolean")
    result[lowered.isin(_TRUE)] = True
    result[lowered.isin(_FALSE)] = False
    bad = values.notna() & result.isna()
    return result, bad


_CONVERTERS = {
    pa.int64(): (_to_integer, "an integer"),
    pa.float64(): (_to_float, "a number"),
    pa.bool_(): (_to_bool, "a boolean (True/False)"),
}


def type_columns(text: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Convert text columns to the documented types; unparseable cells become null and are explained."""
    typed = pd.DataFrame(index=text.index)
    errors = pd.Series("", index=text.index, dtype="object")
    unparseable: dict[str, int] = {}
    for name in text.columns:
        if name not in RAW_SCHEMA.names:
            typed[name] = text[name]
            continue
        arrow_type = RAW_SCHEMA.field(name).type
        if arrow_type == pa.string():
            typed[name] = text[name].astype("string")
            continue
        convert, what = _CONVERTERS[arrow_type]
        converted, bad = convert(text[name])
        typed[name] = converted
        if bad.any():
            unparseable[name] = int(bad.sum())
            samples = text.loc[bad, name].astype(str).str.slice(0, 40)
            errors.loc[bad] = errors.loc[bad] + name + ": '" + samples + "' is not " + what + "; "
    errors = errors.str.rstrip("; ").replace("", pd.NA)
    typed[INGEST_ERRORS] = errors.astype("string")
    return typed, unparseable


def frame_content_hash(frame: pd.DataFrame) -> str:
    """A hash of the table's values and column names, independent of file formatting."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def ingest_csv(path: Path) -> IngestResult:
    """Read the raw CSV, drop the unnamed index column, and type every documented column."""
    table = read_csv_as_text(path)
    columns_in_file = list(table.column_names)
    text = table.to_pandas()
    # The index column leaks the genre (1,000-row genre blocks); it never goes past this point.
    text = text.drop(columns=[c for c in (INDEX_COLUMN, "Unnamed: 0") if c in text.columns])
    ordered = [c for c in RAW_SCHEMA.names if c in text.columns]
    extra = [c for c in text.columns if c not in RAW_SCHEMA.names]
    text = text[ordered + extra]
    typed, unparseable = type_columns(text)
    # 1-based line number of the data row in the source file (header is line 1), for error reports.
    typed.insert(0, ROW_NUMBER, np.arange(2, len(typed) + 2, dtype=np.int64))
    content_columns = [c for c in typed.columns if c not in (ROW_NUMBER, INGEST_ERRORS)]
    return IngestResult(
        frame=typed,
        columns_in_file=columns_in_file,
        rows=len(typed),
        content_hash=frame_content_hash(typed[content_columns]),
        unparseable_values=unparseable,
    )
