"""Models saved by older code still load and score: tests/fixtures holds two blends (every model family,
classifiers and regressors) pickled by commit saved_by_commit of saved_models.json, before the families and
task modules were restructured, so with the classes' module paths of that time. Registered champions are
pickles like these: after any move of a model class, they must load, warn where an old path is used, and
answer as they did."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from components.schema import model_inputs
from tests.builders import synthetic_tracks

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAVED = json.loads((FIXTURES / "saved_models.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("task", sorted(SAVED["models"]))
def test_a_model_saved_by_older_code_loads_and_answers_the_same(task: str) -> None:
    with (FIXTURES / f"{task}_blend.pkl").open("rb") as handle, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model = pickle.load(handle)  # our own fixture, written by this project's code
    moved = [str(w.message) for w in seen if issubclass(w.category, DeprecationWarning)]
    if task == "hit":  # its classifiers' classes moved to components.families.estimators
        assert any("components.families.estimators.LGBMFixedClassifier" in m for m in moved), moved
    assert [m.named_steps["model"].__class__.__name__ for m in model.estimator.members]
    rows = model_inputs(synthetic_tracks(300, seed=3).head(20))
    expected = np.asarray(SAVED["models"][task]["predictions"])
    assert np.asarray(model.predict(rows), dtype="float64") == pytest.approx(expected, abs=1e-8)


class _Constant:
    """An estimator that answers one number, whatever the rows."""

    def __init__(self, value: float):
        self.value = value

    def predict(self, X) -> np.ndarray:
        return np.full(len(X), self.value)


def test_rows_without_a_genre_are_answered_by_the_genre_free_fallback() -> None:
    from components.task_model import TaskModel

    rows = model_inputs(synthetic_tracks(300, seed=3).head(6))
    rows.loc[[1, 4], "track_genre"] = None
    model = TaskModel("popularity", _Constant(10.0), fallback=_Constant(20.0))
    assert model.predict(rows).tolist() == [10.0, 20.0, 10.0, 10.0, 20.0, 10.0]
    assert model.without_genre(rows).tolist() == [False, True, False, False, True, False]
    assert model.predict(rows.assign(track_genre=None)).tolist() == [20.0] * 6
    # Without a fallback (models trained before it existed) every row goes to the one estimator.
    assert TaskModel("popularity", _Constant(10.0)).predict(rows).tolist() == [10.0] * 6
