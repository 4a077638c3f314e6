"""The training catalog as a scored track sees it: primary and credited artists, album keys, the catalog's
*other* tracks, and the seeded share of training artists encoded as unseen (both regimes). Used by
TrackFeaturizer (components/features.py) and the holdout's album subsets (components/evaluation.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.feature_matrix import Distinct
from components.schema import ARTIST_SEPARATOR


def distinct_tracks(X: pd.DataFrame) -> pd.DataFrame:
    """One row per track_id (rows without an id kept as they are)."""
    if "track_id" not in X.columns:
        return X
    ids = X["track_id"]
    return X[ids.isna().to_numpy() | ~ids.duplicated().to_numpy()]


def primary_artists(artists: pd.Series) -> np.ndarray:
    """tracks.primary_artist's first credited artist per row ("" for none), worked out once per distinct
    value: a featurizer fit on 30,000 rows splits them in milliseconds, not seconds."""
    distinct = Distinct.of(artists.to_numpy(dtype=object), primary=True)
    return np.asarray(distinct.values, dtype=object)[distinct.codes]


def _text(value: object) -> str:
    """A name as text: missing (None, NaN, pd.NA) reads as "", anything else as its str."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else str(value)


def credited_artists(artists: pd.Series | np.ndarray) -> pd.Series:
    """How many artists a track credits (joined by ';'); 0 without any. A plain loop: pandas' string methods
    cost about a millisecond a call, which a one-row request pays per featurizer."""
    counts = []
    for value in np.asarray(artists, dtype=object):
        text = _text(value).strip()
        counts.append(text.count(ARTIST_SEPARATOR) + 1 if text else 0)
    index = artists.index if isinstance(artists, pd.Series) else None
    return pd.Series(counts, index=index, dtype="float64")


def album_key(names: pd.Series | np.ndarray) -> np.ndarray:
    """Album names as compared across the catalog: case-folded, trimmed; no name reads as ""."""
    return np.array([_text(v).strip().casefold() for v in np.asarray(names, dtype=object)], dtype=object)


def masked_artist_rows(artists: pd.Series, share: float, seed: int) -> np.ndarray:
    """The training rows whose primary artist is in a seeded `share` of the distinct artists: encoded as a
    new artist's track would be (TrackFeaturizer `artist_mask_share`)."""
    primaries = pd.Series(primary_artists(artists))
    distinct = np.sort(primaries.unique())
    chosen = np.random.default_rng(seed).random(len(distinct)) < share
    return primaries.isin(set(distinct[chosen])).to_numpy()


def catalog_of_others(X: pd.DataFrame, base: pd.DataFrame, masked: np.ndarray) -> pd.DataFrame:
    """The training rows' catalog counts in `base` as a scored track sees them: the catalog's *other*
    tracks (a scored track is not in the training catalog), and for a `masked` artist's rows, nothing of
    its own artist (a new artist has no track there). A new frame; `base` is left as it is."""
    counted = [c for c in ("artist_frequency", "album_catalog_tracks") if c in base.columns]
    if not counted:
        return base
    base = base.copy()
    if "artist_frequency" in base.columns:
        base["artist_frequency"] = np.where(masked, 0.0, base["artist_frequency"] - 1.0)
    if "album_catalog_tracks" in base.columns:
        albums = album_key(X["album_name"])
        artists = primary_artists(X["artists"])
        tracks = distinct_tracks(X)
        # Distinct tracks of each (album, artist): what a masked artist's rows do not see of their album.
        per_artist = (
            pd.Series(
                1,
                index=pd.MultiIndex.from_arrays(
                    [album_key(tracks["album_name"]), primary_artists(tracks["artists"])]
                ),
            )
            .groupby(level=[0, 1])
            .size()
        )
        same_artist = per_artist.reindex(pd.MultiIndex.from_arrays([albums, artists])).fillna(1).to_numpy()
        others = base["album_catalog_tracks"].to_numpy(dtype="float64") - np.where(masked, same_artist, 1.0)
        base["album_catalog_tracks"] = np.where(albums == "", 0.0, others)
    return base
