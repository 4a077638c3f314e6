"""Ingest (index column dropped, types, unparseable cells), the per-track table and the grouped splits, on
rows the tests write."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.ingest import INGEST_ERRORS, IngestError, ingest_csv
from components.split import make_splits, split_frames
from components.tracks import collapse_to_tracks, genre_sets

HEADER = (
    ",track_id,artists,album_name,track_name,popularity,duration_ms,explicit,danceability,energy,key,loudness,"
    "mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,time_signature,track_genre"
)


def row(i: int, track: str, genre: str, popularity: int = 50, artist: str = "A") -> str:
    audio = "0.5,0.6,5,-7.0,1,0.05,0.2,0.0,0.1,0.4,120.0,4"
    return f"{i},{track},{artist},Album,Song,{popularity},200000,False,{audio},{genre}"


def write(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "raw.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_index_column_is_dropped_and_types_enforced(tmp_path: Path) -> None:
    result = ingest_csv(write(tmp_path, row(0, "t" * 22, "pop"), row(1, "u" * 22, "rock")))
    assert "" not in result.frame.columns and "Unnamed: 0" not in result.frame.columns
    assert result.frame["popularity"].dtype == "Int64"
    assert result.frame["explicit"].dtype == "boolean"
    assert result.frame["source_row"].tolist() == [2, 3]
    assert result.frame[INGEST_ERRORS].isna().all()


def test_unparseable_cell_becomes_null_with_reason(tmp_path: Path) -> None:
    bad = row(1, "u" * 22, "rock").replace(",120.0,", ",fast,")
    result = ingest_csv(write(tmp_path, row(0, "t" * 22, "pop"), bad))
    assert result.unparseable_values == {"tempo": 1}
    assert pd.isna(result.frame.loc[1, "tempo"])
    assert "tempo: 'fast' is not a number" in result.frame.loc[1, INGEST_ERRORS]


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(IngestError, match="empty"):
        ingest_csv(path)


def test_content_hash_ignores_file_formatting(tmp_path: Path) -> None:
    a = ingest_csv(write(tmp_path, row(0, "t" * 22, "pop")))
    (tmp_path / "b").mkdir()
    b = ingest_csv(write(tmp_path / "b", row(0, "t" * 22, "pop").replace("-7.0", "-7.00")))
    assert a.content_hash == b.content_hash


def test_collapse_rules(tmp_path: Path) -> None:
    rows = [
        row(0, "a" * 22, "pop", 40),
        row(1, "a" * 22, "pop", 40),  # exact duplicate (but for the index)
        row(2, "a" * 22, "dance", 60),  # same track, other genre, other popularity
        row(3, "b" * 22, "rock", 10),
        row(4, "c" * 22, "k-pop", 0, artist=""),  # the documented empty-artist row
    ]
    listings = ingest_csv(write(tmp_path, *rows)).frame.drop(columns=["source_row", INGEST_ERRORS])
    tracks, report = collapse_to_tracks(listings, "median")
    assert report.exact_duplicates_dropped == 1
    assert report.rows_without_artist_dropped == 1
    assert report.tracks_out == 2
    assert report.tracks_with_conflicting_popularity == 1
    a = tracks.set_index("track_id").loc["a" * 22]
    assert a["track_genre"] == "dance|pop"
    assert a["popularity"] == 50.0  # median of the two distinct listings (40, 60)
    assert genre_sets(tracks["track_genre"]).tolist() == [{"dance", "pop"}, {"rock"}]
    assert listings.shape[0] == 5  # input not mutated


def _tracks(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"track_id": [f"t{i:05d}" for i in range(n)], "primary_artist": [f"artist{i // 3}" for i in range(n)]}
    )


def test_split_groups_never_straddle_and_are_seeded() -> None:
    tracks = _tracks(3000)
    splits = make_splits(tracks, test_size=0.2, seed=1)
    for protocol, column in (("artist", "primary_artist"), ("track", "track_id")):
        train, test = split_frames(tracks, splits, protocol)
        assert not set(train[column]) & set(test[column])
        assert 0.15 < len(test) / len(tracks) < 0.25
    assert splits.equals(make_splits(tracks, test_size=0.2, seed=1))
    assert not splits["split_artist"].equals(make_splits(tracks, test_size=0.2, seed=2)["split_artist"])


def test_adding_tracks_does_not_reshuffle_existing_ones() -> None:
    small = make_splits(_tracks(1000), 0.2, seed=3)
    large = make_splits(_tracks(2000), 0.2, seed=3).head(1000)
    assert small["split_artist"].equals(large["split_artist"])
