"""The three predictive tasks: what a row is, what the label is, which inputs a model may see.

- popularity: regression of popularity 0-100, one row per track.
- hit: binary, popularity >= a threshold from params.yaml, one row per track.
- genre: 114-class classification. A track carries a SET of genres: training sees one row per (track, genre)
  pair, so every listed genre is a right answer; evaluation is per track, right when the prediction is in the
  set. The genre is the label here, so `track_genre` is never an input of the genre model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from components.modeling import MODEL_INPUT_COLUMNS
from components.schema import GENRE_SEPARATOR, TARGET

TaskName = Literal["popularity", "genre", "hit"]
TaskKind = Literal["regression", "binary", "multiclass"]
TASKS: tuple[TaskName, ...] = ("popularity", "genre", "hit")


@dataclass(frozen=True)
class TaskSpec:
    name: TaskName
    kind: TaskKind
    input_columns: tuple[str, ...]
    # The holdout metric that decides promotion, and whether lower is better.
    gate_metric: str
    lower_is_better: bool

    def feature_groups(self, groups: Sequence[str]) -> tuple[str, ...]:
        """The configured feature groups less any that would read this task's label."""
        return tuple(g for g in groups if not (self.name == "genre" and g == "genre"))


TASK_SPECS: dict[TaskName, TaskSpec] = {
    "popularity": TaskSpec("popularity", "regression", MODEL_INPUT_COLUMNS, "rmse", True),
    "hit": TaskSpec("hit", "binary", MODEL_INPUT_COLUMNS, "roc_auc", False),
    "genre": TaskSpec(
        "genre",
        "multiclass",
        tuple(c for c in MODEL_INPUT_COLUMNS if c != "track_genre"),
        "top1_set_accuracy",
        False,
    ),
}


@dataclass(frozen=True)
class TaskData:
    """Rows of one task: raw model inputs, labels, CV groups and (genre) each row's set of genres."""

    inputs: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray
    track_ids: np.ndarray
    label_sets: list[set[str]] | None = None


def genre_classes(tracks: pd.DataFrame) -> list[str]:
    """The sorted genre vocabulary; class k of the genre model is genre_classes[k]."""
    return sorted({g for s in tracks["track_genre"].astype(str) for g in s.split(GENRE_SEPARATOR) if g})


def _inputs(frame: pd.DataFrame, spec: TaskSpec) -> pd.DataFrame:
    from components.modeling import model_inputs

    return model_inputs(frame, spec.input_columns)


def task_data(
    tracks: pd.DataFrame,
    task: TaskName,
    *,
    hit_threshold: float,
    classes: Sequence[str] | None = None,
    for_training: bool,
) -> TaskData:
    """Build a task's rows from the per-track table. For genre training, one row per (track, genre)."""
    spec = TASK_SPECS[task]
    groups_column = tracks["primary_artist"].astype(str).to_numpy()
    if task == "popularity":
        return TaskData(
            _inputs(tracks, spec),
            tracks[TARGET].to_numpy("float64"),
            groups_column,
            tracks["track_id"].to_numpy(),
        )
    if task == "hit":
        y = (tracks[TARGET].to_numpy("float64") >= hit_threshold).astype("int64")
        return TaskData(_inputs(tracks, spec), y, groups_column, tracks["track_id"].to_numpy())
    if classes is None:
        raise ValueError("the genre task needs the class list")
    index = {g: k for k, g in enumerate(classes)}
    label_sets = [set(s.split(GENRE_SEPARATOR)) for s in tracks["track_genre"].astype(str)]
    if not for_training:
        # Evaluation: one row per track; y is the first genre (for log-loss), label_sets decide correctness.
        first = np.array([index.get(sorted(s)[0], -1) for s in label_sets], dtype="int64")
        return TaskData(
            _inputs(tracks, spec), first, groups_column, tracks["track_id"].to_numpy(), label_sets
        )
    pairs = tracks.assign(_genre=tracks["track_genre"].astype(str).str.split(GENRE_SEPARATOR)).explode(
        "_genre"
    )
    pairs = pairs[pairs["_genre"].isin(index)].reset_index(drop=True)
    return TaskData(
        _inputs(pairs, spec),
        pairs["_genre"].map(index).to_numpy("int64"),
        pairs["primary_artist"].astype(str).to_numpy(),
        pairs["track_id"].to_numpy(),
        [set(s.split(GENRE_SEPARATOR)) for s in pairs["track_genre"].astype(str)],
    )
