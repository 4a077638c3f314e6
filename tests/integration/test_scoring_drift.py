"""Batch scoring and drift monitoring on the champions of a real (small) training run: the flows through
Prefect, the real MLflow registry, GX and Evidently."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from components.scoring import plain_inputs
from flows.batch_scoring import batch_scoring
from tests.conftest import copy_project
from trackflow.paths import ProjectPaths
from trackflow.stages import drift as drift_stage
from trackflow.stages import scoring as scoring_stage
from trackflow.stages import simulate as simulate_stage
from trackflow.stages.common import params_for
from trackflow.stages.discovery.discover import discover
from trackflow.stages.discovery.register import register_discovery

TASKS = ("popularity", "genre", "hit")


def _paths(root: Path) -> tuple[ProjectPaths, object]:
    paths = ProjectPaths.at(root)
    return paths, params_for(paths)


def _simulate(root: Path, drift: str, rows: int = 1500) -> Path:
    paths, params = _paths(root)
    return Path(simulate_stage.simulate(paths, params, drift, rows=rows)["path"])


@pytest.fixture(scope="module")
def scoring_project(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's own copy of the trained project: its batches, predictions and drift runs stay here."""
    return copy_project(trained_project, tmp_path_factory.mktemp("scoring"))


@pytest.fixture(scope="module")
def scored_iid(scoring_project: Path) -> dict:
    """An iid batch of held-out tracks, scored by the batch scoring flow."""
    batch = _simulate(scoring_project, "none")
    result = batch_scoring(root=str(scoring_project))
    (summary,) = [s for s in result["scored"] if s["batch"] == scoring_stage.batch_name(batch)]
    return summary


def test_scoring_writes_one_row_per_input_with_model_provenance(scoring_project: Path, scored_iid: dict):
    paths, _ = _paths(scoring_project)
    client = MlflowClient(f"sqlite:///{scoring_project / 'mlflow' / 'mlflow.db'}")
    predictions = pd.read_parquet(scored_iid["predictions_path"])
    batch = pd.read_parquet(Path(scored_iid["source"]))

    assert scored_iid["rows_in"] == scored_iid["rows_scored"] == len(batch) == len(predictions)
    assert predictions["track_id"].tolist() == batch["track_id"].tolist()
    assert predictions["source_row"].tolist() == list(range(2, len(batch) + 2))
    expected = {
        "source_row", "track_id", "artists", "track_name", "predicted_popularity", "hit_probability",
        "predicted_genre", "genre_input", "scored_at",
        *(f"{t}_{what}" for t in TASKS for what in ("model_version", "run_id")),
    }  # fmt: skip
    assert set(predictions.columns) == expected
    for task in TASKS:
        champion = client.get_model_version_by_alias(task, "champion")
        assert set(predictions[f"{task}_model_version"]) == {str(champion.version)}
        assert set(predictions[f"{task}_run_id"]) == {champion.run_id}
    assert predictions["predicted_popularity"].between(0, 100).all()
    assert predictions["hit_probability"].between(0, 1).all()
    known = set((scoring_project / "configs" / "genres.txt").read_text().split())
    assert set(predictions["predicted_genre"]) <= known
    assert set(predictions["genre_input"]) == {"predicted"}

    # The same answers as the champion called directly on the same rows: without a genre given, its
    # genre-free fallback answers (the genre champion's guess is not fed in).
    popularity = mlflow.pyfunc.load_model("models:/popularity@champion")
    inputs = batch.assign(track_genre=None)
    direct = popularity.predict(plain_inputs(inputs.drop(columns=["popularity"], errors="ignore")))
    np.testing.assert_allclose(predictions["predicted_popularity"], direct, rtol=1e-9)
    assert not list(paths.predictions(scored_iid["batch"]).parent.glob(".*"))  # no temporary files left


def test_csv_batch_in_small_chunks_matches_the_parquet_batch(
    scoring_project: Path, scored_iid: dict, tmp_path: Path
) -> None:
    paths, params = _paths(scoring_project)
    batch = pd.read_parquet(Path(scored_iid["source"]))
    csv = tmp_path / "same-rows.csv.gz"
    batch.to_csv(csv, index=False)
    chunked = params.model_copy(update={"score": params.score.model_copy(update={"chunk_rows": 400})})
    summary = scoring_stage.score_file(paths, chunked, csv)
    assert summary["rows_scored"] == len(batch)
    from_csv = pd.read_parquet(summary["predictions_path"])
    from_parquet = pd.read_parquet(scored_iid["predictions_path"])
    columns = ["source_row", "track_id", "predicted_popularity", "hit_probability", "predicted_genre"]
    pd.testing.assert_frame_equal(from_csv[columns], from_parquet[columns], rtol=1e-9)


