from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.pyfunc
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components import registry
from components.modeling import fit_popularity_model, model_inputs
from tests.conftest import repo_params
from tests.test_features import synthetic_tracks

LIGHTGBM = repo_params().ablation.lightgbm


def test_promotion_gate_both_ways() -> None:
    assert registry.decide_promotion(10.0, None, 0.5).promote
    assert registry.decide_promotion(9.0, 10.0, 0.5).promote
    kept = registry.decide_promotion(9.8, 10.0, 0.5)
    assert not kept.promote and "champion kept" in kept.reason
    assert not registry.decide_promotion(10.0, 10.0, 0.0).promote  # a tie keeps the champion
    # Higher-is-better metrics (ROC-AUC, accuracy) turn the comparison around.
    assert registry.decide_promotion(0.80, 0.75, 0.01, "roc_auc", lower_is_better=False).promote
    worse = registry.decide_promotion(0.70, 0.75, 0.0, "roc_auc", lower_is_better=False)
    assert not worse.promote and "roc_auc" in worse.reason


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_register_aliases_and_manual_promotion(client: MlflowClient, tmp_path: Path) -> None:
    tracks = synthetic_tracks(400)
    model = fit_popularity_model(tracks, LIGHTGBM.model_copy(update={"n_estimators": 10}), seed=0)
    experiment = registry.ensure_experiment(client, "t", tmp_path / "artifacts")
    versions = []
    for _ in range(2):
        run_id = registry.start_run(client, experiment, "train")
        version, _ = registry.log_and_register(
            client, run_id, model, model_inputs(tracks.head(3)), "popularity", {"k": "v"}
        )
        versions.append(version)
    first = registry.apply_aliases(client, "popularity", versions[0], registry.decide_promotion(5.0, None, 0))
    second = registry.apply_aliases(client, "popularity", versions[1], registry.decide_promotion(6.0, 5.0, 0))
    assert first == ["challenger", "champion"] and second == ["challenger"]
    assert str(client.get_model_version_by_alias("popularity", "champion").version) == versions[0]

    previous = registry.promote_by_hand(client, "popularity", versions[1], "ana", "hotfix")
    assert previous == versions[0]
    promoted = client.get_model_version_by_alias("popularity", "champion")
    assert str(promoted.version) == versions[1]
    assert promoted.tags["promoted_by"] == "ana" and promoted.tags["promotion_reason"] == "hotfix"
    with pytest.raises(MlflowException):
        registry.promote_by_hand(client, "popularity", "99", "ana", "typo")
    assert str(client.get_model_version_by_alias("popularity", "champion").version) == versions[1]


def test_inputs_are_conformed_to_an_older_champions_signature(client: MlflowClient, tmp_path: Path) -> None:
    # A champion logged when integer columns were declared as doubles must still score raw integer rows.
    tracks = synthetic_tracks(300)
    model = fit_popularity_model(tracks, LIGHTGBM.model_copy(update={"n_estimators": 10}), seed=0)
    as_doubles = model_inputs(tracks.head(5)).astype({"duration_ms": "float64", "key": "float64"})
    experiment = registry.ensure_experiment(client, "old", tmp_path / "artifacts")
    run_id = registry.start_run(client, experiment, "train")
    _, uri = registry.log_and_register(client, run_id, model, as_doubles, "popularity", {})
    loaded = mlflow.pyfunc.load_model(uri)
    raw = model_inputs(tracks.head(20))
    assert raw["duration_ms"].dtype == "int64"
    with pytest.raises(MlflowException):
        loaded.predict(raw)
    predictions = loaded.predict(registry.conform_to_signature(raw, loaded))
    assert len(predictions) == 20
    assert raw["duration_ms"].dtype == "int64"  # the caller's frame is not touched
