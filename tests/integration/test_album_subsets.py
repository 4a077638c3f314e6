"""The artist holdout by album and the untuned baseline, from a real training flow: every artist-holdout
metric also on the album-unseen and album-shared subsets, the baseline a row of every comparison (never
selected), both in metrics/<task>.json, the comparison report and MLflow; the ablation on the subsets too."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from components.evaluation import album_shared
from components.split import split_frames
from tests.conftest import copy_project
from trackflow.paths import ProjectPaths
from trackflow.stages import data as data_stage
from trackflow.stages.common import params_for
from trackflow.tracking import resolve_tracking_uri


def test_every_artist_holdout_metric_is_also_on_its_album_subsets(trained_project: Path) -> None:
    paths = ProjectPaths.at(trained_project)
    tracks, splits = pd.read_parquet(paths.features), pd.read_parquet(paths.splits)
    train, test = split_frames(tracks, splits, "artist")
    expected_shared = int(album_shared(test["album_name"], train["album_name"]).sum())
    for task in ("popularity", "hit", "genre"):
        metrics = json.loads(paths.task_metrics(task).read_text())
        subsets = metrics["album_subsets"]
        assert subsets["tracks"]["album_shared"] == expected_shared > 0
        if task == "popularity":  # regression metrics count their rows
            assert subsets["tracks"]["album_unseen"] + expected_shared == metrics["artist"]["baseline"]["n"]
        conditions = {"given", "genre_predicted"} if task != "genre" else {"given"}
        assert conditions <= set(subsets)
        for condition in conditions:
            for subset in ("album_unseen", "album_shared"):
                by_family = subsets[condition][subset]
                assert set(by_family) == set(metrics["artist"]), (task, condition, subset)
        # The baseline is a row beside the tuned families, never the selected model.
        assert "baseline" in metrics["artist"] and "baseline" in metrics["track"]
        assert metrics["selected"] != "baseline"
        report = (paths.reports / task / "comparison.md").read_text()
        assert "the artist holdout by album" in report and "the untuned baseline's" in report


def test_the_selected_models_subset_metrics_are_in_mlflow(trained_project: Path) -> None:
    paths = ProjectPaths.at(trained_project)
    params = params_for(paths)
    client = MlflowClient(resolve_tracking_uri(params.mlflow.tracking_uri, trained_project))
    version = client.get_model_version_by_alias("popularity", "champion")
    tags = client.get_model_version(version.name, version.version).tags
    run = client.get_run(version.run_id)
    subset_keys = ("album_unseen_rmse", "album_shared_r2", "genre_predicted_album_unseen_r2")
    for key in (f"holdout_{name}" for name in subset_keys):
        assert key in tags or key in run.data.tags, key
    assert any(k.startswith("holdout_album_shared_baseline_") for k in run.data.metrics)


def test_the_ablation_reports_the_album_subsets(trained_project: Path, tmp_path: Path) -> None:
    root = copy_project(trained_project, tmp_path)
    paths = ProjectPaths.at(root)
    order = ["audio", "genre", "names"]  # three groups keep it short; the genre-free rows drop one
    params = params_for(paths)
    ablation = params.ablation.model_copy(update={"groups": tuple(order)})
    params = params.model_copy(update={"ablation": ablation})
    result = data_stage.ablation(paths, params)
    first = result["rows"][0]
    assert {"popularity_album_unseen_rmse", "popularity_album_shared_r2", "hit_album_unseen_roc_auc"} <= set(
        first
    )
    assert first["album_shared_tracks"] > 0
    assert 0.5 < first["hit_artist_roc_auc"] <= 1.0
    table = (paths.reports / "ablation.md").read_text()
    assert "popularity album-unseen RMSE / R²" in table and "hit track ROC-AUC / PR-AUC" in table
    assert f"{first['album_shared_tracks']:,} of its tracks" in table
    # Every group of the order has its row; then the order without the genre, its shared prefix not refitted.
    assert [(r["condition"], r["groups"]) for r in result["rows"]] == [
        ("given", "audio"),
        ("given", "audio+genre"),
        ("given", "audio+genre+names"),
        ("no_genre", "audio"),
        ("no_genre", "audio+names"),
    ]
    given, genre_free = result["rows"][2], result["rows"][4]
    assert result["rows"][3]["popularity_artist_r2"] == first["popularity_artist_r2"]
    # On the real sample the genre carries popularity signal the names do not: without it R² drops.
    assert genre_free["popularity_artist_r2"] < given["popularity_artist_r2"]
    assert "Without a genre" in table


def test_the_selected_models_global_importance_is_reported_per_raw_column(trained_project: Path) -> None:
    paths = ProjectPaths.at(trained_project)
    params = params_for(paths)
    for task in ("popularity", "hit", "genre"):
        report = json.loads((paths.reports / task / "importance.json").read_text())
        assert (paths.reports / task / "importance.png").stat().st_size > 0
        assert report["rows"] == params.evaluate.explain_rows  # the seeded sample of the holdout
        importance = report["importance"]
        assert all(v >= 0 for v in importance.values()) and max(importance.values()) > 0
        assert set(report["methods"]) <= {"shap", "permutation"}
        # Raw input columns, not features: no multi-hot genre column, no scaled or logged copy.
        assert not any(k.startswith(("genre__", "script__")) or k.endswith("_z") for k in importance)
        if task != "genre":
            # The genre given drives popularity and hit in the built data (tests/builders.py).
            assert "track_genre" in importance and "names (track, album, artists)" in importance
