"""Probability calibration of a binary model, fitted on out-of-fold outputs (the training rows' CV folds,
never the holdout): Platt's sigmoid on the log-odds, or an isotonic step function.

A calibrator is plain numbers (no fitted scikit-learn object), so it pickles with the model it belongs to and
maps a batch with numpy alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

CalibrationMethod = Literal["sigmoid", "isotonic"]

# Log-odds of probabilities this close to 0 or 1 stay finite.
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype="float64"), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class ProbabilityCalibrator:
    """Maps a model's probability of the positive class to a calibrated one.

    sigmoid: p' = 1 / (1 + exp(-(slope * logit(p) + intercept))), monotone, so rankings (ROC-AUC) are kept;
    isotonic: a non-decreasing step function through `knots_x` / `knots_y` (np.interp between them)."""

    method: CalibrationMethod
    slope: float = 1.0
    intercept: float = 0.0
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()
    fitted_rows: int = 0

    @classmethod
    def fit(cls, scores: np.ndarray, y: np.ndarray, method: CalibrationMethod) -> ProbabilityCalibrator:
        """Fit on out-of-fold probabilities `scores` of rows labelled `y` (0/1); both classes must occur."""
        scores = np.asarray(scores, dtype="float64")
        y = np.asarray(y).astype("int64")
        if scores.shape != y.shape or scores.ndim != 1:
            raise ValueError(f"calibration: one score per label: {scores.shape} scores, {y.shape} labels")
        if np.isnan(scores).any():
            raise ValueError("calibration scores hold NaN: not every row has an out-of-fold output")
        if len(np.unique(y)) != 2:
            raise ValueError("calibration needs both classes among its rows")
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
            return cls(
                method,
                knots_x=tuple(float(v) for v in iso.X_thresholds_),
                knots_y=tuple(float(v) for v in iso.y_thresholds_),
                fitted_rows=len(y),
            )
        if method != "sigmoid":
            raise ValueError(f"unknown calibration method {method!r}: sigmoid or isotonic")
        from sklearn.linear_model import LogisticRegression

        # Unpenalised: two parameters on thousands of rows need no shrinkage.
        platt = LogisticRegression(penalty=None, solver="lbfgs", max_iter=1000)
        platt.fit(_logit(scores).reshape(-1, 1), y)
        return cls(
            method, slope=float(platt.coef_[0, 0]), intercept=float(platt.intercept_[0]), fitted_rows=len(y)
        )

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of the positive class for these scores."""
        scores = np.asarray(scores, dtype="float64")
        if self.method == "isotonic":
            return np.interp(scores, self.knots_x, self.knots_y)
        return 1.0 / (1.0 + np.exp(-(self.slope * _logit(scores) + self.intercept)))

    def proba(self, proba: np.ndarray) -> np.ndarray:
        """Two-column class probabilities (negative, positive), calibrated; a new array."""
        positive = self(np.asarray(proba)[:, 1])
        return np.column_stack([1.0 - positive, positive])

    def as_dict(self) -> dict[str, object]:
        """What the metrics record of it."""
        if self.method == "isotonic":
            return {"method": self.method, "knots": len(self.knots_x), "rows": self.fitted_rows}
        return {
            "method": self.method,
            "slope": round(self.slope, 6),
            "intercept": round(self.intercept, 6),
            "rows": self.fitted_rows,
        }
