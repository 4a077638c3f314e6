"""One row per track: the 114,000 listing rows hold 89,741 distinct track_ids, one per (track, genre)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from components.schema import ARTIST_SEPARATOR, AUDIO_FEATURES, GENRE_SEPARATOR

LABEL_BATCH = "label_batch"  # components/labels.py merges labelled rows in with this column

# Columns that are identical across the copies of one track in the real data (checked: 0 conflicts);
# `first` is exact for them. Popularity differs for 720 tracks and is reconciled explicitly.
_PER_TRACK_FIRST = ("artists", "album_name", "track_name", "duration_ms", "explicit", *AUDIO_FEATURES)


@dataclass(frozen=True)
class CollapseReport:
    rows_in: int
    exact_duplicates_dropped: int
    rows_without_artist_dropped: int
    tracks_out: int
    tracks_with_several_genres: int
    tracks_with_conflicting_popularity: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def primary_artist(artists: pd.Series) -> pd.Series:
    """The first credited artist; `artists` lists several joined by ';'."""
    return artists.astype("string").str.split(ARTIST_SEPARATOR, n=1).str[0].str.strip()


def collapse_to_tracks(
    listings: pd.DataFrame, popularity_reconcile: Literal["median", "max", "mean"] = "median"
) -> tuple[pd.DataFrame, CollapseReport]:
    """Collapse genre listings into one row per track_id.

    Rules: exact duplicate rows are dropped; rows without an artist are dropped (they cannot be grouped
    for the artist holdout); a track's genres become the sorted set joined by '|' in `track_genre`;
    popularity, which differs between copies for a few tracks, is reconciled with `popularity_reconcile`.
    """
    rows_in = len(listings)
    deduplicated = listings.drop_duplicates()
    exact_duplicates = rows_in - len(deduplicated)
    has_artist = deduplicated["artists"].notna() & (deduplicated["artists"].str.strip() != "")
    kept = deduplicated[has_artist]

    grouped = kept.groupby("track_id", sort=True)
    tracks = grouped[list(_PER_TRACK_FIRST)].first()
    genre_sets = grouped["track_genre"].agg(lambda g: GENRE_SEPARATOR.join(sorted(set(g))))
    tracks.insert(0, "track_genre", genre_sets)
    n_genres = grouped["track_genre"].nunique()
    if "popularity" in kept.columns:
        popularity = grouped["popularity"].agg(popularity_reconcile).astype("float64")
        conflicting = int((grouped["popularity"].nunique() > 1).sum())
        tracks.insert(0, "popularity", popularity)
    else:
        conflicting = 0
    if LABEL_BATCH in kept.columns:
        # Which labelled batch a track's row came from (null: the dataset's own): labelled rows always train.
        tracks[LABEL_BATCH] = grouped[LABEL_BATCH].first()
    tracks = tracks.reset_index()
    tracks["primary_artist"] = primary_artist(tracks["artists"])
    report = CollapseReport(
        rows_in=rows_in,
        exact_duplicates_dropped=exact_duplicates,
        rows_without_artist_dropped=int((~has_artist).sum()),
        tracks_out=len(tracks),
        tracks_with_several_genres=int((n_genres > 1).sum()),
        tracks_with_conflicting_popularity=conflicting,
    )
    return tracks, report


def genre_sets(track_genre: pd.Series) -> pd.Series:
    """Split the '|'-joined genre column into Python sets (a single raw genre gives a one-element set)."""
    return track_genre.fillna("").astype(str).map(lambda s: set(filter(None, s.split(GENRE_SEPARATOR))))
