"""What the per-task model stages share: the tables, a task's rows under a protocol, its featurizer, the
error a task raises when no family could be trained, and the rows without a genre."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd

from components.features import TrackFeaturizer
from components.params import Params
from components.schema import GENRE, PROTOCOLS
from components.split import split_frames
from components.tasks import TASK_SPECS, TaskData, TaskName, TaskSpec
from components.tracks import LABEL_BATCH
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


def capped(rows: TaskData, tracks: pd.DataFrame, limit: int | None, seed: int) -> TaskData:
    """A task's training rows under the profile's cap: a seeded sample of the dataset's rows, and every
    labelled row on top (the labels that came back are what a retrain has to learn)."""
    return rows.sample(limit, seed, always=np.isin(rows.track_ids, labelled_tracks(tracks)))


def labelled_tracks(tracks: pd.DataFrame) -> np.ndarray:
    """The track ids whose row came from data/labels/."""
    if LABEL_BATCH not in tracks:
        return np.array([], dtype=object)
    return tracks["track_id"][tracks[LABEL_BATCH].notna()].to_numpy()


def featurizer_factory(params: Params, task: TaskName, extra_groups: tuple[str, ...] = ()):
    groups = TASK_SPECS[task].feature_groups(params.train.feature_groups) + tuple(extra_groups)

    def make(needs_scaling: bool) -> TrackFeaturizer:
        return TrackFeaturizer(
            groups=tuple(dict.fromkeys(groups)),
            seed=params.train.seed,
            scale=needs_scaling,
            names=params.train.names.settings(),
            artist_mask_share=params.train.artist_mask_share,
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


# --- rows without a genre, as scoring meets them -----------------------------------------------------
def reads_genre(spec: TaskSpec) -> bool:
    """The task's models take the genre as an input (and so carry a genre-free fallback)."""
    return GENRE in spec.input_columns


def without_genre(data: TaskData) -> TaskData:
    """`data` with the genre withheld: the rows the genre-free fallback learns from, and the holdout as a
    scoring batch without a genre meets the models."""
    withheld = np.full(len(data.y), None, dtype=object)
    return dataclasses.replace(data, inputs=data.inputs.assign(**{GENRE: withheld}))
