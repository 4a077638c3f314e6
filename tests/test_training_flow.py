"""End to end: the Prefect training flow on a sample of the real data into a temporary MLflow store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from components.io import read_json
from flows.training import training
from mlflow import MlflowClient
from tests.conftest import make_project
from trackflow import stages
from trackflow.paths import ProjectPaths


@pytest.fixture(scope="module")
def trained_project(
    tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, prefect_harness: None
) -> Iterator[Path]:
    """One real flow run shared by the tests of this module (it is the slow part)."""
    root = make_project(tmp_path_factory.mktemp("flow"))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setenv("TRACKS_CSV", str(sample_csv))
        training(root=str(root), fetch=True)
        yield root


def _client(root: Path) -> MlflowClient:
    paths = ProjectPaths.at(root)
    client, _ = stages.mlflow_client(paths, stages.params_for(paths))
    return client


def test_flow_registers_a_champion_with_positive_r2(trained_project: Path) -> None:
    paths = ProjectPaths.at(trained_project)
    metrics = read_json(paths.metrics)
    assert metrics["main_protocol"] == "artist"
    assert metrics["artist"]["r2"] > 0
    assert metrics["track"]["r2"] > 0
    client = _client(trained_project)
    champion = client.get_model_version_by_alias("popularity", "champion")
    challenger = client.get_model_version_by_alias("popularity", "challenger")
    assert str(champion.version) == str(challenger.version) == "1"
    assert champion.tags["protocol"] == "artist"
    assert len(champion.tags["data_hash"]) == 64
    assert champion.tags["git_commit"]
    registration = read_json(paths.registration)
    assert set(registration["aliases"]) == {"champion", "challenger"}

    # A raw row in, a prediction out: the preprocessing travels inside the logged model.
    model = mlflow.pyfunc.load_model("models:/popularity@champion")
    raw = pd.read_parquet(paths.validated_tracks).head(20).drop(columns=["popularity"])
    predictions = np.asarray(model.predict(raw))
    assert predictions.shape == (20,) and np.isfinite(predictions).all()

    # Same raw rows, same features at scoring time as at training time.
    local = mlflow.sklearn.load_model(str(paths.model_dir / "artist"))
    assert np.allclose(predictions, local.predict(raw.drop(columns=["source_row"], errors="ignore")))


def test_rerun_keeps_champion_when_the_challenger_does_not_win(trained_project: Path) -> None:
    # Same data, params and code give the same model: a tie must not move the champion.
    summary = stages.register(
        ProjectPaths.at(trained_project), stages.params_for(ProjectPaths.at(trained_project))
    )
    assert summary["version"] == "2" and summary["aliases"] == ["challenger"]
    client = _client(trained_project)
    assert str(client.get_model_version_by_alias("popularity", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("popularity", "challenger").version) == "2"


def test_same_data_and_params_give_the_same_model(trained_project: Path) -> None:
    paths = ProjectPaths.at(trained_project)
    params = stages.params_for(paths)
    before = read_json(paths.metrics)
    stages.train(paths, params)
    after = stages.evaluate(paths, params)
    assert after["artist"] == before["artist"] and after["track"] == before["track"]
