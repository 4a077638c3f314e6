"""Batch scoring with the registered champions: raw rows in, one predictions row per input row out.

The champions are MLflow pyfunc models with the preprocessing inside, so scoring hands them the raw columns of
the dataset. `track_genre` is the genre task's label and also an input of the popularity and hit models. A
batch may carry it (normalised to the dataset's spellings, components/genres.py): where a row has it, those
models take it; elsewhere their genre-free fallback answers (components/task_model.py), and the genre
champion's prediction goes to the output only: fed a guessed genre, a model trained on true genres does
worse than one that never saw a genre. `genre_input` says, per row, whether the genre was given, or is
predicted (or unknown, without a genre champion). A batch's own extra columns (a catalog id, a playlist)
are never model inputs: they are carried to the predictions file as they came, unless one would overwrite
an output column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.genres import GenreVocabulary, normalise_genres
from components.ingest import INGEST_ERRORS
from components.schema import GENRE, LABEL_COLUMNS, ROW_NUMBER, model_inputs
from components.tasks import TASK_SPECS

# The prediction column of each task.
PREDICTION_COLUMNS: dict[str, str] = {name: spec.prediction_column for name, spec in TASK_SPECS.items()}
KEY_COLUMNS: tuple[str, ...] = ("track_id", "artists", "track_name")
# The task whose answer stands for a missing input (genre) scores first.
SCORING_ORDER: tuple[str, ...] = tuple(sorted(TASK_SPECS, key=lambda t: TASK_SPECS[t].answers_input is None))
# The outlier model of discovery (`outliers@champion`), when registered: an outlier score and flag per row,
# so that a batch's share of odd or broken tracks is visible beside its predictions.
OUTLIERS = "outliers"
GIVEN, PREDICTED, UNKNOWN = "given", "predicted", "unknown"  # the values of `genre_input`
# Every column scoring writes (whichever champions exist), and the gate's bookkeeping: a batch column of one
# of these names would be overwritten or misread, so such a batch is rejected.
OUTPUT_COLUMNS: frozenset[str] = frozenset(
    {
        ROW_NUMBER,
        INGEST_ERRORS,
        "quarantine_reason",
        "genre_input",
        "outlier_score",
        "is_outlier",
        "scored_at",
        *PREDICTION_COLUMNS.values(),
        *(f"{name}_{what}" for name in (*TASK_SPECS, OUTLIERS) for what in ("model_version", "run_id")),
    }
)


@dataclass(frozen=True)
class Champion:
    """A loaded `models:/<task>@champion` and where it came from."""

    task: str
    version: str
    run_id: str
    model: Any  # mlflow.pyfunc.PyFuncModel

    @property
    def uri(self) -> str:
        return f"models:/{self.task}/{self.version}"


def _model_columns(model: Any, available: pd.DataFrame) -> pd.DataFrame:
    """The input columns the model's signature names, in its order (all of them if it has none)."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        return available
    names = schema.input_names()
    missing = [n for n in names if n not in available.columns]
    if missing:
        raise KeyError(f"the batch lacks input column(s) {missing} that the model needs")
    return available[names]


def plain_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """Numpy dtypes, as the models were logged with: integers stay int64 when complete, text is object."""

    return model_inputs(frame, list(frame.columns))


def with_known_genres(rows: pd.DataFrame, vocabulary: GenreVocabulary) -> pd.DataFrame:
    """A copy of `rows` whose `track_genre` (when the batch has one) is in the dataset's spellings; a row
    whose genre is still unknown gets a null genre and a note in `ingest_errors` naming the value, so that
    the gate fails that row like a cell that did not parse."""
    if GENRE not in rows.columns:
        return rows
    genres, notes = normalise_genres(rows[GENRE], vocabulary)
    out = rows.copy()
    out[GENRE] = genres
    if INGEST_ERRORS in out.columns:
        earlier = out[INGEST_ERRORS].astype("string")
        joined = (earlier.fillna("") + "; " + notes.fillna("")).str.strip("; ")
        out[INGEST_ERRORS] = joined.where(earlier.notna() | notes.notna(), pd.NA).astype("string")
    else:
        out[INGEST_ERRORS] = notes
    return out


