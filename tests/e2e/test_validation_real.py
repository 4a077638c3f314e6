"""The gate on the real dataset: the file passes whole, its genres are the suite's, and the bad-input
library built from real rows is stopped where it must be."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from components.ingest import IngestResult, ingest_csv
from components.schema import COLUMNS
from components.validation import (
    SuiteConfig,
    validate_tracks,
)
from tests.bad_inputs import (
    BAD_INPUTS,
    GENRES_FILE,
    SUITE_FILE,
    BadInput,
    assert_stopped_where_expected,
    read_raw_text,
    real_data_path,
    real_good_frame,
)
from tests.conftest import repo_params
from trackflow.config import load_suite

PARAMS = repo_params().validation


REAL_ROWS = 114_000


EMPTY_ROW_TRACK = "1kR4gIb7nGxHPI3D2ifs59"  # the one row with empty artists/album_name/track_name


@pytest.fixture(scope="module")
def suite() -> SuiteConfig:
    return load_suite(SUITE_FILE)


@pytest.fixture(scope="session")
def real_path() -> Path:
    path = real_data_path()
    if path is None:
        pytest.skip(
            "real dataset not found: set TRACKS_CSV or place it at ../shared/data/spotify_tracks.csv.gz"
        )
    return path


@pytest.fixture(scope="session")
def real_text(real_path: Path) -> pd.DataFrame:
    return read_raw_text(real_path)


@pytest.fixture(scope="session")
def real_ingested(real_path: Path) -> IngestResult:
    return ingest_csv(real_path)


def test_genres_file_matches_the_real_data(real_text: pd.DataFrame) -> None:
    assert GENRES_FILE.read_text(encoding="utf-8").splitlines() == sorted(real_text["track_genre"].unique())


def test_the_real_dataset_passes_whole(real_ingested: IngestResult, suite: SuiteConfig) -> None:
    outcome = validate_tracks(
        real_ingested.frame, suite, PARAMS, columns_in_file=real_ingested.columns_in_file
    )
    summary = outcome.summary
    assert summary["rows_in"] == summary["rows_valid"] == REAL_ROWS
    assert summary["rows_quarantined"] == 0 and outcome.quarantined.empty
    assert outcome.failures == []
    assert summary["expectations_failed"] == 0 and summary["expectations_evaluated"] >= 50
    assert summary["columns_reordered"] is False
    # Duplicates are reported, not removed: the feature stage collapses them.
    assert summary["duplicate_rows"] == 450
    assert summary["repeated_track_id_rows"] == REAL_ROWS - 89_741
    assert len(outcome.valid) == REAL_ROWS
    assert list(outcome.valid.columns) == list(COLUMNS)
    empty = outcome.valid[outcome.valid["track_id"] == EMPTY_ROW_TRACK]
    assert len(empty) == 1 and empty[["artists", "album_name", "track_name"]].isna().all(axis=None)
    json.dumps(summary)


@pytest.fixture(scope="module")
def real_good_raw(real_text: pd.DataFrame) -> pd.DataFrame:
    """2,000 good raw rows sampled from the real file."""
    return real_good_frame(real_text, 2000, seed=0)


@pytest.mark.parametrize("case", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_built_from_real_rows_is_stopped_where_expected(
    case: BadInput, real_good_raw: pd.DataFrame, suite: SuiteConfig, tmp_path: Path
) -> None:
    assert_stopped_where_expected(case, real_good_raw, suite, PARAMS, tmp_path)
