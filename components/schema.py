"""The dataset's raw schema: column names and types as documented upstream."""

from __future__ import annotations

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
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in TEXT_COLUMNS and c != "explicit")

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

TARGET = "popularity"
# Labels of the predictive tasks: never inputs of a model that predicts them.
LABEL_COLUMNS: tuple[str, ...] = ("popularity", "track_genre")
# track_genre in the per-track table holds the set of genres of a track, joined by this separator.
GENRE_SEPARATOR = "|"
ARTIST_SEPARATOR = ";"
