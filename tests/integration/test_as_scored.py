"""Models judged as they are used: popularity and hit are evaluated on the holdout with the genre given and
without it (a batch without a genre, answered by the genre-free fallback); the second is what the scoring
path reproduces exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import mean_squared_error, roc_auc_score

from components.split import split_frames
from components.tasks import GENRE_PREDICTED
from tests.conftest import copy_project
from trackflow.paths import ProjectPaths
from trackflow.stages import scoring as scoring_stage
from trackflow.stages.common import params_for


@pytest.fixture(scope="module")
def project(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(trained_project, tmp_path_factory.mktemp("as-scored"))


def _metrics(root: Path, task: str) -> dict:
    return json.loads((root / "metrics" / f"{task}.json").read_text())


def test_popularity_and_hit_are_judged_with_the_genre_given_and_predicted(project: Path) -> None:
    for task in ("popularity", "hit"):
        metrics = _metrics(project, task)
        for protocol in ("artist", "track"):
            assert set(metrics[GENRE_PREDICTED][protocol]) == set(metrics[protocol])
        selected = metrics["selected"]
        given, guessed = metrics["artist"][selected], metrics[GENRE_PREDICTED]["artist"][selected]
        assert set(given) == set(guessed) and given != guessed
        assert "genre-free fallback" in metrics["genre_input"][GENRE_PREDICTED]
        comparison = (project / "reports" / task / "comparison.md").read_text()
        assert "without a given genre (as scored)" in comparison
    assert GENRE_PREDICTED not in _metrics(project, "genre")  # its own label is never its input


def test_the_scoring_path_reproduces_the_as_scored_holdout_metrics(project: Path) -> None:
    """The main holdout's tracks, without labels, through batch scoring with the champions this run
    registered: the RMSE and ROC-AUC of what scoring writes are the metrics of the predicted condition."""
    paths = ProjectPaths.at(project)
    params = params_for(paths)
    selected = yaml.safe_load((project / "result.yaml").read_text())["selected"]
    tracks, splits = pd.read_parquet(paths.features), pd.read_parquet(paths.splits)
    _, holdout = split_frames(tracks, splits, params.split.protocol)
    batch = holdout.drop(columns=["popularity", "track_genre", "primary_artist"])
    summary = scoring_stage.score_frame(paths, params, batch, "main-holdout")
    predictions = pd.read_parquet(summary["predictions_path"])
    assert summary["rows_quarantined"] == 0 and summary["genre_input"] == {"predicted": len(holdout)}
    truth = holdout.set_index("track_id").loc[predictions["track_id"], "popularity"].to_numpy()

    rmse = float(np.sqrt(mean_squared_error(truth, predictions["predicted_popularity"])))
    as_scored = _metrics(project, "popularity")[GENRE_PREDICTED]["artist"][selected["popularity"]]
    assert rmse == pytest.approx(as_scored["rmse"], abs=1e-4)
    auc = roc_auc_score(truth >= params.train.hit_threshold, predictions["hit_probability"])
    hit = _metrics(project, "hit")[GENRE_PREDICTED]["artist"][selected["hit"]]
    assert auc == pytest.approx(hit["roc_auc"], abs=1e-4)


def test_the_gate_judges_on_the_condition_params_names_and_says_which_genre_it_used(project: Path) -> None:
    """params.yaml register.gate_condition is `predicted`: the challenger's gate score is its holdout score
    without the genre, and its version is tagged with what answered that condition."""
    from mlflow import MlflowClient

    assert params_for(ProjectPaths.at(project)).registry.gate_condition == "predicted"
    client = MlflowClient(f"sqlite:///{project / 'mlflow' / 'mlflow.db'}")
    for task, metric in (("popularity", "rmse"), ("hit", "roc_auc")):
        registered = json.loads((project / "data" / "registry" / f"{task}.json").read_text())
        selected = registered["family"]
        as_scored = _metrics(project, task)[GENRE_PREDICTED]["artist"][selected][metric]
        assert registered["gate_condition"] == GENRE_PREDICTED
        assert registered["challenger_score"] == pytest.approx(as_scored, abs=1e-6)
        tags = client.get_model_version(task, registered["version"]).tags
        assert tags["gate_condition"] == "genre predicted"
        assert tags["genre_absent_answered_by"] == "genre-free fallback"
    assert json.loads((project / "data" / "registry" / "genre.json").read_text())["gate_condition"] == "given"


def test_every_popularity_and_hit_model_carries_a_fallback_that_never_saw_a_genre(project: Path) -> None:
    """The fallback is the same family fitted on the same rows with the genre withheld: its features hold
    no genre, the genre-aware estimator's do, and a batch mixing rows with and without a genre gets each
    row's answer from the model its row calls for."""
    import mlflow.sklearn

    paths = ProjectPaths.at(project)
    params = params_for(paths)
    tracks, splits = pd.read_parquet(paths.features), pd.read_parquet(paths.splits)
    _, holdout = split_frames(tracks, splits, params.split.protocol)
    rows = holdout.head(40).drop(columns=["popularity"]).reset_index(drop=True)
    mixed = rows.assign(track_genre=rows["track_genre"].where(rows.index % 2 == 0, None))
    for task in ("popularity", "hit"):
        for folder in sorted((paths.task_models(task) / "artist").iterdir()):
            model = mlflow.sklearn.load_model(str(folder))
            assert model.fallback is not None, folder
            members = getattr(model.fallback, "members", [model.fallback])
            assert all(m.named_steps["features"].genre_vocabulary_ == [] for m in members), folder
            assert all(
                m.named_steps["features"].genre_vocabulary_
                for m in getattr(model.estimator, "members", [model.estimator])
            ), folder
            answers = model.predict(mixed)
            with_genre, without = model.predict(rows), model.predict(rows.assign(track_genre=None))
            expected = np.where(rows.index % 2 == 0, with_genre, without)
            assert answers == pytest.approx(expected, abs=1e-9), folder
            assert not np.allclose(with_genre, without), folder
    assert mlflow.sklearn.load_model(str(paths.task_models("genre") / "artist" / "blend")).fallback is None
