"""Component tests of the validation gate (components/validation) and its suite (configs/expectations), on
synthetic raw rows: every bad input of tests/bad_inputs.py is stopped where it must be."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.ingest import INGEST_ERRORS, IngestResult, ingest_csv
from components.schema import COLUMNS, LABEL_COLUMNS, ROW_NUMBER
from components.validation import (
    QUARANTINE_REASON,
    DataValidationError,
    SuiteConfig,
    SuiteConfigError,
    validate_tracks,
)
from tests.bad_inputs import (
    BAD_INPUTS,
    GENRES_FILE,
    SUITE_FILE,
    assert_stopped_where_expected,
    run_through_gate,
    synthetic_good_frame,
)
from tests.conftest import repo_params
from trackflow.config import load_suite

PARAMS = repo_params().validation


@pytest.fixture(scope="module")
def suite() -> SuiteConfig:
    return load_suite(SUITE_FILE)


@pytest.fixture(scope="module")
def scoring_suite() -> SuiteConfig:
    return load_suite(SUITE_FILE, for_scoring=True)


@pytest.fixture(scope="module")
def good_raw() -> pd.DataFrame:
    """2,000 good synthetic raw rows (tests/e2e/test_validation_real.py runs the library on real ones)."""
    return synthetic_good_frame(2000, seed=0)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> IngestResult:
    """2,000 valid synthetic rows through ingest: the typed frame the gate receives."""
    path = tmp_path_factory.mktemp("good") / "good.csv"
    synthetic_good_frame(2000, seed=1).to_csv(path, index=False)
    return ingest_csv(path)


@pytest.fixture
def frame(ingested: IngestResult) -> pd.DataFrame:
    return ingested.frame.copy()


def test_suite_covers_the_raw_schema(suite: SuiteConfig) -> None:
    assert suite.required_columns == COLUMNS
    assert [c.name for c in suite.columns if c.nullable] == ["artists", "album_name", "track_name"]
    genre_rule = next(r for r in suite.row_rules if r.column == "track_genre")
    assert len(genre_rule.kwargs["value_set"]) == 114
    ranges = {
        r.column: (r.kwargs["min_value"], r.kwargs["max_value"])
        for r in suite.row_rules
        if r.expectation == "expect_column_values_to_be_between"
    }
    assert ranges["popularity"] == (0, 100)
    assert ranges["key"] == (-1, 11)
    assert ranges["time_signature"] == (0, 7)
    assert ranges["tempo"] == (0, 250)
    assert all(ranges[c] == (0, 1) for c in ("danceability", "energy", "valence", "liveness"))


def test_genres_file_is_sorted_unique_and_complete() -> None:
    genres = GENRES_FILE.read_text(encoding="utf-8").splitlines()
    assert len(genres) == 114
    assert genres == sorted(set(genres))
    assert {"acoustic", "k-pop", "world-music"} <= set(genres)


def test_scoring_suite_drops_the_labels(scoring_suite: SuiteConfig) -> None:
    assert scoring_suite.for_scoring
    assert set(scoring_suite.required_columns) == set(COLUMNS) - set(LABEL_COLUMNS)
    assert scoring_suite.optional_columns == LABEL_COLUMNS
    assert not [r for r in scoring_suite.row_rules if r.column in LABEL_COLUMNS]


def _suite_copy(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(SUITE_FILE.read_text(encoding="utf-8"))
    edit(raw)
    (tmp_path / "expectations").mkdir()
    (tmp_path / "genres.txt").write_text(GENRES_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "expectations" / "tracks.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_load_suite_rejects_a_suite_that_disagrees_with_the_schema(tmp_path: Path) -> None:
    path = _suite_copy(tmp_path, lambda raw: raw["columns"]["tempo"].update(type="integer"))
    with pytest.raises(SuiteConfigError, match=r"disagree with components\.schema\.RAW_SCHEMA"):
        load_suite(path)


def test_load_suite_rejects_unknown_checks_and_bad_param_refs(tmp_path: Path) -> None:
    path = _suite_copy(tmp_path, lambda raw: raw["table"].append({"check": "expect_magic"}))
    with pytest.raises(SuiteConfigError, match="unknown table check 'expect_magic'"):
        load_suite(path)
    other = tmp_path / "other"
    other.mkdir()
    path = _suite_copy(other, lambda raw: raw["table"][2].update(min_value={"param": "min_row"}))
    with pytest.raises(SuiteConfigError, match="min_value"):
        load_suite(path)


def test_bad_input_library_covers_every_required_kind() -> None:
    required = {
        "missing_column",
        "extra_column",
        "renamed_column",
        "reordered_columns",
        "string_in_numeric_column",
        "values_out_of_range",
        "flood_of_nans",
        "empty_file",
        "header_only",
        "truncated_gz",
        "not_utf8",
        "repeated_header",
        "unknown_genre",
        "negative_durations",
        "half_rows_duplicated",
        "few_bad_rows_under_tolerance",
        "bad_rows_over_tolerance",
    }
    assert required <= set(BAD_INPUTS)
    for case in BAD_INPUTS.values():
        assert (case.outcome == "rejected") == (case.expect_in_error is not None), case.name
    assert BAD_INPUTS["reordered_columns"].outcome == "accepted"
    assert BAD_INPUTS["few_bad_rows_under_tolerance"].outcome == "accepted"


def test_synthetic_good_frame_passes_the_gate(suite: SuiteConfig, tmp_path: Path) -> None:
    source = tmp_path / "good.csv"
    synthetic_good_frame(2000, seed=0).to_csv(source, index=False)
    _, outcome = run_through_gate(source, tmp_path / "work", suite, PARAMS)
    assert outcome.summary["rows_valid"] == 2000 and outcome.failures == []


@pytest.mark.parametrize("case", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_is_stopped_where_expected(
    case, good_raw: pd.DataFrame, suite: SuiteConfig, tmp_path: Path
) -> None:
    assert_stopped_where_expected(case, good_raw, suite, PARAMS, tmp_path)


def test_quarantine_under_tolerance_keeps_every_row_with_its_reasons(
    frame: pd.DataFrame, suite: SuiteConfig
) -> None:
    frame.loc[3, "popularity"] = 101
    frame.loc[3, "track_id"] = "bad"
    frame.loc[10, "energy"] = pd.NA
    frame.loc[20, "tempo"] = pd.NA
    frame.loc[20, INGEST_ERRORS] = "tempo: 'fast' is not a number"
    outcome = validate_tracks(frame, suite, PARAMS)

    rows_in = len(frame)
    assert outcome.summary["rows_valid"] + outcome.summary["rows_quarantined"] == rows_in
    assert len(outcome.valid) + len(outcome.quarantined) == rows_in
    quarantined = outcome.quarantined.set_index(ROW_NUMBER)
    assert list(quarantined.index) == [5, 12, 22]  # file lines: header is line 1
    assert quarantined.loc[5, QUARANTINE_REASON] == (
        "track_id='bad' not matching ^[0-9A-Za-z]{22}$; popularity=101 outside [0, 100]"
    )
    assert quarantined.loc[12, QUARANTINE_REASON] == "energy is null"
    # An unparseable cell is explained by its ingest note alone, not also as a null.
    assert quarantined.loc[22, QUARANTINE_REASON] == "tempo: 'fast' is not a number"
    assert list(outcome.quarantined.columns) == [ROW_NUMBER, *COLUMNS, QUARANTINE_REASON]
    assert list(outcome.valid.columns) == list(COLUMNS)
    assert not outcome.valid["track_id"].eq("bad").any()

    failed = {(f.expectation, f.column) for f in outcome.failures}
    assert failed == {
        ("expect_column_values_to_be_null", INGEST_ERRORS),
        ("expect_column_values_to_not_be_null", "energy"),
        ("expect_column_values_to_not_be_null", "tempo"),
        ("expect_column_values_to_match_regex", "track_id"),
        ("expect_column_values_to_be_between", "popularity"),
    }
    assert all(f.level == "row" for f in outcome.failures)
    popularity = next(f for f in outcome.failures if f.column == "popularity")
    assert popularity.unexpected_count == 1 and popularity.sample_values == [101]
    json.dumps([f.sample_values for f in outcome.failures])


def test_row_failure_tolerance_boundary(frame: pd.DataFrame, suite: SuiteConfig) -> None:
    allowed = int(PARAMS.row_failure_tolerance * len(frame))  # 20 of 2,000
    at_limit = frame.copy()
    at_limit.loc[: allowed - 1, "valence"] = 1.5
    outcome = validate_tracks(at_limit, suite, PARAMS)
    assert outcome.summary["rows_quarantined"] == allowed

    over = frame.copy()
    over.loc[:allowed, "valence"] = 1.5
    with pytest.raises(DataValidationError) as caught:
        validate_tracks(over, suite, PARAMS)
    assert f"{allowed + 1} of {len(frame)} rows" in str(caught.value)
    assert caught.value.failures[0].expectation == "row_failure_tolerance"


def test_rejection_names_every_failed_expectation(frame: pd.DataFrame, suite: SuiteConfig) -> None:
    bad = pd.concat([frame, frame.head(300)], ignore_index=True)
    bad[ROW_NUMBER] = range(2, len(bad) + 2)
    bad = bad.drop(columns=["energy"])
    bad.loc[::10, "danceability"] = 2.0
    with pytest.raises(DataValidationError) as caught:
        validate_tracks(bad, suite, PARAMS)
    message = str(caught.value)
    assert "missing column(s): energy" in message
    assert "duplicate_row_share: 300 of 2300 rows" in message
    assert "expect_column_values_to_be_between(danceability): 230 of 2300 rows" in message
    assert "e.g. 2.0 (line 2)" in message
    assert "row_failure_tolerance" in message
    levels = [f.level for f in caught.value.failures]
    assert levels == sorted(levels)  # batch-level failures first
    assert {f.expectation for f in caught.value.failures} >= {
        "expect_table_columns_to_match_set",
        "duplicate_row_share",
        "expect_column_values_to_be_between",
        "row_failure_tolerance",
    }
    assert caught.value.summary["verdict"] == "rejected"
    assert "REJECTED" in caught.value.report_html


def test_a_column_of_the_wrong_type_is_a_batch_failure(frame: pd.DataFrame, suite: SuiteConfig) -> None:
    frame["popularity"] = frame["popularity"].astype(str)  # a caller that bypassed ingest
    with pytest.raises(DataValidationError, match=r"expect_column_values_to_be_in_type_list\(popularity\)"):
        validate_tracks(frame, suite, PARAMS)


def test_scoring_accepts_a_batch_without_the_labels(frame: pd.DataFrame, scoring_suite: SuiteConfig) -> None:
    outcome = validate_tracks(frame.drop(columns=list(LABEL_COLUMNS)), scoring_suite, PARAMS)
    assert outcome.summary["rows_valid"] == len(frame)
    assert list(outcome.valid.columns) == [c for c in COLUMNS if c not in LABEL_COLUMNS]


def test_scoring_ignores_the_popularity_label_and_carries_a_given_genre(
    frame: pd.DataFrame, scoring_suite: SuiteConfig
) -> None:
    # The gate does not judge a given genre: scoring normalises it first and notes the unknown ones in
    # ingest_errors (components/scoring.with_known_genres), which fail their rows like unparsed cells.
    frame.loc[0, "popularity"] = 150
    outcome = validate_tracks(frame.assign(catalog_id="c1"), scoring_suite, PARAMS)
    assert outcome.summary["rows_valid"] == len(frame)
    assert outcome.summary["columns_ignored"] == ["popularity"]
    assert outcome.summary["inputs_given"] == ["track_genre"]
    assert outcome.summary["columns_passed_through"] == ["catalog_id"]
    assert "popularity" not in outcome.valid.columns
    assert outcome.valid["track_genre"].tolist() == frame["track_genre"].tolist()
    assert set(outcome.valid["catalog_id"]) == {"c1"}


def test_the_training_gate_still_rejects_an_extra_column(frame: pd.DataFrame, suite: SuiteConfig) -> None:
    with pytest.raises(DataValidationError, match=r"unexpected column\(s\): catalog_id"):
        validate_tracks(frame.assign(catalog_id="c1"), suite, PARAMS)


def test_scoring_rejects_a_batch_missing_another_column(
    frame: pd.DataFrame, scoring_suite: SuiteConfig
) -> None:
    batch = frame.drop(columns=[*LABEL_COLUMNS, "tempo"])
    with pytest.raises(DataValidationError) as caught:
        validate_tracks(batch, scoring_suite, PARAMS)
    assert "missing column(s): tempo" in str(caught.value)
    assert "popularity" not in str(caught.value)


def test_validate_does_not_mutate_its_input(frame: pd.DataFrame, suite: SuiteConfig) -> None:
    frame.loc[5, "popularity"] = 150  # quarantined
    frame.index = frame.index + 1000  # a non-default index must survive too
    before = frame.copy(deep=True)
    validate_tracks(frame, suite, PARAMS)
    pd.testing.assert_frame_equal(frame, before)

    frame.loc[frame.index[:500], "popularity"] = 150  # rejected
    before = frame.copy(deep=True)
    with pytest.raises(DataValidationError):
        validate_tracks(frame, suite, PARAMS)
    pd.testing.assert_frame_equal(frame, before)


def test_reordered_columns_are_reported_not_rejected(ingested: IngestResult, suite: SuiteConfig) -> None:
    file_order = ["", *reversed(COLUMNS)]
    outcome = validate_tracks(ingested.frame, suite, PARAMS, columns_in_file=file_order)
    assert outcome.summary["columns_reordered"] is True
    outcome = validate_tracks(ingested.frame, suite, PARAMS, columns_in_file=ingested.columns_in_file)
    assert outcome.summary["columns_reordered"] is False


def test_a_frame_without_bookkeeping_columns_is_numbered_by_position(
    frame: pd.DataFrame, suite: SuiteConfig
) -> None:
    frame.loc[7, "mode"] = 3
    outcome = validate_tracks(frame.drop(columns=[ROW_NUMBER, INGEST_ERRORS]), suite, PARAMS)
    assert outcome.quarantined[ROW_NUMBER].tolist() == [9]
    assert outcome.quarantined[QUARANTINE_REASON].tolist() == ["mode=3 not in [0, 1]"]


def test_summary_and_report(frame: pd.DataFrame, suite: SuiteConfig) -> None:
    frame.loc[2, "loudness"] = 12.0
    outcome = validate_tracks(frame, suite, PARAMS)
    summary = json.loads(json.dumps(outcome.summary))
    expected_keys = {
        "rows_in",
        "rows_valid",
        "rows_quarantined",
        "expectations_evaluated",
        "expectations_failed",
        "duration_s",
        "columns_reordered",
    }
    assert expected_keys <= set(summary)
    assert summary["expectations_failed"] == 1 and summary["duration_s"] > 0
    report = outcome.report_html
    assert report.startswith("<!DOCTYPE html>") and "ACCEPTED" in report
    for rule in suite.row_rules:
        assert rule.expectation in report
    assert "expect_table_columns_to_match_set" in report and "duplicate_row_share" in report
    assert "loudness=12.0 outside [-60, 5]" in report  # the quarantined row and its reason
    assert "<script" not in report and "http" not in report  # self-contained
