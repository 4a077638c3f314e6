"""A library of bad raw inputs, each with the stage that must stop it and the error text the user sees.

Used by the component tests (tests/test_validation.py) and meant for end-to-end flow tests: point TRACKS_CSV
at the file a `BadInput.write` produced and assert that the run stops at `stage` with `expect_in_error` in the
message (or, for the few inputs that must pass, that it is accepted as described).

Every writer derives its file from a *good raw frame* in the upstream layout: first column the unnamed index
(column name ""), then the 20 dataset columns, every cell a string exactly as in the CSV ("" for empty).
`real_good_frame` samples one from the real file; `synthetic_good_frame` builds one without it.
"""

from __future__ import annotations

import gzip
import os
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from components.ingest import IngestError, IngestResult, ingest_csv
from components.params import ValidateParams
from components.schema import COLUMNS, INDEX_COLUMN
from components.validation import DataValidationError, SuiteConfig, ValidationOutcome, validate_tracks
from trackflow.acquire import TRACKS_CSV_ENV, DataAcquisitionError, acquire_dataset

Stage = Literal["fetch", "ingest", "validate"]
REPO_ROOT = Path(__file__).resolve().parents[1]
GENRES_FILE = REPO_ROOT / "configs" / "genres.txt"
SUITE_FILE = REPO_ROOT / "configs" / "expectations" / "tracks.yaml"
# The exception each stage raises when it stops a bad input.
STAGE_ERRORS: dict[str, type[Exception]] = {
    "fetch": DataAcquisitionError,
    "ingest": IngestError,
    "validate": DataValidationError,
}


@dataclass(frozen=True)
class BadInput:
    name: str
    description: str
    # write(good, path) writes the input at `path` (the suffix may be changed to .csv / .csv.gz) and returns
    # the path actually written.
    write: Callable[[pd.DataFrame, Path], Path]
    stage: Stage
    # A substring of the error message the user sees; None when the input must pass.
    expect_in_error: str | None
    outcome: Literal["rejected", "accepted"] = "rejected"
    # For accepted inputs: how many rows end in quarantine, a substring of their reason, summary entries.
    expect_quarantined: int = 0
    expect_in_reason: str | None = None
    expect_summary: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- good frames


