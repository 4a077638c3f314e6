"""End to end: the Prefect training flow on a sample of the real data into a temporary MLflow store, with
every task, two model families and a tiny tuning budget."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from components.io import read_json
from tests.conftest import copy_project
from trackflow.cli import app
from trackflow.paths import ProjectPaths
from trackflow.stages.common import params_for
from trackflow.stages.evaluate import evaluate_task
from trackflow.stages.register import register_task
from trackflow.stages.train import cv_blend, fit_task, out_of_fold
from trackflow.stages.training import load_tables, task_n_classes, task_rows
from trackflow.tracking import Tracker

TASK_NAMES = ("popularity", "genre", "hit")


def _client(root: Path) -> MlflowClient:
    paths = ProjectPaths.at(root)
    client = Tracker.for_project(paths, params_for(paths)).client
    return client


def test_every_task_registers_a_champion(trained_project: Path) -> None:
    client = _client(trained_project)
    for task in TASK_NAMES:
        champion = client.get_model_version_by_alias(task, "champion")
        challenger = client.get_model_version_by_alias(task, "challenger")
        assert str(champion.version) == str(challenger.version) == "1"
        assert champion.tags["protocol"] == "artist"
        assert len(champion.tags["data_hash"]) == 64 and champion.tags["git_commit"]
        assert champion.tags["family"] in ("lightgbm", "random_forest", "blend")


def test_holdout_metrics_are_honest_and_better_than_chance(trained_project: Path) -> None:
    root = trained_project
    popularity = read_json(root / "metrics" / "popularity.json")
    genre = read_json(root / "metrics" / "genre.json")
    hit = read_json(root / "metrics" / "hit.json")
    for protocol in ("artist", "track"):
        assert set(popularity[protocol]) >= {"lightgbm", "random_forest"}
        assert popularity[protocol][popularity["selected"]]["r2"] > 0
        assert hit[protocol][hit["selected"]]["roc_auc"] > 0.6
        # 114 classes: chance is under 2%; a set-aware top-3 well above it.
        assert genre[protocol][genre["selected"]]["top3_set_accuracy"] > 0.1
    comparison = (root / "reports" / "popularity" / "comparison.md").read_text()
    assert "lightgbm" in comparison and "random_forest" in comparison and "(selected)" in comparison
    assert (root / "reports" / "hit" / "roc_pr.png").is_file()
    assert (root / "reports" / "popularity" / "predicted_vs_actual.png").is_file()


def test_blend_is_scored_on_the_tuning_out_of_fold_outputs(trained_project: Path) -> None:
    """No refit for the blend CV: the members' saved outputs score as their tuning did, and refitting them
    on the folds (the path for a study resumed from an earlier process) gives the same scores."""
    paths = ProjectPaths.at(trained_project)
    params = params_for(paths)
    tracks, splits = load_tables(paths)
    for task in TASK_NAMES:
        selection = read_json(paths.task_models(task) / "selection.json")
        assert selection["blend"]["scored_on"] == "tuning out-of-fold outputs"
        tuned = {
            name: read_json(paths.tuning(task) / f"{name}.json") for name in selection["blend"]["members"]
        }
        for name, entry in tuned.items():
            assert selection["blend"]["cv_scores"][name] == pytest.approx(entry["cv_score"], rel=1e-9)
        rows = task_rows(tracks, splits, params, task, params.split.protocol, "train").sample(
            params.train.tuning.max_tune_rows, params.train.seed
        )
        finalists = list(tuned.values())
        n_classes = task_n_classes(task, tracks)
        refitted = out_of_fold(params, task, rows, finalists, n_classes)  # nothing saved: every fold refitted
        refit = cv_blend(params, task, rows, finalists, refitted, n_classes)
        assert refit == pytest.approx(selection["blend"]["cv_scores"], rel=1e-6)


def test_hit_is_calibrated_and_genre_pools_the_names_on_out_of_fold_outputs(trained_project: Path) -> None:
    paths = ProjectPaths.at(trained_project)
    params = params_for(paths)
    hit = read_json(paths.task_models("hit") / "selection.json")
    calibration = hit["calibration"]
    assert calibration["method"] == params.train.calibration == "sigmoid"
    assert set(calibration["by_family"]) == {*params.train.families, "blend"}
    fitted = calibration["by_family"].values()
    for pair in fitted:  # the estimator's and its genre-free fallback's own
        assert pair["given"]["rows"] == pair["genre_free"]["rows"] == params.train.tuning.max_tune_rows
    # (A small LightGBM on 1,500 rows may never split on the genre: then both are the same.)
    assert any(pair["given"] != pair["genre_free"] for pair in fitted)
    metrics = json.loads(paths.task_metrics("hit").read_text())
    before, after = metrics["unadjusted"]["given"], metrics["artist"][metrics["selected"]]
    assert before["roc_auc"] == pytest.approx(after["roc_auc"], abs=1e-9)  # monotone: the ranking is kept
    assert before["brier"] != after["brier"]
    assert "before calibration" in (paths.reports / "hit" / "comparison.md").read_text()

    genre = read_json(paths.task_models("genre") / "selection.json")
    weights = genre["names_prior"]["weights"]
    assert set(weights) == {*params.train.families, "blend"} and max(weights.values()) > 0
    genre_metrics = json.loads(paths.task_metrics("genre").read_text())
    without = genre_metrics["unadjusted"]["given"]["top1_set_accuracy"]
    with_names = genre_metrics["artist"][genre_metrics["selected"]]["top1_set_accuracy"]
    assert with_names > without  # on the real sample the names know genres the audio does not
    model = mlflow.sklearn.load_model(str(paths.task_models("genre") / "artist" / genre_metrics["selected"]))
    assert model.names_prior.weight == weights[genre_metrics["selected"]]
    shape = (params.train.names.genre_hash_features, len(model.classes))
    assert model.names_prior.classifier.log_prob_.shape == shape


def test_tuning_trials_are_nested_runs(trained_project: Path) -> None:
    client = _client(trained_project)
    experiment = client.get_experiment_by_name("trackflow")
    study = client.search_runs(
        [experiment.experiment_id],
        "tags.stage = 'tune' and tags.task = 'popularity' and tags.family = 'lightgbm'",
    )[0]
    trials = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{study.info.run_id}'"
    )
    assert len(trials) == 2
    assert "best_cv_score" in study.data.metrics


def test_raw_rows_in_answers_out(trained_project: Path) -> None:
    raw = pd.read_parquet(ProjectPaths.at(trained_project).validated_tracks).head(20)
    popularity = np.asarray(
        mlflow.pyfunc.load_model("models:/popularity@champion").predict(raw.drop(columns=["popularity"]))
    )
    assert popularity.shape == (20,) and ((popularity >= 0) & (popularity <= 100)).all()
    hit = np.asarray(
        mlflow.pyfunc.load_model("models:/hit@champion").predict(raw.drop(columns=["popularity"]))
    )
    assert ((hit >= 0) & (hit <= 1)).all()
    genre_inputs = raw.drop(columns=["popularity", "track_genre"])  # the genre model never sees the genre
    genres = mlflow.pyfunc.load_model("models:/genre@champion").predict(genre_inputs)
    known = set((trained_project / "configs" / "genres.txt").read_text().split())
    assert set(np.asarray(genres)) <= known


def test_rerun_keeps_champion_and_promotion_by_cli(trained_project: Path, tmp_path: Path) -> None:
    root = copy_project(trained_project, tmp_path)  # the shared project stays as the flow left it
    paths = ProjectPaths.at(root)
    params = params_for(paths)
    # Same data, params and code give the same model: a tie must not move the champion.
    summary = register_task(paths, params, "popularity")
    assert summary["version"] == "2" and summary["aliases"] == ["challenger"]
    assert "champion kept" in summary["promotion"]
    client = _client(root)
    assert str(client.get_model_version_by_alias("popularity", "champion").version) == "1"

    result = CliRunner().invoke(
        app,
        [
            "promote",
            "popularity",
            "2",
            "--reason",
            "manual check",
            "--who",
            "ana",
            "--root",
            str(root),
        ],
    )
    assert result.exit_code == 0, result.output
    champion = client.get_model_version_by_alias("popularity", "champion")
    assert str(champion.version) == "2" and champion.tags["promoted_by"] == "ana"


def test_same_data_and_params_give_the_same_model(trained_project: Path, tmp_path: Path) -> None:
    paths = ProjectPaths.at(copy_project(trained_project, tmp_path))
    params = params_for(paths)
    before = read_json(paths.root / "metrics" / "popularity.json")
    fit_task(paths, params, "popularity")  # the studies resume: no new trials, same best params
    after = evaluate_task(paths, params, "popularity")
    for protocol in ("artist", "track"):
        assert after[protocol].keys() == before[protocol].keys()
        for family, values in before[protocol].items():
            assert after[protocol][family] == pytest.approx(values, rel=1e-5)
