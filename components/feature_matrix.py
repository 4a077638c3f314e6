"""The positional helpers of `TrackFeaturizer.transform_matrix` (components/features.py), the inference
path's features: text columns worked out once per distinct value, a fitted featurizer's state as arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.schema import ARTIST_SEPARATOR, GENRE_SEPARATOR


def floats(values: np.ndarray) -> np.ndarray:
    """A column's values as float64, nulls as NaN (object columns hold None or pd.NA for them)."""
    if values.dtype.kind in "fiub":
        return values.astype("float64", copy=False)
    return pd.Series(values, dtype=object).to_numpy(dtype="float64", na_value=np.nan)


# Up to this many rows a dict factorizes a column: pd.factorize costs about 0.1 ms a call, which a one-row
# request paid some 24 times (4 text columns for each featurizer of its blends' members).
_SMALL = 64


def _is_null(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _factorize_small(column: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """pd.factorize's codes and distinct values, in order of first appearance, nulls last as ""."""
    position: dict[object, int] = {}
    codes = np.empty(len(column), dtype=np.intp)
    nulls = []
    for row, value in enumerate(column):
        if _is_null(value):
            nulls.append(row)
            continue
        codes[row] = position.setdefault(value, len(position))
    values = [str(v) for v in position]
    if nulls:
        codes[nulls] = len(values)
        values.append("")
    return codes, values


@dataclass(frozen=True)
class Distinct:
    """A text column as its distinct values and, per row, the position of the row's value among them."""

    codes: np.ndarray
    values: list[str]

    @classmethod
    def of(cls, column: np.ndarray, primary: bool = False) -> Distinct:
        """Nulls read as ""; `primary`: each value's first credited artist (tracks.primary_artist's)."""
        column = np.asarray(column, dtype=object)
        if len(column) <= _SMALL:
            codes, values = _factorize_small(column)
        else:
            codes, uniques = pd.factorize(column)
            values = [str(v) for v in uniques]
            if (codes < 0).any():
                codes = np.where(codes < 0, len(values), codes)
                values.append("")
        if primary:
            values = [v.split(ARTIST_SEPARATOR, 1)[0].strip() for v in values]
        return cls(codes, values)

    def each(self, genre_columns: dict[str, int]) -> np.ndarray:
        """The multi-hot genre rows of the distinct values (genre_multi_hot's, as float64)."""
        hot = np.zeros((len(self.values), len(genre_columns)), dtype="float64")
        for row, value in enumerate(self.values):
            for genre in value.split(GENRE_SEPARATOR):
                if genre in genre_columns:
                    hot[row, genre_columns[genre]] = 1.0
        return hot

    def first_values(self) -> list[str]:
        return [v.split(GENRE_SEPARATOR, 1)[0] for v in self.values]


@dataclass(frozen=True)
class Lookups:
    """What `transform_matrix` reads from a fitted featurizer's state, in positional form."""

    genre_columns: dict[str, int]
    genre_position: dict[str, int]  # 0: unknown genre, as in the ids group
    scale_positions: np.ndarray
    scale_mean: np.ndarray
    scale_std: np.ndarray

    @classmethod
    def of(cls, featurizer: Any) -> Lookups:
        """Of a fitted components.features.TrackFeaturizer."""
        vocabulary = featurizer.genre_vocabulary_
        # getattr: featurizers pickled before scaling existed have no scaler state and never scale.
        scaled = list(getattr(featurizer, "scale_columns_", None) or [])
        names = featurizer.feature_names_out_
        return cls(
            genre_columns={g: k for k, g in enumerate(vocabulary)},
            genre_position={g: k + 1 for k, g in enumerate(vocabulary)},
            scale_positions=np.array([names.index(c) for c in scaled], dtype="int64"),
            scale_mean=featurizer.scale_mean_[scaled].to_numpy(dtype="float64") if scaled else np.empty(0),
            scale_std=featurizer.scale_std_[scaled].to_numpy(dtype="float64") if scaled else np.empty(0),
        )
