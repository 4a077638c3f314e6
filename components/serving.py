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

from components.schema import GENRE, MODEL_INPUT_COLUMNS, RAW_SCHEMA, TARGET, InputArrays
from components.scoring import (
    KEY_COLUMNS,
    Champion,
    answer_columns,
    reasons_column,
    score_with_outputs,
    task_reasons,
    with_given_genre,
)
from components.tasks import GENRE_TASK

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
    # Opt-in: each task's top reasons (raw column, contribution, estimate) per row; off keeps the speed.
    reasons: int | None = Field(default=None, ge=1, le=20)


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
    rows: pd.DataFrame,
    champions: Mapping[str, Champion],
    top_k: int,
    passthrough: Sequence[str] = (),
    reasons: int = 0,
) -> pd.DataFrame:
    """Batch scoring's answers for `rows` (components/scoring.py `score_rows`), and each row's `genre_top`:
    the genre champion's k most likely genres, from the same probabilities its answer came from. What the
    model server and the explorer show."""
    scored, outputs = score_with_outputs(rows, champions, pd.Timestamp.now("UTC"), passthrough, reasons)
    genre = champions.get(GENRE_TASK)
    model = genre.task_model if genre is not None else None
    if model is not None:
        scored["genre_top"] = top_genres(outputs[GENRE_TASK], list(model.classes), top_k)
    return scored


def answer_records(
    rows: Sequence[Mapping[str, Any]],
    champions: Mapping[str, Champion],
    top_k: int,
    passthrough: Sequence[str] = (),
    reasons: int = 0,
) -> list[dict[str, Any]]:
    """`answer_rows` for rows given as dicts (a request's JSON, genres already in the dataset's spellings),
    one dict per row, without the frames: for the one row of a typical request, building them costs more
    than the models' answer. The same answers (components/scoring.py `answer_columns`; a test compares)."""
    present = [c for c in MODEL_INPUT_COLUMNS if c not in passthrough]
    inputs = with_given_genre(InputArrays.from_records(rows, present))
    columns, outputs = answer_columns(inputs, champions)
    genre = champions.get(GENRE_TASK)
    model = genre.task_model if genre is not None else None
    if model is not None:
        columns["genre_top"] = top_genres(outputs[GENRE_TASK], list(model.classes), top_k)
    if reasons > 0:  # opt-in: explaining costs more than answering
        for task, per_task in task_reasons(inputs, champions, reasons).items():
            columns[reasons_column(task)] = per_task
    per_row = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in columns.items()}
    answers = []
    for position, row in enumerate(rows):
        answer = {key: row.get(key) for key in KEY_COLUMNS}
        for name, value in per_row.items():
            answer[name] = value[position] if isinstance(value, list) else value
        answer.update({column: row.get(column) for column in passthrough})
        answers.append(answer)
    return answers


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as dicts of plain Python values (DataFrame.to_dict(orient="records") does the same
    at several times the cost for the few rows of a request)."""
    columns = list(frame.columns)
    values = [frame[c].tolist() for c in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


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
