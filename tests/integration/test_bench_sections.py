"""Benchmark sections measured for real on a tiny project: validation, and the scoring batch."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from bench import validation
from bench.harness import (
    Context,
    read_results,
    write_result,
)
from bench.report import render
from bench.scoring import scoring_batch, unique_track_ids
from tests.conftest import REPO, make_project, sample_rows
from trackflow.stages import data as data_stage
from trackflow.stages.common import params_for
from trackflow.stages.data import fetch_data


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory: pytest.TempPathFactory, real_frame: pd.DataFrame) -> Path:
    """A project root with about 1,500 real listing rows fetched and ingested."""

    from trackflow.paths import ProjectPaths

    root = make_project(tmp_path_factory.mktemp("bench"))
    csv = root.parent / "tiny.csv"
    sample_rows(real_frame, 1200, seed=3).to_csv(csv, index=False)
    paths = ProjectPaths.at(root)
    params = params_for(paths)
    fetch_data(paths, params, tracks_csv=str(csv))
    data_stage.ingest(paths, params)
    return root


def test_validation_section_measured_and_reported(tiny_project: Path, tmp_path: Path) -> None:
    ctx = Context(
        repo=REPO,
        work=tmp_path / "work",
        results=tmp_path / "results",
        repeats=1,
        quick=True,
        project=tiny_project,
    )
    data = validation.run(ctx)
    rows = len(pd.read_parquet(tiny_project / "data" / "interim" / "tracks.parquet"))
    assert data["rows"] == rows > 1000
    assert data["summary"]["rows_valid"] + data["summary"]["rows_quarantined"] == rows
    for part in ("component", "stage"):
        assert data[part]["wall_s"]["n"] == 1 and data[part]["wall_s"]["median"] > 0
    assert data["peak_rss_mb"] > 50  # a real process that imported pandas and Great Expectations
    assert (tiny_project / "reports" / "validation" / "report.html").is_file()  # the stage really ran

    write_result(ctx, "validation", "ok", 1.0, data)
    report = render(read_results(ctx.results))
    section = report.split("## Validation", 1)[1].split("\n## ", 1)[0]
    assert f"{rows:,} ingested rows" in section
    assert "`validate_tracks` (component, in memory)" in section and "(1 run)" in section
    assert "--quick mode" in report
    # Sections that did not run say so instead of showing numbers.
    assert report.split("## Training DAG", 1)[1].split("\n## ", 1)[0].strip().startswith("_Not measured")


def test_scoring_batch_changes_only_the_id_and_passes_the_gate(tiny_project: Path) -> None:
    from components.validation import validate_tracks
    from trackflow.config import load_params, load_suite

    listings = pd.read_parquet(tiny_project / "data" / "interim" / "tracks.parquet")
    same = scoring_batch(listings, len(listings))
    assert same["track_id"].is_unique and same["track_id"].str.fullmatch(r"[0-9A-Za-z]{22}").all()
    assert not {"popularity", "track_genre", "source_row", "ingest_errors"} & set(same.columns)
    kept = [c for c in same.columns if c != "track_id"]
    pd.testing.assert_frame_equal(same[kept], listings[kept].reset_index(drop=True))
    assert "track_id" in listings and listings["track_id"].is_unique is False  # the input is untouched

    # Five times the rows, resampled: the real scoring gate accepts it (without new ids it would not).
    big = scoring_batch(listings, 5 * len(listings))
    suite = load_suite(REPO / "configs" / "expectations" / "tracks.yaml", for_scoring=True)
    gate = load_params(tiny_project / "params.yaml").validation
    outcome = validate_tracks(big.assign(source_row=range(len(big))), suite, gate)
    assert len(outcome.valid) == len(big)
    assert unique_track_ids(3).tolist() == [
        "bench" + "0" * 17,
        "bench" + "0" * 16 + "1",
        "bench" + "0" * 16 + "2",
    ]
    assert re.fullmatch(r"bench[0-9A-Za-z]{17}", unique_track_ids(62**3 + 5)[-1])