def real_data_path() -> Path | None:
    """The real dataset: $TRACKS_CSV, else ../shared/data/spotify_tracks.csv.gz beside the repository."""
    candidates = [os.environ.get(TRACKS_CSV_ENV), REPO_ROOT.parent / "shared/data/spotify_tracks.csv.gz"]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def read_raw_text(path: Path) -> pd.DataFrame:
    """The raw file with every cell as the exact text of the CSV ("" for empty), index column named ""."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    return frame.rename(columns={frame.columns[0]: INDEX_COLUMN})


def real_good_frame(raw_text: pd.DataFrame, n_rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """`n_rows` rows sampled from the real file (any genre), kept in file order."""
    return raw_text.sample(n=n_rows, random_state=seed).sort_index().reset_index(drop=True)


def known_genres() -> list[str]:
    return [line for line in GENRES_FILE.read_text(encoding="utf-8").splitlines() if line]


def synthetic_good_frame(n_rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Plausible rows that pass every rule of the suite, as text in the upstream layout."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list(string.ascii_letters + string.digits))

    def fmt(values: np.ndarray, decimals: int) -> list[str]:
        return [repr(round(float(v), decimals)) for v in values]

    ids = ["".join(rng.choice(alphabet, 22)) for _ in range(n_rows)]
    words = np.array(["Blue", "Night", "River", "Echo", "Gold", "Paper", "Moon", "Static", "Velvet", "Fire"])
    columns: dict[str, list[str]] = {
        INDEX_COLUMN: [str(i) for i in range(n_rows)],
        "track_id": ids,
        "artists": [" ".join(rng.choice(words, 2)) for _ in range(n_rows)],
        "album_name": [" ".join(rng.choice(words, 3)) for _ in range(n_rows)],
        "track_name": [" ".join(rng.choice(words, 2)) for _ in range(n_rows)],
        "popularity": [str(v) for v in rng.integers(0, 101, n_rows)],
        "duration_ms": [str(v) for v in rng.integers(30_000, 600_000, n_rows)],
        "explicit": [str(bool(v)) for v in rng.random(n_rows) < 0.1],
        "danceability": fmt(rng.random(n_rows), 3),
        "energy": fmt(rng.random(n_rows), 3),
        "key": [str(v) for v in rng.integers(-1, 12, n_rows)],
        "loudness": fmt(rng.uniform(-40, 2, n_rows), 3),
        "mode": [str(v) for v in rng.integers(0, 2, n_rows)],
        "speechiness": fmt(rng.random(n_rows), 4),
        "acousticness": fmt(rng.random(n_rows), 3),
        "instrumentalness": fmt(rng.random(n_rows), 5),
        "liveness": fmt(rng.random(n_rows), 4),
        "valence": fmt(rng.random(n_rows), 3),
        "tempo": fmt(rng.uniform(60, 200, n_rows), 3),
        "time_signature": [str(v) for v in rng.choice([3, 4, 5], n_rows)],
        "track_genre": list(rng.choice(known_genres(), n_rows)),
    }
    return pd.DataFrame(columns, columns=[INDEX_COLUMN, *COLUMNS])


# --------------------------------------------------------------------------------------- helpers


def _target(path: Path, suffix: str) -> Path:
    """`path` with its .csv/.gz suffixes replaced by `suffix`."""
    name = path.name
    for old in (".gz", ".csv"):
        name = name.removesuffix(old)
    return path.with_name(name + suffix)


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    target = _target(path, ".csv")
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(target, index=False, lineterminator="\n")
    return target


def _rows(frame: pd.DataFrame, share: float | None = None, count: int | None = None) -> pd.Index:
    """Evenly spread row labels: `share` of the rows, or `count` rows."""
    n = max(1, round(len(frame) * share)) if share is not None else int(count or 0)
    return frame.index[np.linspace(0, len(frame) - 1, n).round().astype(int)]


def _csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def _set(column: str, value: str | Callable[[pd.Series], pd.Series], share: float) -> Callable:
    """A writer that puts `value` (or value(old cells)) into `column` in `share` of the rows."""

    def write(good: pd.DataFrame, path: Path) -> Path:
        bad = good.copy()
        rows = _rows(bad, share)
        bad.loc[rows, column] = value(bad.loc[rows, column]) if callable(value) else value
        return _write_csv(bad, path)

    return write


# --------------------------------------------------------------------------------------- writers


def _missing_column(good: pd.DataFrame, path: Path) -> Path:
    return _write_csv(good.drop(columns=["energy"]), path)


def _extra_column(good: pd.DataFrame, path: Path) -> Path:
    return _write_csv(good.assign(notes="n/a"), path)


def _renamed_column(good: pd.DataFrame, path: Path) -> Path:
    return _write_csv(good.rename(columns={"valence": "Valence"}), path)


def _reordered_columns(good: pd.DataFrame, path: Path) -> Path:
    # The index column stays first, as upstream; the 20 named columns are reversed.
    return _write_csv(good[[INDEX_COLUMN, *reversed(COLUMNS)]], path)


def _empty_file(good: pd.DataFrame, path: Path) -> Path:
    target = _target(path, ".csv")
    target.write_bytes(b"")
    return target


def _header_only(good: pd.DataFrame, path: Path) -> Path:
    return _write_csv(good.iloc[0:0], path)


def _too_few_rows(good: pd.DataFrame, path: Path) -> Path:
    return _write_csv(good.head(500), path)


def _truncated_gz(good: pd.DataFrame, path: Path) -> Path:
    target = _target(path, ".csv.gz")
    data = gzip.compress(_csv_text(good).encode("utf-8"), mtime=0)
    target.write_bytes(data[: len(data) // 2])  # a download cut off halfway
    return target


def _not_utf8(good: pd.DataFrame, path: Path) -> Path:
    # One artist written in Latin-1 (a file re-saved by a legacy tool): b"Caf\xe9" is not UTF-8.
    bad = good.copy()
    bad.loc[bad.index[len(bad) // 2], "artists"] = "Caf\x00 Tacvba"
    target = _target(path, ".csv")
    target.write_bytes(_csv_text(bad).encode("utf-8").replace(b"\x00", b"\xe9"))
    return target


def _repeated_header(good: pd.DataFrame, path: Path) -> Path:
    # Two exports concatenated with `cat`: the second one's header line ends up in the data.
    half = len(good) // 2
    second_header = _csv_text(good.iloc[half:])
    text = _csv_text(good.iloc[:half]) + second_header
    target = _target(path, ".csv")
    target.write_text(text, encoding="utf-8")
    return target


def _half_duplicated(good: pd.DataFrame, path: Path) -> Path:
    half = len(good) // 2
    bad = pd.concat([good.iloc[:half], good.iloc[:half]], ignore_index=True)
    bad[INDEX_COLUMN] = [str(i) for i in range(len(bad))]  # a fresh index, as a re-export would write
    return _write_csv(bad, path)


def _out_of_range(good: pd.DataFrame, path: Path) -> Path:
    bad = good.copy()
    bad.loc[_rows(bad, 0.10), "danceability"] = "1.7"
    bad.loc[_rows(bad.iloc[1:], 0.05), "key"] = "12"
    return _write_csv(bad, path)


def _few_bad_rows(good: pd.DataFrame, path: Path) -> Path:
    # 5 bad rows in >= 1,000 is at most 0.5%: under the default 1% tolerance.
    bad = good.copy()
    rows = _rows(bad, count=5)
    bad.loc[rows[:2], "popularity"] = "150"
    bad.loc[rows[2:4], "track_id"] = "not-a-track-id"
    bad.loc[rows[4], "danceability"] = ""
    return _write_csv(bad, path)


def _negate(cells: pd.Series) -> pd.Series:
    return "-" + cells


BAD_INPUTS: dict[str, BadInput] = {
    case.name: case
    for case in [
        BadInput(
            "missing_column",
            "the energy column is absent",
            _missing_column,
            "validate",
            "missing column(s): energy",
        ),
        BadInput(
            "extra_column",
            "an unknown column `notes` is added",
            _extra_column,
            "validate",
            "unexpected column(s): notes",
        ),
        BadInput(
            "renamed_column",
            "valence is spelled Valence",
            _renamed_column,
            "validate",
            "'Valence' looks like 'valence' renamed",
        ),
        BadInput(
            "reordered_columns",
            "the 20 columns in reverse order: columns are matched by name, so this passes",
            _reordered_columns,
            "validate",
            None,
            outcome="accepted",
            expect_summary={"columns_reordered": True, "rows_quarantined": 0},
        ),
        BadInput(
            "string_in_numeric_column",
            "tempo holds the text 'fast' in 20% of the rows",
            _set("tempo", "fast", 0.20),
            "validate",
            "tempo: 'fast' is not a number",
        ),
        BadInput(
            "values_out_of_range",
            "danceability 1.7 in 10% of the rows, key 12 in 5%",
            _out_of_range,
            "validate",
            "expect_column_values_to_be_between(danceability)",
        ),
        BadInput(
            "flood_of_nans",
            "energy is empty in half of the rows",
            _set("energy", "", 0.50),
            "validate",
            "expect_column_values_to_not_be_null(energy)",
        ),
        BadInput("empty_file", "a zero-byte file", _empty_file, "ingest", "the file is empty"),
        BadInput(
            "header_only",
            "the header line and no data",
            _header_only,
            "validate",
            "expect_table_row_count_to_be_between: 0 row(s)",
        ),
        BadInput(
            "too_few_rows",
            "500 rows, under validate.min_rows",
            _too_few_rows,
            "validate",
            "expect_table_row_count_to_be_between: 500 row(s)",
        ),
        BadInput(
            "truncated_gz",
            "a .csv.gz cut off halfway",
            _truncated_gz,
            "fetch",
            "the gzip file is corrupt or truncated",
        ),
        BadInput(
            "not_utf8",
            "one artist name encoded in Latin-1",
            _not_utf8,
            "ingest",
            "not valid UTF-8",
        ),
        BadInput(
            "repeated_header",
            "two CSV exports concatenated: the header line reappears mid-file",
            _repeated_header,
            "validate",
            "repeated_header_rows: 1 data row(s) repeat the header",
        ),
        BadInput(
            "unknown_genre",
            "track_genre 'vaporwave' (not in configs/genres.txt) in 10% of the rows",
            _set("track_genre", "vaporwave", 0.10),
            "validate",
            "expect_column_values_to_be_in_set(track_genre)",
        ),
        BadInput(
            "negative_durations",
            "duration_ms negated in 10% of the rows",
            _set("duration_ms", _negate, 0.10),
            "validate",
            "expect_column_values_to_be_between(duration_ms)",
        ),
        BadInput(
            "half_rows_duplicated",
            "the second half of the file repeats the first half",
            _half_duplicated,
            "validate",
            "duplicate_row_share",
        ),
        BadInput(
            "few_bad_rows_under_tolerance",
            "5 bad rows (popularity 150, bad track ids, an empty danceability): quarantined, batch passes",
            _few_bad_rows,
            "validate",
            None,
            outcome="accepted",
            expect_quarantined=5,
            expect_in_reason="popularity=150 outside [0, 100]",
        ),
        BadInput(
            "bad_rows_over_tolerance",
            "popularity 150 in 3% of the rows: above the 1% row_failure_tolerance",
            _set("popularity", "150", 0.03),
            "validate",
            "above row_failure_tolerance=0.01",
        ),
    ]
}


def run_through_gate(
    source: Path, workdir: Path, suite: SuiteConfig, params: ValidateParams
) -> tuple[IngestResult, ValidationOutcome]:
    """fetch (a local file, as with TRACKS_CSV) -> ingest -> validate; raises the stopping stage's error."""
    acquired = acquire_dataset(
        workdir / "raw" / "dataset.csv", local_source=source, url="http://unused.invalid/dataset.csv"
    )
    ingested = ingest_csv(acquired.path)
    outcome = validate_tracks(ingested.frame, suite, params, columns_in_file=ingested.columns_in_file)
    return ingested, outcome


