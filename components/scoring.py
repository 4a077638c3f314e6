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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from components.genres import GenreVocabulary, normalise_genres
from components.ingest import INGEST_ERRORS
from components.schema import GENRE, MODEL_INPUT_COLUMNS, ROW_NUMBER, InputArrays, model_inputs
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
        *(f"{task}_reasons" for task in TASK_SPECS),
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

    @cached_property
    def task_model(self) -> Any | None:
        """The model's TaskModel (components/task_model.py), which the inference path answers with,
        unwrapped once per loaded champion; None for a model of another kind, answered through its pyfunc
        `predict`."""
        from components.task_model import TaskModel

        raw = getattr(self.model, "get_raw_model", None)
        try:
            model = raw() if raw is not None else None
        except Exception:  # a pyfunc model without a raw model behind it
            return None
        return model if isinstance(model, TaskModel) else None


def _check_columns(model: Any, available: Sequence[str]) -> None:
    """A KeyError naming the input columns of the model's signature that the batch lacks."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        return
    present = set(available)
    missing = [n for n in schema.input_names() if n not in present]
    if missing:
        raise KeyError(f"the batch lacks input column(s) {missing} that the model needs")


def _model_columns(model: Any, available: pd.DataFrame) -> pd.DataFrame:
    """The input columns the model's signature names, in its order (all of them if it has none)."""
    _check_columns(model, available.columns)
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        return available
    return available[schema.input_names()]


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


def task_outputs(
    rows: pd.DataFrame | InputArrays, champions: Mapping[str, Champion]
) -> dict[str, np.ndarray]:
    """What each champion's task spec scores for `rows` (class probabilities of a classifier, predictions
    otherwise): all of them through one components.inference.FeatureCache, so that models sharing a
    featurizer state featurize once. A champion that is not a TaskModel answers through pyfunc `predict`."""
    from components.inference import FeatureCache

    cache = FeatureCache()
    out: dict[str, np.ndarray] = {}
    for task in SCORING_ORDER:
        champion = champions.get(task)
        if champion is None:
            continue
        _check_columns(champion.model, rows.columns)
        model = champion.task_model
        if model is not None:
            out[task] = model.outputs(rows, cache)
        else:
            frame = rows.frame() if isinstance(rows, InputArrays) else rows
            frame = conform_to_signature(_model_columns(champion.model, frame), champion.model)
            out[task] = np.asarray(champion.model.predict(frame))
    return out


def task_answer(task: str, champion: Champion, output: np.ndarray) -> np.ndarray:
    """The answer scoring writes for a task, from its `task_outputs` entry."""
    model = champion.task_model
    return output if model is None else model.answer(output)


def with_given_genre(inputs: InputArrays) -> InputArrays:
    """`inputs` with a `track_genre` column: the given genre where there is one, null elsewhere."""
    arrays = dict(inputs.arrays)
    genre = arrays.get(GENRE)
    arrays[GENRE] = (
        np.full(len(inputs), None, dtype=object)
        if genre is None
        else np.where(pd.isna(genre), None, np.asarray(genre, dtype=object))
    )
    return InputArrays(arrays, len(inputs))


def answer_columns(
    inputs: InputArrays, champions: Mapping[str, Champion]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per task, the answer, the model version and its run id, then `genre_input`, as columns (a version
    and a run id are one value for every row); and the `task_outputs` behind the answers. `inputs` carry a
    genre column (`with_given_genre`)."""
    outputs = task_outputs(inputs, champions)
    has_genre = ~pd.isna(inputs[GENRE]).astype(bool)
    columns: dict[str, Any] = {}
    source = np.where(has_genre, GIVEN, UNKNOWN).astype(object)
    for task in SCORING_ORDER:
        champion = champions.get(task)
        if champion is None:
            continue
        spec = TASK_SPECS[task]
        if spec.answers_input is not None:
            source = np.where(has_genre, GIVEN, PREDICTED).astype(object)
        columns[spec.prediction_column] = task_answer(task, champion, outputs[task]).astype(spec.answer_dtype)
        columns[f"{task}_model_version"] = champion.version
        columns[f"{task}_run_id"] = champion.run_id
    columns["genre_input"] = source
    return columns, outputs


def score_rows(
    rows: pd.DataFrame,
    champions: Mapping[str, Champion],
    scored_at: pd.Timestamp,
    passthrough: Sequence[str] = (),
    reasons: int = 0,
) -> pd.DataFrame:
    """Predictions for `rows` (raw dataset columns; a given `track_genre` used, other labels ignored) from
    every champion given.

    Returns a new frame: the key columns, one prediction column per task, `genre_input`, the model version and
    run id per task, `outlier_score` and `is_outlier` when the outlier model is given, `scored_at`, then the
    `passthrough` columns as they came. The input frame is not modified.
    """
    return score_with_outputs(rows, champions, scored_at, passthrough, reasons)[0]


def reasons_column(task: str) -> str:
    """The output column of a task's per-prediction reasons (opt-in: `score.reasons`, the server's
    `reasons`)."""
    return f"{task}_reasons"


def task_reasons(
    inputs: InputArrays, champions: Mapping[str, Champion], k: int
) -> dict[str, list[list[dict[str, Any]]]]:
    """Per task and row, the k raw input columns that moved the answer most, with their contribution and
    which estimate it is (components/explain.py); tasks whose champion is no TaskModel have none."""
    out = {}
    for task in SCORING_ORDER:
        champion = champions.get(task)
        model = champion.task_model if champion is not None else None
        if model is not None:
            out[task] = model.reasons(inputs, k)
    return out


def score_with_outputs(
    rows: pd.DataFrame,
    champions: Mapping[str, Champion],
    scored_at: pd.Timestamp,
    passthrough: Sequence[str] = (),
    reasons: int = 0,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """`score_rows`' frame, and each task's `task_outputs` behind it (the genre probabilities, say);
    `reasons` > 0 adds each task's top reasons as a JSON column (`reasons_column`)."""
    # The model inputs as arrays, converted once for every model (labels and passthrough columns are never
    # inputs); the genre where given, else null for every row.
    present = [c for c in MODEL_INPUT_COLUMNS if c in rows.columns and c not in passthrough]
    inputs = with_given_genre(InputArrays.of(rows, present))
    out: dict[str, Any] = {key: rows[key].to_numpy() for key in KEY_COLUMNS if key in rows.columns}
    answers, outputs = answer_columns(inputs, champions)
    out.update(answers)
    outliers = champions.get(OUTLIERS)
    if outliers is not None:
        frame = conform_to_signature(_model_columns(outliers.model, inputs.frame()), outliers.model)
        flagged = pd.DataFrame(outliers.model.predict(frame))
        out["outlier_score"] = flagged["outlier_score"].to_numpy(dtype="float64")
        out["is_outlier"] = flagged["is_outlier"].to_numpy(dtype=bool)
        out[f"{OUTLIERS}_model_version"] = outliers.version
        out[f"{OUTLIERS}_run_id"] = outliers.run_id
    if reasons > 0:
        for task, per_row in task_reasons(inputs, champions, reasons).items():
            out[reasons_column(task)] = np.array([json.dumps(r) for r in per_row], dtype=object)
    out["scored_at"] = scored_at
    for column in passthrough:
        out[column] = rows[column].to_numpy()
    return pd.DataFrame(out, index=pd.RangeIndex(len(rows))), outputs


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
