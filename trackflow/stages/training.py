"""What the per-task model stages share: the tables, a task's rows under a protocol, its featurizer, the
error a task raises when no family could be trained, and the genre input as scoring fills it."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd

from components.features import TrackFeaturizer
from components.io import read_json
from components.params import Params
from components.schema import GENRE, PROTOCOLS
from components.split import split_frames
from components.task_model import TaskModel
from components.tasks import GENRE_TASK, TASK_SPECS, TaskData, TaskName, TaskSpec
from trackflow.paths import ProjectPaths

log = logging.getLogger("trackflow")


class TrainingError(RuntimeError):
    """No family could be trained for a task."""


def protocols(params: Params) -> list[str]:
    return [params.split.protocol, *[p for p in PROTOCOLS if p != params.split.protocol]]


def load_tables(paths: ProjectPaths) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(paths.features), pd.read_parquet(paths.splits)


def task_rows(
    tracks: pd.DataFrame, splits: pd.DataFrame, params: Params, task: TaskName, protocol: str, side: str
) -> TaskData:
    spec = TASK_SPECS[task]
    train, test = split_frames(tracks, splits, protocol)
    rows = train if side == "train" else test
    return spec.rows(rows, spec.classes(tracks), side == "train", params.train.hit_threshold)


def featurizer_factory(params: Params, task: TaskName, extra_groups: tuple[str, ...] = ()):
    groups = TASK_SPECS[task].feature_groups(params.train.feature_groups) + tuple(extra_groups)

    def make(needs_scaling: bool) -> TrackFeaturizer:
        return TrackFeaturizer(
            groups=tuple(dict.fromkeys(groups)), seed=params.train.seed, scale=needs_scaling
        )

    return make


def task_n_classes(task: TaskName, tracks: pd.DataFrame) -> int | None:
    spec = TASK_SPECS[task]
    return spec.n_classes(spec.classes(tracks))


def rows_fingerprint(data: TaskData) -> str:
    """Which tuning rows, in which order: out-of-fold outputs are only reused for the very same rows."""
    return hashlib.sha256("\n".join(map(str, data.track_ids)).encode()).hexdigest()


def rounded(value: Any, digits: int = 6) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    return value


# --- the genre input, as scoring fills it ------------------------------------------------------------
def takes_predicted_genre(spec: TaskSpec, params: Params) -> bool:
    """The task's models read the genre, and this run trains a genre model to predict it."""
    return GENRE in spec.input_columns and GENRE_TASK in params.train.tasks


def predicted_genre(paths: ProjectPaths, data: TaskData, protocol: str, classes: Any) -> np.ndarray:
    """This run's selected genre model's top-1 genre for `data`'s rows (fitted on `protocol`'s training
    rows): the input a scoring batch without a genre gets."""
    spec = TASK_SPECS[GENRE_TASK]
    selected = read_json(paths.task_models(GENRE_TASK) / "selection.json")["selected"]
    model: TaskModel = mlflow.sklearn.load_model(str(paths.task_models(GENRE_TASK) / protocol / selected))
    return spec.answer(spec.output(model, data.inputs[list(spec.input_columns)]), classes)


def with_genre(data: TaskData, genre: np.ndarray) -> TaskData:
    return dataclasses.replace(data, inputs=data.inputs.assign(**{GENRE: genre}))