def assert_stopped_where_expected(
    case: BadInput, good_raw: pd.DataFrame, suite: SuiteConfig, params: ValidateParams, tmp_path: Path
) -> None:
    """Write `case` from `good_raw` and run it through fetch, ingest and the gate: a rejected input stops at
    its stage with its error text, an accepted one passes with the rows and reasons it describes."""
    import pytest

    from components.validation import QUARANTINE_REASON

    source = case.write(good_raw, tmp_path / f"{case.name}.csv")
    if case.outcome == "rejected":
        with pytest.raises(Exception) as caught:
            run_through_gate(source, tmp_path / "work", suite, params)
        assert type(caught.value) is STAGE_ERRORS[case.stage], f"{case.name}: stopped by {caught.value!r}"
        assert case.expect_in_error in str(caught.value)
        if case.stage == "validate":
            failures = caught.value.failures
            assert any(f.level == "batch" for f in failures)
            assert all(f.message and f.message in str(caught.value) for f in failures)
        return

    ingested, outcome = run_through_gate(source, tmp_path / "work", suite, params)
    summary = outcome.summary
    assert summary["rows_in"] == ingested.rows == len(good_raw)
    assert summary["rows_valid"] + summary["rows_quarantined"] == summary["rows_in"]
    assert summary["rows_quarantined"] == case.expect_quarantined == len(outcome.quarantined)
    for key, value in case.expect_summary.items():
        assert summary[key] == value, key
    if case.expect_in_reason:
        assert outcome.quarantined[QUARANTINE_REASON].str.contains(case.expect_in_reason, regex=False).any()
