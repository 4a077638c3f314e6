"""The discovery space: the continuous audio features, imputed like the predictive models do and standardised.

Key, mode and time signature stay out of the distance on purpose: they are categorical (key is a circle, not a
line), and once standardised their unit steps would outweigh small differences in the perceptual features.
Playlist ordering uses key and mode explicitly instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from components.discovery import DiscoveryInputError
from components.features import TrackFeaturizer
from components.schema import ARTIST_SEPARATOR, AUDIO_FEATURES, AUDIO_SPACE_FEATURES, GENRE_SEPARATOR

SPACE_FEATURES: tuple[str, ...] = AUDIO_SPACE_FEATURES
# What the audio group of TrackFeaturizer can produce: the choices for `discovery.features`.
AVAILABLE_FEATURES: tuple[str, ...] = (*AUDIO_FEATURES, "explicit", "log_duration")
# Raw columns a query row needs (missing values are imputed; missing columns are an error).
REQUIRED_COLUMNS: tuple[str, ...] = (*AUDIO_FEATURES, "duration_ms", "explicit")


def raw_columns(features: Sequence[str]) -> list[str]:
    """The dataset columns behind the space's features (log_duration comes from duration_ms)."""
    return ["duration_ms" if f == "log_duration" else f for f in features]


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DiscoveryInputError(f"{what} is missing columns {missing}")


def song_key(frame: pd.DataFrame) -> pd.Series:
    """One key per song: lower-cased, whitespace-collapsed track name + artists. The dataset lists the same
    song under several track_ids (album, single, compilation releases); those share a key."""
    require_columns(frame, ("track_name", "artists"), "rows for song keys")

    def norm(column: pd.Series) -> pd.Series:
        return column.astype("string").fillna("").str.lower().str.strip().str.replace(r"\s+", " ", regex=True)

    return norm(frame["track_name"]) + "||" + norm(frame["artists"])


def audio_fingerprint(frame: pd.DataFrame) -> pd.Series:
    """A hash of the primary artist, every audio value and the duration: the same master released twice (a
    single and its album, "Song" and "Song (From 'Film')") has identical values. Rows lacking a value get
    no key (<NA>)."""
    require_columns(frame, (*AUDIO_FEATURES, "duration_ms", "artists"), "rows for audio fingerprints")
    values = frame[[*AUDIO_FEATURES, "duration_ms"]].astype("float64").round(6)
    artist = frame["artists"].astype("string").fillna("").str.split(ARTIST_SEPARATOR).str[0].str.strip()
    parts = values.assign(_artist=artist.str.lower().astype(object))
    hashed = pd.Series(pd.util.hash_pandas_object(parts, index=False).to_numpy(), index=frame.index)
    return hashed.astype("UInt64").where(values.notna().all(axis=1) & (artist != ""), pd.NA)


def copy_groups(frame: pd.DataFrame) -> np.ndarray:
    """One group id per row: rows are copies when they share a song key or an audio fingerprint (the two
    relations joined transitively, as connected components)."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    n = len(frame)
    rows, cols = [], []
    for key in (song_key(frame), audio_fingerprint(frame)):
        codes = pd.factorize(key, use_na_sentinel=True)[0]
        positions = np.flatnonzero(codes >= 0)
        # Link every row to the first row with the same key: enough for connected components.
        first = pd.Series(positions).groupby(codes[positions]).transform("first").to_numpy()
        rows.append(positions)
        cols.append(first)
    graph = sparse.coo_matrix(
        (np.ones(sum(len(r) for r in rows)), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    return connected_components(graph, directed=False)[1].astype("int64")


def split_set(column: pd.Series, separator: str) -> list[frozenset[str]]:
    """'a|b' -> {'a', 'b'} per row (empty set for missing), for genre and artist agreement."""
    return [
        frozenset(p.strip() for p in str(v).split(separator) if p.strip())
        if isinstance(v, str)
        else frozenset()
        for v in column.astype("object").where(column.notna(), None)
    ]


def genre_sets(frame: pd.DataFrame) -> list[frozenset[str]]:
    if "track_genre" not in frame.columns:
        return [frozenset()] * len(frame)
    return split_set(frame["track_genre"], GENRE_SEPARATOR)


def artist_sets(frame: pd.DataFrame) -> list[frozenset[str]]:
    if "artists" not in frame.columns:
        return [frozenset()] * len(frame)
    return split_set(frame["artists"], ARTIST_SEPARATOR)


class AudioSpace(TransformerMixin, BaseEstimator):
    """Raw track rows -> the standardised audio features (float64 matrix, one column per `features`).

    Missing values take the training median of the track's genre (TrackFeaturizer's imputation), or the
    global training median when the genre is unknown, as for an audio file.
    """

    def __init__(self, features: Sequence[str] = SPACE_FEATURES):
        self.features = features

    def fit(self, X: pd.DataFrame, y: object = None) -> AudioSpace:
        unknown = sorted(set(self.features) - set(AVAILABLE_FEATURES))
        if unknown or not self.features:
            raise DiscoveryInputError(
                f"unknown discovery features {unknown}; choose from {list(AVAILABLE_FEATURES)}"
            )
        require_columns(X, (*REQUIRED_COLUMNS, "artists"), "training rows")
        if len(X) < 2:
            raise DiscoveryInputError("the audio space needs at least 2 training rows")
        self.featurizer_ = TrackFeaturizer(groups=("audio",)).fit(X)
        raw = self.raw_features(X)
        self.mean_ = raw.mean().to_numpy("float64")
        self.scale_ = raw.std().replace(0.0, 1.0).fillna(1.0).to_numpy("float64")
        self.train_quantiles_ = raw.quantile([0.0, 0.25, 0.5, 0.75, 1.0])
        return self

    def raw_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """The imputed, unscaled features (original units; duration as log seconds), indexed like X."""
        check_is_fitted(self, "featurizer_")
        require_columns(X, REQUIRED_COLUMNS, "track rows")
        features = self.featurizer_.transform(X)[list(self.features)]
        features.index = X.index
        return features

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        raw = self.raw_features(X).to_numpy("float64")
        return (raw - self.mean_) / self.scale_

    def inverse_transform(self, Z: np.ndarray) -> pd.DataFrame:
        check_is_fitted(self, "mean_")
        return pd.DataFrame(np.asarray(Z) * self.scale_ + self.mean_, columns=list(self.features))

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        return np.asarray(self.features, dtype=object)