def test_rescoring_a_batch_replaces_its_output_whole(scoring_project: Path, scored_iid: dict) -> None:
    paths, params = _paths(scoring_project)
    source = Path(scored_iid["source"])
    smaller = pd.read_parquet(source).head(300)
    smaller.to_parquet(source, index=False)
    summary = scoring_stage.score_file(paths, params, source)
    assert len(pd.read_parquet(summary["predictions_path"])) == 300


def test_batch_missing_a_column_is_rejected_kept_aside_and_nothing_written(scoring_project: Path) -> None:
    paths, params = _paths(scoring_project)
    good = pd.read_parquet(_simulate(scoring_project, "none", rows=200))
    incoming = scoring_stage.incoming_dir(paths, params)
    bad = incoming / "no-energy.parquet"
    good.drop(columns=["energy"]).to_parquet(bad, index=False)

    result = batch_scoring(root=str(scoring_project), batch=str(bad))
    (rejected,) = result["rejected"]
    assert result["scored"] == [] and "energy" in rejected["reason"]
    assert not paths.predictions("no-energy").exists()
    assert not paths.predictions_summary("no-energy").exists()
    assert not bad.exists()  # moved out of the incoming folder ...
    kept = paths.rejected("no-energy")
    assert (kept / "no-energy.parquet").exists()  # ... and kept whole, with the reason
    assert "energy" in (kept / "rejection.json").read_text()
    pd.testing.assert_frame_equal(pd.read_parquet(kept / "no-energy.parquet"), good.drop(columns=["energy"]))


@pytest.mark.parametrize(
    ("drift", "expected"),
    [("none", set()), ("louder", {"loudness"}), ("shorter", {"duration_ms"}), ("genre_mix", {"energy"})],
)
def test_drift_is_flagged_on_each_shift_and_not_on_an_iid_batch(
    scoring_project: Path, drift: str, expected: set[str]
) -> None:
    paths, params = _paths(scoring_project)
    batch = _simulate(scoring_project, drift)
    scoring_stage.score_file(paths, params, batch)
    summary = drift_stage.drift_check(paths, params, scoring_stage.batch_name(batch))
    drifted = set(summary["drifted_columns"])
    if drift == "none":
        assert not summary["drift_detected"], summary["columns"]
        assert summary["drift_share"] == 0 and not summary["retrain"]
    else:
        assert summary["drift_detected"] and expected <= drifted, drifted
    if drift == "genre_mix":  # a different mix of genres moves most audio columns: past retrain_share ...
        assert summary["drift_due"] and "energy" in summary["decision"]
        # ... but no label came back, so a retrain would refit the same rows (see test_labels_flow.py)
        assert not summary["retrain"] and summary["decision"].startswith("drift, no new labels")
    assert Path(summary["report_path"]).read_text().lstrip().startswith("<")
    assert paths.drift_summary(summary["batch"]).exists()
    client = MlflowClient(f"sqlite:///{scoring_project / 'mlflow' / 'mlflow.db'}")
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.metrics["drift_share"] == pytest.approx(summary["drift_share"])


def test_no_champion_is_a_clear_error(project: Path) -> None:
    paths, params = _paths(project)
    frame = pd.DataFrame({"track_id": ["x"]})
    with pytest.raises(scoring_stage.ScoringError, match="no champion"):
        scoring_stage.score_frame(paths, params, frame, "empty-registry")


def test_outlier_share_is_reported_once_an_outlier_model_is_champion(
    scoring_project: Path, tmp_path: Path
) -> None:

    root = copy_project(scoring_project, tmp_path)
    paths, params = _paths(root)
    discover(paths, params)
    registered = register_discovery(paths, params)
    assert "champion" in registered["outliers"]["aliases"]
    batch = _simulate(root, "none", rows=600)

    summary = scoring_stage.score_file(paths, params, batch)
    predictions = pd.read_parquet(summary["predictions_path"])
    assert {"outlier_score", "is_outlier", "outliers_model_version"} <= set(predictions.columns)
    assert summary["outliers"] == int(predictions["is_outlier"].sum())
    assert 0 <= summary["outlier_share"] < 0.1  # held-out real tracks: about the 1% contamination
    drift = drift_stage.drift_check(paths, params, summary["batch"])
    assert drift["outlier_share"] == pytest.approx(summary["outlier_share"], abs=1e-6)  # summary: 6 digits
    assert 0 <= drift["reference_outlier_share"] < 0.1
