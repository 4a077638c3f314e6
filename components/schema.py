"""The dataset's raw schema: column names and types as documented upstream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

# Upstream dataset.csv starts with an unnamed row index. It is laid out in 1,000-row genre blocks, so it
# "predicts" genre almost perfectly: it is dropped at ingestion and must never reach a model.
INDEX_COLUMN = ""

RAW_SCHEMA = pa.schema(
    [
        ("track_id", pa.string()),
        ("artists", pa.string()),
        ("album_name", pa.string()),
        ("track_name", pa.string()),
        ("popularity", pa.int64()),
        ("duration_ms", pa.int64()),
        ("explicit", pa.bool_()),
        ("danceability", pa.float64()),
        ("energy", pa.float64()),
        ("key", pa.int64()),
        ("loudness", pa.float64()),
        ("mode", pa.int64()),
        ("speechiness", pa.float64()),
        ("acousticness", pa.float64()),
        ("instrumentalness", pa.float64()),
        ("liveness", pa.float64()),
        ("valence", pa.float64()),
        ("tempo", pa.float64()),
        ("time_signature", pa.int64()),
        ("track_genre", pa.string()),
    ]
)

COLUMNS: tuple[str, ...] = tuple(RAW_SCHEMA.names)
TEXT_COLUMNS: tuple[str, ...] = ("track_id", "artists", "album_name", "track_name", "track_genre")

AUDIO_FEATURES: tuple[str, ...] = (
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "time_signature",
)

# Categorical audio columns (pitch class, major/minor, beats per bar): compared and modelled as categories.
CATEGORICAL_AUDIO: tuple[str, ...] = ("key", "mode", "time_signature")
# The standardised audio space of discovery (log_duration is TrackFeaturizer's log of duration_ms); the
# default of params.yaml discovery.features.
AUDIO_SPACE_FEATURES: tuple[str, ...] = (
    *(f for f in AUDIO_FEATURES if f not in CATEGORICAL_AUDIO),
    "log_duration",
)

# The holdout protocols (components/split.py): grouped by primary artist, and by track.
SplitProtocol = Literal["artist", "track"]
PROTOCOLS: tuple[SplitProtocol, ...] = ("artist", "track")
# The line of its source file each ingested or scored row came from (1 = the first data row).
ROW_NUMBER = "source_row"

TARGET = "popularity"
# Labels of the predictive tasks: never inputs of a model that predicts them.
# The genre task's label, also an input of the popularity and hit models.
GENRE = "track_genre"
LABEL_COLUMNS: tuple[str, ...] = (TARGET, GENRE)
# track_genre in the per-track table holds the set of genres of a track, joined by this separator.
GENRE_SEPARATOR = "|"
ARTIST_SEPARATOR = ";"

# The raw columns a model takes: the dataset's schema less the popularity label. Genre is an input of the
# popularity and hit models (one genre, or the set joined by '|'); the genre task drops it (components/tasks).
MODEL_INPUT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c != TARGET)


def model_inputs(frame: pd.DataFrame, columns: Sequence[str] = MODEL_INPUT_COLUMNS) -> pd.DataFrame:
    """The raw input columns in their canonical order (a new frame: callers' frames are never mutated)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"model input is missing columns {missing}")
    # Plain numpy dtypes give a simple, stable signature that matches the dataset's raw columns (integers stay
    # int64, so rows read straight from the CSV or parquet pass MLflow's schema check). Built in one go from
    # numpy arrays: converting column by column in place costs several ms per call, more than a model.
    return pd.DataFrame({c: plain_column(frame[c]) for c in columns}, index=frame.index)


def plain_column(column: pd.Series) -> np.ndarray:
    """A column as a numpy array of the plain dtype for its kind: bool (nulls false), int64 (float64 with
    gaps), float64, or object with None for nulls."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":  # numpy dtypes hold no nulls but NaN
        return column.to_numpy(dtype={"b": bool, "f": "float64"}.get(dtype.kind, "int64"))
    if isinstance(dtype, pd.BooleanDtype) or pd.api.types.is_bool_dtype(dtype):
        return column.to_numpy(dtype="float64", na_value=0.0).astype(bool)
    if pd.api.types.is_integer_dtype(dtype):
        has_gaps = bool(column.isna().any())
        return column.to_numpy(dtype="float64" if has_gaps else "int64", na_value=np.nan)
    if pd.api.types.is_numeric_dtype(dtype):
        return column.to_numpy(dtype="float64", na_value=np.nan)
    values = column.to_numpy(dtype=object)
    nulls = pd.isna(values)
    if nulls.any():
        values = values.copy()
        values[nulls] = None
    return values


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # None or NaN


@dataclass(frozen=True)
class InputArrays:
    """Model input rows as one numpy array per column, in `model_inputs`' dtypes, without a frame: what the
    inference path (components/inference.py) hands between models. Building a frame costs more than
    answering one row with a tree model."""

    arrays: Mapping[str, np.ndarray]
    n_rows: int

    @classmethod
    def of(cls, frame: pd.DataFrame, columns: Sequence[str] = MODEL_INPUT_COLUMNS) -> InputArrays:
        """`model_inputs(frame, columns)` as arrays."""
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"model input is missing columns {missing}")
        return cls({c: plain_column(frame[c]) for c in columns}, len(frame))

    @classmethod
    def from_records(cls, rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> InputArrays:
        """Rows given as dicts of plain values (a request's JSON) in `model_inputs`' dtypes, by each
        column's type in RAW_SCHEMA, without building a frame: missing keys are nulls."""
        arrays = {}
        for column in columns:
            values = [None if _is_null(v) else v for v in (row.get(column) for row in rows)]
            kind = RAW_SCHEMA.field(column).type
            if kind == pa.int64() and None not in values:
                arrays[column] = np.array(values, dtype="int64")
            elif kind in (pa.int64(), pa.float64()):
                arrays[column] = np.array([np.nan if v is None else v for v in values], dtype="float64")
            elif kind == pa.bool_():
                arrays[column] = np.array([bool(v) for v in values], dtype=bool)  # null reads false
            else:
                arrays[column] = np.array(values, dtype=object)
        return cls(arrays, len(rows))

    @classmethod
    def view(cls, frame: pd.DataFrame) -> InputArrays:
        """A frame's columns as they are (no dtype conversion)."""
        return cls({c: frame[c].to_numpy() for c in frame.columns}, len(frame))

    def __contains__(self, column: object) -> bool:
        return column in self.arrays

    def __getitem__(self, column: str) -> np.ndarray:
        return self.arrays[column]

    def __len__(self) -> int:
        return self.n_rows

    @property
    def columns(self) -> list[str]:
        return list(self.arrays)

    def take(self, rows: np.ndarray) -> InputArrays:
        """The rows a boolean mask or positions select."""
        rows = np.asarray(rows)
        count = int(rows.sum()) if rows.dtype == bool else len(rows)
        return InputArrays({c: v[rows] for c, v in self.arrays.items()}, count)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(dict(self.arrays), index=pd.RangeIndex(self.n_rows))