def colliding_columns(columns: Sequence[str]) -> list[str]:
    """The batch columns that carry the name of an output column."""
    return [c for c in columns if c in OUTPUT_COLUMNS]


def score_rows(
    rows: pd.DataFrame,
    champions: Mapping[str, Champion],
    scored_at: pd.Timestamp,
    passthrough: Sequence[str] = (),
) -> pd.DataFrame:
    """Predictions for `rows` (raw dataset columns; a given `track_genre` used, other labels ignored) from
    every champion given.

    Returns a new frame: the key columns, one prediction column per task, `genre_input`, the model version and
    run id per task, `outlier_score` and `is_outlier` when the outlier model is given, `scored_at`, then the
    `passthrough` columns as they came. The input frame is not modified.
    """
    dropped = [c for c in (*LABEL_COLUMNS, *passthrough) if c in rows.columns]
    inputs = plain_inputs(rows.drop(columns=dropped))
    out = pd.DataFrame({key: rows[key].to_numpy() for key in KEY_COLUMNS if key in rows.columns})
    if GENRE in rows.columns:
        has_genre = rows[GENRE].notna().to_numpy()
        given = np.where(has_genre, rows[GENRE].astype(object).to_numpy(), None)
    else:
        has_genre = np.zeros(len(rows), dtype=bool)
        given = np.full(len(rows), None, dtype=object)
    inputs = inputs.assign(**{GENRE: given})
    source = np.where(has_genre, GIVEN, UNKNOWN).astype(object)
    for task in SCORING_ORDER:
        champion = champions.get(task)
        if champion is None:
            continue
        spec = TASK_SPECS[task]
        frame = conform_to_signature(_model_columns(champion.model, inputs), champion.model)
        predicted = np.asarray(champion.model.predict(frame))
        if spec.answers_input is not None:
            source = np.where(has_genre, GIVEN, PREDICTED).astype(object)
        out[spec.prediction_column] = predicted.astype(spec.answer_dtype)
        out[f"{task}_model_version"] = champion.version
        out[f"{task}_run_id"] = champion.run_id
    out["genre_input"] = source
    outliers = champions.get(OUTLIERS)
    if outliers is not None:
        frame = conform_to_signature(_model_columns(outliers.model, inputs), outliers.model)
        flagged = pd.DataFrame(outliers.model.predict(frame))
        out["outlier_score"] = flagged["outlier_score"].to_numpy(dtype="float64")
        out["is_outlier"] = flagged["is_outlier"].to_numpy(dtype=bool)
        out[f"{OUTLIERS}_model_version"] = outliers.version
        out[f"{OUTLIERS}_run_id"] = outliers.run_id
    out["scored_at"] = scored_at
    for column in passthrough:
        out[column] = rows[column].to_numpy()
    return out


_SCHEMA_DTYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
}


def conform_to_signature(frame: pd.DataFrame, model: Any) -> pd.DataFrame:
    """Cast columns to the types in a pyfunc model's input signature (a copy), so that a model logged with
    other numeric types (say, integers declared as doubles by an older version) still scores raw rows.
    Integer casts that would lose information are left to MLflow's own schema check to reject."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        return frame
    conformed = frame.copy()
    for spec in schema.inputs:
        target = _SCHEMA_DTYPES.get(getattr(spec.type, "name", str(spec.type)))
        if spec.name not in conformed.columns or target is None:
            continue
        column = conformed[spec.name]
        if target.startswith("int") and (column.isna().any() or not (column.dropna() % 1 == 0).all()):
            continue
        conformed[spec.name] = column.astype(target)
    return conformed
