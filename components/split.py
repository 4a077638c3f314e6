"""Deterministic grouped holdouts: no group (primary artist, or track) is on both sides."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

PROTOCOL_GROUP_COLUMN = {"artist": "primary_artist", "track": "track_id"}


def _unit_interval(keys: pd.Series, seed: int) -> np.ndarray:
    # A seeded hash per group: the assignment of a group never depends on which other groups are present,
    # so adding data does not reshuffle the existing holdout.
    return np.fromiter(
        (
            int.from_bytes(hashlib.sha256(f"{seed}\x1f{k}".encode()).digest()[:8], "big") / 2**64
            for k in keys.astype(str)
        ),
        dtype=np.float64,
        count=len(keys),
    )


def assign_holdout(groups: pd.Series, test_size: float, seed: int) -> pd.Series:
    """'test' for every row whose group hashes under `test_size`, 'train' otherwise."""
    unique = pd.Series(groups.astype(str).unique())
    is_test = dict(zip(unique, _unit_interval(unique, seed) < test_size, strict=True))
    return groups.astype(str).map(is_test).map({True: "test", False: "train"}).astype("string")


def make_splits(tracks: pd.DataFrame, test_size: float, seed: int) -> pd.DataFrame:
    """The split of every track under each protocol, keyed by track_id."""
    splits = pd.DataFrame({"track_id": tracks["track_id"], "primary_artist": tracks["primary_artist"]})
    for protocol, column in PROTOCOL_GROUP_COLUMN.items():
        splits[f"split_{protocol}"] = assign_holdout(tracks[column], test_size, seed)
    return splits


def split_frames(
    tracks: pd.DataFrame, splits: pd.DataFrame, protocol: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test rows of `tracks` under `protocol`, aligned on track_id."""
    column = f"split_{protocol}"
    side = tracks[["track_id"]].merge(splits[["track_id", column]], on="track_id", how="left")[column]
    if side.isna().any():
        missing = tracks.loc[side.isna().to_numpy(), "track_id"].head(3).tolist()
        raise ValueError(f"{int(side.isna().sum())} tracks have no split assignment, e.g. {missing}")
    is_test = (side == "test").to_numpy()
    return tracks.loc[~is_test].reset_index(drop=True), tracks.loc[is_test].reset_index(drop=True)
