"""What the model server answers, without the server: request rows checked against the dataset's columns,
MLflow's scoring protocol read as `mlflow models serve` reads it, the genre top-k, the prediction log's
records. Nothing here reads or writes files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, create_model

from components.schema import GENRE, RAW_SCHEMA, TARGET
from components.scoring import Champion, conform_to_signature, plain_inputs, score_rows
from components.tasks import GENRE_TASK, TASK_SPECS

_PYTHON_TYPES = {pa.string(): str, pa.int64(): int, pa.float64(): float, pa.bool_(): bool}
# Optional in a request: the genre (the genre-free fallback answers without it) and the label.
_OPTIONAL = (GENRE, TARGET)


def _row_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for field in RAW_SCHEMA:
        kind = _PYTHON_TYPES[field.type]
        fields[field.name] = (kind | None, None) if field.name in _OPTIONAL else (kind, ...)
    return fields


# A track in the dataset's columns; columns of the caller's own are allowed and passed back.
TrackRow = create_model(  # type: ignore[call-overload]
    "TrackRow", __config__=ConfigDict(extra="allow", strict=False), **_row_fields()
)


class PredictRequest(BaseModel):
    rows: list[TrackRow] = Field(min_length=1)  # type: ignore[valid-type]
    top_k: int | None = Field(default=None, ge=1, le=114)


class SimilarRequest(BaseModel):
    track_id: str
    k: int | None = Field(default=None, ge=1, le=1000)
    genre_weight: float | None = Field(default=None, ge=0)


class PlaylistRequest(BaseModel):
    seeds: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    n: int | None = Field(default=None, ge=2, le=1000)
    genre_weight: float | None = Field(default=None, ge=0)


class ProtocolError(ValueError):
    """A body that MLflow's scoring server would refuse too (it answers 400 BAD_REQUEST)."""


def frame_from_invocation(body: Any) -> pd.DataFrame:
    """The rows of an `/invocations` body in MLflow's formats: `dataframe_split` ({columns, data[, index]})
    or `dataframe_records` (a list of objects)."""
    if not isinstance(body, Mapping):
        raise ProtocolError("the body must be a JSON object with dataframe_split or dataframe_records")
    formats = [key for key in ("dataframe_split", "dataframe_records", "instances", "inputs") if key in body]
    if len(formats) != 1:
        raise ProtocolError(
            "give exactly one of dataframe_split, dataframe_records (instances and inputs are for tensors, "
            f"which these models do not take); got {sorted(body)}"
        )
    key = formats[0]
    if key in ("instances", "inputs"):
        raise ProtocolError(
            f"{key} is for tensor input; these models take dataframe_split or dataframe_records"
        )
    try:
        if key == "dataframe_split":
            split = body[key]
            frame = pd.DataFrame(split["data"], columns=split.get("columns"), index=split.get("index"))
        else:
            frame = pd.DataFrame.from_records(body[key])
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        raise ProtocolError(f"{key} could not be read as a table: {exc}") from exc
    if frame.empty:
        raise ProtocolError(f"{key} holds no rows")
    return frame.reset_index(drop=True)


def top_genres(probabilities: np.ndarray, classes: Sequence[str], k: int) -> list[list[dict[str, Any]]]:
    """Per row, the k most likely genres with their probabilities, most likely first."""
    k = min(k, len(classes))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [
        [{"genre": classes[j], "probability": round(float(row[j]), 6)} for j in picks]
        for row, picks in zip(probabilities, order, strict=True)
    ]


def answer_rows(
    rows: pd.DataFrame, champions: Mapping[str, Champion], top_k: int, passthrough: Sequence[str] = ()
) -> pd.DataFrame:
    """Batch scoring's answers for `rows` (components/scoring.py `score_rows`), and each row's `genre_top`:
    the genre champion's k most likely genres. What the model server and the explorer show."""
    scored = score_rows(rows, champions, pd.Timestamp.now("UTC"), passthrough)
    genre = champions.get(GENRE_TASK)
    if genre is not None:
        inputs = plain_inputs(rows[list(TASK_SPECS[GENRE_TASK].input_columns)])
        raw = genre.model.get_raw_model()
        probabilities = raw.predict_proba(conform_to_signature(inputs, genre.model))
        scored["genre_top"] = top_genres(probabilities, list(raw.classes), top_k)
    return scored


def inputs_hash(row: Mapping[str, Any]) -> str:
    """A stable hash of one request row (keys sorted), to find a served prediction again."""
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()


def json_safe(value: Any) -> Any:
    """numpy and pandas scalars as plain JSON values (NaN as null)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
