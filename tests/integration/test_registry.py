"""MLflow in one place (trackflow/tracking.py): runs that end FAILED when their body raises, the gate's
decision (components/promotion.py), registration behind it with the model's own description, promotion by
hand, and an older champion's signature conformed to."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pytest
from mlflow.exceptions import MlflowException

from components.baseline import fit_baseline
from components.features import DEFAULT_GROUPS
from components.promotion import decide_promotion
from components.schema import model_inputs
from components.scoring import conform_to_signature
from tests.builders import synthetic_tracks
from tests.conftest import make_project, repo_params
from trackflow.paths import ProjectPaths
from trackflow.stages.common import params_for
from trackflow.tracking import Gate, Tracker, log_model, promote_by_hand, register_behind_gate


def test_promotion_gate_both_ways() -> None:
    assert decide_promotion(10.0, None, 0.5).promote
    assert decide_promotion(9.0, 10.0, 0.5).promote
    kept = decide_promotion(9.8, 10.0, 0.5)
    assert not kept.promote and "champion kept" in kept.reason
    assert not decide_promotion(10.0, 10.0, 0.0).promote  # a tie keeps the champion
    # Higher-is-better metrics (ROC-AUC, accuracy) turn the comparison around.
    assert decide_promotion(0.80, 0.75, 0.01, "roc_auc", lower_is_better=False).promote
    worse = decide_promotion(0.70, 0.75, 0.0, "roc_auc", lower_is_better=False)
    assert not worse.promote and "roc_auc" in worse.reason


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    paths = ProjectPaths.at(make_project(tmp_path))
    return Tracker.for_project(paths, params_for(paths))


def _baseline(n: int = 400) -> tuple[object, object]:
    tracks = synthetic_tracks(n)
    params = repo_params().ablation.lightgbm
    return fit_baseline(tracks, params.model_copy(update={"n_estimators": 10}), 0, DEFAULT_GROUPS), tracks


def test_a_run_ends_failed_when_its_block_raises(tracker: Tracker) -> None:
    with pytest.raises(RuntimeError, match="stage broke"), tracker.run("broken") as run:
        raise RuntimeError("stage broke")
    assert tracker.client.get_run(run.id).info.status == "FAILED"
    with tracker.run("fine", tags={"stage": "x"}) as done:
        done.status = "KILLED"  # a pruned trial, say
    assert tracker.client.get_run(done.id).info.status == "KILLED"


def test_register_behind_the_gate_then_promote_by_hand(tracker: Tracker) -> None:
    model, tracks = _baseline()
    example = model_inputs(tracks.head(3))
    gate = Gate("rmse", lower_is_better=True, margin=0.0)
    registered: list[dict] = []
    champion_score = None  # what the current champion scores: the gate loads and scores it for real
    for score in (5.0, 6.0, 4.0):
        with tracker.run("train") as run:
            result = register_behind_gate(
                tracker,
                run.id,
                name="popularity",
                description="Track popularity (0-100) from raw track rows",
                model=model,
                input_example=example,
                tags={"k": "v"},
                gate=gate,
                challenger_score=score,
                score_champion=lambda champion, known=champion_score: (
                    known if champion.predict(example).size else 0
                ),
            )
        registered.append(result)
        if "champion" in result["aliases"]:
            champion_score = score
    assert [r["aliases"] for r in registered] == [
        ["challenger", "champion"],
        ["challenger"],
        ["challenger", "champion"],
    ]
    assert "champion kept" in registered[1]["promotion"] and registered[2]["promotion"].startswith("promoted")
    assert tracker.client.get_registered_model("popularity").description.startswith("Track popularity")
    versions = [r["version"] for r in registered]
    assert str(tracker.champion("popularity").version) == versions[2]

    previous = promote_by_hand(tracker.client, "popularity", versions[1], "ana", "hotfix")
    assert previous == versions[2]
    promoted = tracker.champion("popularity")
    assert str(promoted.version) == versions[1]
    assert promoted.tags["promoted_by"] == "ana" and promoted.tags["promotion_reason"] == "hotfix"
    with pytest.raises(MlflowException):
        promote_by_hand(tracker.client, "popularity", "99", "ana", "typo")
    assert str(tracker.champion("popularity").version) == versions[1]


def test_a_champion_that_cannot_score_today_stays(tracker: Tracker) -> None:
    model, tracks = _baseline()
    kwargs = {
        "name": "popularity",
        "description": "d",
        "model": model,
        "input_example": model_inputs(tracks.head(3)),
        "tags": {},
        "gate": Gate("rmse", True, 0.0),
    }
    with tracker.run("first") as run:
        register_behind_gate(tracker, run.id, challenger_score=9.0, score_champion=lambda _: 0.0, **kwargs)

    def broken(_champion: object) -> float:
        raise ValueError("columns changed")

    with tracker.run("second") as run:
        second = register_behind_gate(tracker, run.id, challenger_score=1.0, score_champion=broken, **kwargs)
    assert second["aliases"] == ["challenger"] and "could not be evaluated" in second["promotion"]
    assert "columns changed" in second["champion_unscorable"]
    assert str(tracker.champion("popularity").version) == "1"


def test_inputs_are_conformed_to_an_older_champions_signature(tracker: Tracker) -> None:
    # A champion logged when integer columns were declared as doubles must still score raw integer rows.
    model, tracks = _baseline(300)
    as_doubles = model_inputs(tracks.head(5)).astype({"duration_ms": "float64", "key": "float64"})
    with tracker.run("old") as run:
        uri = log_model(run.id, model, as_doubles)
    loaded = mlflow.pyfunc.load_model(uri)
    raw = model_inputs(tracks.head(20))
    assert raw["duration_ms"].dtype == "int64"
    with pytest.raises(MlflowException):
        loaded.predict(raw)
    predictions = loaded.predict(conform_to_signature(raw, loaded))
    assert len(predictions) == 20
    assert raw["duration_ms"].dtype == "int64"  # the caller's frame is not touched
