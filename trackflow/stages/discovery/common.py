"""What the discovery parts share: the parts and registered models, the per-track table in the discovery
space with the main protocol's split, saved models, held-out samples, figures."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from components.discovery.clusters import (
    TrackClusterer,
    seeded_sample,
)
from components.discovery.space import DiscoveryInputError
from components.io import atomic_path
from components.params import Params
from components.schema import LABEL_COLUMNS, MODEL_INPUT_COLUMNS
from trackflow.paths import ProjectPaths

log = logging.getLogger("trackflow.discovery")


TIMING_KEYS = frozenset({"seconds", "query_ms", "build_seconds"})


# Registered model name -> the part that fits it.
REGISTERED = {"clusters": "clusters", "outliers": "outliers", "similar-tracks": "similar"}


# Raw input columns of each registered model. clusters and outliers take a scoring batch as it comes, without
# the label columns (track_genre only refines the imputation of missing values); similar-tracks also takes the
# genres, which its genre weighting uses.
INPUT_COLUMNS = {
    "clusters": tuple(c for c in MODEL_INPUT_COLUMNS if c not in LABEL_COLUMNS),
    "outliers": tuple(c for c in MODEL_INPUT_COLUMNS if c not in LABEL_COLUMNS),
    "similar-tracks": MODEL_INPUT_COLUMNS,
}


GATE_METRICS = {
    "clusters": "silhouette_holdout",
    "outliers": "synthetic_anomaly_auc",
    "similar-tracks": "genre_agreement_at_k",
}


def load_tracks(paths: ProjectPaths, params: Params) -> tuple[pd.DataFrame, np.ndarray]:
    """The per-track table and a boolean mask of its main-protocol held-out (test) tracks."""
    for needed, stage in ((paths.features, "featurize"), (paths.splits, "split")):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{needed}: missing; run `trackflow {stage}` (or the training flow) first"
            )
    tracks = pd.read_parquet(paths.features)
    splits = pd.read_parquet(paths.splits)
    column = f"split_{params.split.protocol}"
    side = tracks[["track_id"]].merge(splits[["track_id", column]], on="track_id", how="left")[column]
    if side.isna().any():
        raise DiscoveryInputError(
            f"{int(side.isna().sum())} tracks have no split assignment: rerun `trackflow split`"
        )
    return tracks, (side == "test").to_numpy()


def save_model(model: Any, target: Path) -> None:
    with atomic_path(target, ".pkl") as tmp, tmp.open("wb") as handle:
        pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)


def load_model(paths: ProjectPaths, part: str) -> Any:
    """A fitted discovery model written by this project's own stage (a local pickle we wrote)."""
    path = paths.discovery_model(part)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {part} model; run `trackflow discover --part {part}` first")
    with path.open("rb") as handle:
        return pickle.load(handle)


def holdout_sample(tracks: pd.DataFrame, is_test: np.ndarray, size: int, seed: int) -> pd.DataFrame:
    held_out = tracks.loc[is_test].reset_index(drop=True)
    return held_out.iloc[seeded_sample(len(held_out), size, seed)].reset_index(drop=True)


def save_figure(figure: Any, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, ".png") as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
    return target


def round_floats(value: Any, digits: int = 4) -> Any:
    if isinstance(value, float | np.floating):
        return round(float(value), digits)
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_floats(v, digits) for v in value]
    return value


def clusters_holdout_silhouette(clusterer: TrackClusterer, labels: np.ndarray, rows: pd.DataFrame) -> float:
    """Silhouette of `labels` for `rows` in `clusterer`'s space (the clusters gate: the same rows and space
    judge the challenger's and the champion's labels)."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return -1.0
    return float(silhouette_score(clusterer.embed(rows), labels))
