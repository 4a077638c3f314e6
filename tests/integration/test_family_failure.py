"""Tuning at the stage level: one model family failing is logged and does not stop the others, all failing
fails the run; the tuning profile picks the search space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from components import families
from flows.training import training
from tests.conftest import make_project, prepared
from trackflow.stages.common import params_for
from trackflow.stages.training import TrainingError
from trackflow.stages.tune import tune_family, tune_task


class BrokenFamily(families.RandomForestFamily):
    name = "broken"

    def fit(self, estimator: Any, X: Any, y: np.ndarray, **kwargs: Any) -> Any:
        raise RuntimeError("simulated failure inside the broken family")


@pytest.fixture
def broken_project(tmp_path: Path, sample_csv: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(families.FAMILIES, "broken", BrokenFamily())
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TRACKS_CSV", str(sample_csv))
    root = make_project(tmp_path, train__tasks=["popularity"], train__families=["random_forest", "broken"])
    spaces = yaml.safe_load((root / "configs" / "families.yaml").read_text())
    spaces["families"]["broken"] = spaces["families"]["random_forest"]
    (root / "configs" / "families.yaml").write_text(yaml.safe_dump(spaces))
    return root


def test_one_failing_family_does_not_stop_the_others(broken_project: Path, prefect_harness: None) -> None:
    result = training(root=str(broken_project), fetch=True)
    outcome = result["tasks"]["popularity"]
    assert list(outcome["failed"]) == ["broken"]
    assert outcome["evaluate"]["selected"] == "random_forest"
    assert outcome["register"]["aliases"] == ["challenger", "champion"]


def test_every_family_failing_fails_the_task(broken_project: Path) -> None:
    paths = prepared(broken_project)
    params = params_for(paths)
    broken_only = params.train.model_copy(update={"families": ("broken",)})
    only_broken = params.model_copy(update={"train": broken_only})
    with pytest.raises(TrainingError, match="every family failed"):
        tune_task(paths, only_broken, "popularity")
    failure = (broken_project / "data" / "tuning" / "popularity" / "broken.failed.json").read_text()
    assert "no completed trial (0 pruned, 2 failed)" in failure


def test_the_tuning_profile_picks_its_search_space(
    tmp_path: Path, sample_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--profile NAME` tunes the space of configs/families.yaml's `profiles.NAME.<task kind>` on top of the
    task kind's overrides; a profile that params.yaml does not have is refused before any trial runs."""
    monkeypatch.setenv("TRACKS_CSV", str(sample_csv))
    probe = {"n_trials": 1, "timeout_s": 60, "cv_folds": 2, "max_tune_rows": 1500, "max_train_rows": None}
    root = make_project(
        tmp_path, train__tasks=["genre"], train__families=["lightgbm"], train__profiles__probe=probe
    )
    spaces_yaml = root / "configs" / "families.yaml"
    spaces = yaml.safe_load(spaces_yaml.read_text())
    spaces["families"]["lightgbm"]["profiles"]["probe"] = {"multiclass": {"n_estimators": 7}}
    spaces_yaml.write_text(yaml.safe_dump(spaces))
    paths = prepared(root)
    params = params_for(paths)
    on_probe = params.model_copy(update={"train": params.train.model_copy(update={"profile": "probe"})})

    summary = tune_family(paths, on_probe, "genre", "lightgbm")
    assert summary["best_params"]["n_estimators"] == 7  # the profile's entry
    assert summary["best_params"]["early_stopping_rounds"] == 10  # the multiclass override below it

    spaces["families"]["lightgbm"]["profiles"]["probes"] = spaces["families"]["lightgbm"]["profiles"].pop(
        "probe"
    )
    spaces_yaml.write_text(yaml.safe_dump(spaces))
    with pytest.raises(ValueError, match=r"unknown tuning profiles \['probes'\]"):
        tune_family(paths, on_probe, "genre", "lightgbm")
