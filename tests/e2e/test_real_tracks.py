"""The real dataset's per-track table: its traps (the index column, repeated tracks, duplicates) handled."""

from __future__ import annotations

from pathlib import Path

from components.ingest import INGEST_ERRORS, ingest_csv
from components.tracks import collapse_to_tracks


def test_real_data_per_track_table(real_csv: Path, tmp_path: Path) -> None:
    import gzip
    import shutil

    raw = tmp_path / "dataset.csv"
    with gzip.open(real_csv) as src, raw.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    ingested = ingest_csv(raw)
    assert ingested.rows == 114_000
    tracks, report = collapse_to_tracks(ingested.frame.drop(columns=["source_row", INGEST_ERRORS]))
    assert report.exact_duplicates_dropped == 450
    assert report.rows_without_artist_dropped == 1
    assert report.tracks_out == 89_740  # 89,741 ids less the empty-artist row's
    assert tracks["track_id"].is_unique
