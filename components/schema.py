"""The dataset's raw schema: column names and types as documented upstream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

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
    """The raw input columns in their canonical order (a copy: callers' frames are never mutated)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"model input is missing columns {missing}")
    inputs = frame[list(columns)].copy()
    # Plain numpy dtypes give a simple, stable signature that matches the dataset's raw columns (integers stay
    # int64, so rows read straight from the CSV or parquet pass MLflow's schema check).
    for column in inputs.columns:
        dtype = inputs[column].dtype
        if isinstance(dtype, pd.BooleanDtype) or pd.api.types.is_bool_dtype(dtype):
            inputs[column] = inputs[column].astype("float64").fillna(0.0).astype(bool)
        elif pd.api.types.is_integer_dtype(dtype):
            has_gaps = bool(inputs[column].isna().any())
            inputs[column] = inputs[column].astype("float64" if has_gaps else "int64")
        elif pd.api.types.is_numeric_dtype(dtype):
            inputs[column] = inputs[column].astype("float64")
        else:
            inputs[column] = inputs[column].astype(object).where(inputs[column].notna(), None)
    return inputs
