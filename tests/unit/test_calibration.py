"""Calibrators fitted on out-of-fold probabilities: they repair a miscalibrated model, keep its ranking
(sigmoid), and a TaskModel applies the estimator's and the fallback's own."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from components.calibration import ProbabilityCalibrator
from components.evaluation import expected_calibration_error


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn with probability p, and a model that reports p pushed towards 0 and 1."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.6, n)
    y = (rng.uniform(size=n) < p).astype("int64")
    logit = np.log(p / (1 - p))
    return 1 / (1 + np.exp(-(2.5 * logit + 0.8))), y


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_a_calibrator_fitted_on_held_out_scores_repairs_new_ones(method: str) -> None:
    fit_scores, fit_y = _overconfident(20_000, seed=1)
    scores, y = _overconfident(20_000, seed=2)
    calibrator = ProbabilityCalibrator.fit(fit_scores, fit_y, method)  # type: ignore[arg-type]
    before, after = expected_calibration_error(y, scores), expected_calibration_error(y, calibrator(scores))
    assert before > 0.08 and after < 0.02, (before, after)
    assert calibrator.fitted_rows == 20_000
    if method == "sigmoid":  # monotone: the ranking, hence ROC-AUC, is the model's own
        assert roc_auc_score(y, calibrator(scores)) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
        assert calibrator.slope == pytest.approx(1 / 2.5, rel=0.1)
    proba = calibrator.proba(np.column_stack([1 - scores, scores]))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], calibrator(scores))


def test_bad_calibration_rows_are_named() -> None:
    with pytest.raises(ValueError, match="both classes"):
        ProbabilityCalibrator.fit(np.array([0.2, 0.4]), np.array([1, 1]), "sigmoid")
    with pytest.raises(ValueError, match="NaN"):
        ProbabilityCalibrator.fit(np.array([0.2, np.nan]), np.array([0, 1]), "sigmoid")
    with pytest.raises(ValueError, match="unknown calibration method"):
        ProbabilityCalibrator.fit(np.array([0.2, 0.4]), np.array([0, 1]), "platt")  # type: ignore[arg-type]


class _Constant:
    """A fitted binary 'pipeline' answering one probability for every row."""

    def __init__(self, p: float):
        self.p = p

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.tile([1 - self.p, self.p], (len(X), 1))


def test_a_task_model_calibrates_each_row_by_the_model_that_answers_it() -> None:
    from components.schema import GENRE
    from components.task_model import TaskModel
    from components.tasks import TASK_SPECS

    halve = ProbabilityCalibrator("sigmoid", slope=1.0, intercept=float(np.log(0.5)))  # odds halved
    double = ProbabilityCalibrator("sigmoid", slope=1.0, intercept=float(np.log(2.0)))
    model = TaskModel("hit", _Constant(0.5), None, "constant", _Constant(0.2), None, halve, double)
    rows = pd.DataFrame({c: [0.5, 0.5, 0.5] for c in TASK_SPECS["hit"].input_columns})
    rows[GENRE] = ["pop", None, "rock"]
    out = model.outputs(rows)
    np.testing.assert_allclose(out[:, 1], [1 / 3, 1 / 3, 1 / 3])  # 0.5 at half odds; 0.2 at double odds
    np.testing.assert_allclose(model.outputs(rows, calibrated=False)[:, 1], [0.5, 0.2, 0.5])
    np.testing.assert_allclose(model.predict(rows), out[:, 1])
    # A model pickled before calibrators existed answers uncalibrated.
    state = pickle.loads(pickle.dumps(model)).__dict__
    old = TaskModel.__new__(TaskModel)
    old.__setstate__({k: v for k, v in state.items() if k not in ("calibrator", "fallback_calibrator")})
    np.testing.assert_allclose(old.outputs(rows)[:, 1], [0.5, 0.2, 0.5])
