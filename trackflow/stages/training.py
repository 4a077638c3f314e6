"""What the per-task model stages share: the tables, a task's rows under a protocol, its featurizer, and the
error a task raises when no family could be trained."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pandas as pd

from components.features import TrackFeaturizer
from components.params import Params
from components.schema import PROTOCOLS
from components.split import split_frames
from components.tasks import TASK_SPECS, TaskData, TaskName
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
