"""Batch scoring with the registered champions: raw rows in, one predictions row per input row out.

The champions are MLflow pyfunc models with the preprocessing inside, so scoring hands them the raw columns of
the dataset. A scoring batch has no labels, and `track_genre` is a label (of the genre task) that the
popularity and hit models also take as an input: when the genre champion exists its top-1 prediction fills
that input, otherwise the genre is unknown (the models then impute by the global medians), and the column
`genre_input` says which it was for every row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.schema import LABEL_COLUMNS, model_inputs
from components.tasks import TASK_SPECS

# The prediction column of each task.
PREDICTION_COLUMNS: dict[str, str] = {name: spec.prediction_column for name, spec in TASK_SPECS.items()}
KEY_COLUMNS: tuple[str, ...] = ("track_id", "artists", "track_name")
# Tasks whose answer fills another model's input (genre) score first.
SCORING_ORDER: tuple[str, ...] = tuple(sorted(TASK_SPECS, key=lambda t: TASK_SPECS[t].answers_input is None))
# The outlier model of discovery (`outliers@champion`), when registered: an outlier score and flag per row,
# so that a batch's share of odd or broken tracks is visible beside its predictions.
OUTLIERS = "outliers"


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


def score_rows(
    rows: pd.DataFrame, champions: Mapping[str, Champion], scored_at: pd.Timestamp
) -> pd.DataFrame:
    """Predictions for `rows` (raw dataset columns, labels ignored) from every champion given.

    Returns a new frame: the key columns, one prediction column per task, `genre_input`, the model version and
    run id per task, `outlier_score` and `is_outlier` when the outlier model is given, and `scored_at`. The
    input frame is not modified.
    """
    inputs = plain_inputs(rows.drop(columns=[c for c in LABEL_COLUMNS if c in rows.columns]))
    out = pd.DataFrame({key: rows[key].to_numpy() for key in KEY_COLUMNS if key in rows.columns})
    filled: dict[str, np.ndarray] = {"track_genre": np.array([None] * len(rows), dtype=object)}
    source = "unknown"
    for task in SCORING_ORDER:
        champion = champions.get(task)
        if champion is None:
            continue
        spec = TASK_SPECS[task]
        taken = {c: v for c, v in filled.items() if c in spec.input_columns}
        frame = conform_to_signature(_model_columns(champion.model, inputs.assign(**taken)), champion.model)
        predicted = np.asarray(champion.model.predict(frame))
        if spec.answers_input is not None:
            filled[spec.answers_input] = predicted.astype(object)
            source = "predicted"
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
