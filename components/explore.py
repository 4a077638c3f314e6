"""What the explorer shows, without Streamlit: genre profiles and overlaps, an artist's tracks and the artists
nearest to them in the discovery space. Pure functions on frames and the similarity index; nothing is read
or written here."""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from components.schema import AUDIO_SPACE_FEATURES, GENRE, GENRE_SEPARATOR, TARGET
from components.tracks import primary_artist

PROFILE_FEATURES: tuple[str, ...] = tuple(
    f for f in AUDIO_SPACE_FEATURES if f not in ("tempo", "loudness", "log_duration")
)


def genre_profiles(tracks: pd.DataFrame) -> pd.DataFrame:
    """Per genre: tracks, mean and median popularity, share of hits-like tracks (popularity >= 60) and the
    mean of each 0-1 audio feature, most popular genre first. A track of several genres counts in each."""
    listed = tracks.assign(_genre=tracks[GENRE].astype(str).str.split(GENRE_SEPARATOR)).explode("_genre")
    grouped = listed.groupby("_genre")
    profile = pd.DataFrame(
        {
            "tracks": grouped.size(),
            "mean_popularity": grouped[TARGET].mean(),
            "median_popularity": grouped[TARGET].median(),
            **{feature: grouped[feature].mean() for feature in PROFILE_FEATURES if feature in tracks},
        }
    )
    profile.index.name = "genre"
    return profile.sort_values("mean_popularity", ascending=False).round(3)


def genre_overlaps(tracks: pd.DataFrame, top: int = 20) -> pd.DataFrame:
    """The genre pairs most often listed for the same track, with how many tracks share them."""
    pairs: Counter[tuple[str, str]] = Counter()
    for genres in tracks[GENRE].astype(str):
        names = sorted(set(genres.split(GENRE_SEPARATOR)))
        pairs.update(combinations(names, 2))
    rows = [{"genre_a": a, "genre_b": b, "shared_tracks": n} for (a, b), n in pairs.most_common(top)]
    return pd.DataFrame(rows, columns=["genre_a", "genre_b", "shared_tracks"])


def artist_tracks(catalog: pd.DataFrame, artist: str) -> pd.DataFrame:
    """The catalogue's tracks whose primary artist is `artist`, most popular first."""
    rows = catalog[primary_artist(catalog["artists"]) == artist]
    columns = [c for c in ("track_id", "track_name", "album_name", GENRE, TARGET) if c in rows]
    return rows[columns].sort_values(TARGET, ascending=False).reset_index(drop=True)


def similar_artists(index: Any, artist: str, k: int = 10, min_tracks: int = 1) -> pd.DataFrame:
    """The artists whose centroid (the mean of their tracks' vectors in the discovery space) is nearest to
    `artist`'s, leaving out artists with fewer than `min_tracks` tracks. KeyError for an unknown artist."""
    artists = primary_artist(index.catalog_["artists"]).astype(str).to_numpy()
    names, inverse, counts = np.unique(artists, return_inverse=True, return_counts=True)
    if artist not in set(names):
        raise KeyError(f"no track of artist {artist!r} in the catalogue")
    sums = np.zeros((len(names), index.vectors_.shape[1]))
    np.add.at(sums, inverse, index.vectors_)
    centroids = sums / counts[:, None]
    own = int(np.flatnonzero(names == artist)[0])
    distances = np.linalg.norm(centroids - centroids[own], axis=1)
    eligible = (counts >= min_tracks) & (np.arange(len(names)) != own)
    order = np.argsort(np.where(eligible, distances, np.inf), kind="stable")[:k]
    order = order[np.isfinite(distances[order]) & eligible[order]]
    return pd.DataFrame(
        {"artist": names[order], "tracks": counts[order], "distance": distances[order].round(4)}
    )
