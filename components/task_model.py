"""What gets logged and registered per task: one object that takes raw rows and answers in task terms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from components.calibration import ProbabilityCalibrator
from components.inference import CachedAnswers, FeatureCache
from components.schema import GENRE, InputArrays
from components.tasks import TASK_SPECS, TaskName

if TYPE_CHECKING:
    from components.name_genres import NamePrior


class BlendModel(BaseEstimator):
    """The mean of several fitted pipelines' outputs (probabilities for classifiers)."""

    def __init__(self, members: Sequence[Any], kind: str):
        self.members = members
        self.kind = kind

    @staticmethod
    def combine(outputs: Sequence[np.ndarray]) -> np.ndarray:
        """The blend's answer from its members' outputs (predictions or class probabilities)."""
        return np.mean(outputs, axis=0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return CachedAnswers(self, FeatureCache()).predict(X)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return CachedAnswers(self, FeatureCache()).predict_proba(X)


class TaskModel(BaseEstimator):
    """A fitted pipeline (or blend) for one task, answering on raw rows:

    popularity -> predicted popularity in [0, 100]; hit -> probability of a hit; genre -> the top-1 genre
    name (`predict_proba` gives every genre's probability in `classes` order).

    `fallback`, for the tasks that read the genre, is the same family fitted on the same rows with the genre
    withheld: rows without a genre go to it. A model trained with the true genre and handed a guessed one
    does worse than one that never saw a genre (the guess is right for about a fifth of unseen artists), so
    a row without a genre is answered by the model that learned without one.

    `calibrator` and `fallback_calibrator` (binary tasks; components/calibration.py) map the estimator's and
    the fallback's probabilities to calibrated ones; they were fitted on out-of-fold outputs of the training
    rows. Explanations stay on the uncalibrated margin (a monotone map keeps their order).

    `names_prior` (the genre task; components/name_genres.py) pools the class probabilities with a naive
    Bayes classifier of the genre from the names, with the weight fitted on out-of-fold outputs.
    """

    def __init__(
        self,
        task: TaskName,
        estimator: Any,
        classes: Sequence[str] | None = None,
        family: str = "",
        fallback: Any | None = None,
        background: pd.DataFrame | None = None,
        calibrator: ProbabilityCalibrator | None = None,
        fallback_calibrator: ProbabilityCalibrator | None = None,
        names_prior: NamePrior | None = None,
    ):
        self.task = task
        self.estimator = estimator
        self.classes = classes
        self.family = family
        self.fallback = fallback
        # A few seeded training rows (model inputs): what per-prediction explanations of a member without
        # native SHAP values compare a row against (components/explain.py).
        self.background = background
        self.calibrator = calibrator
        self.fallback_calibrator = fallback_calibrator
        self.names_prior = names_prior

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Models pickled before the genre-free fallback (background rows, calibrators) existed load without.
        defaults = {
            "fallback": None,
            "background": None,
            "calibrator": None,
            "fallback_calibrator": None,
            "names_prior": None,
        }
        super().__setstate__({**defaults, **state})

    def reasons(self, X: pd.DataFrame | InputArrays, k: int, seed: int = 0) -> list[list[dict[str, Any]]]:
        """Per row, the k raw input columns that moved its answer most (components/explain.py), from the
        model that answers the row: the estimator, or the genre-free fallback for a row without a genre."""
        from components.explain import explain

        # The task's own input columns, as `outputs` reads them (the genre task never sees a given genre).
        inputs = self._inputs(X, FeatureCache())
        absent = self._absent(inputs)
        kind = TASK_SPECS[self.task].kind
        out: list[list[dict[str, Any]]] = [[] for _ in range(len(inputs))]
        for is_absent in (False, True):
            positions = np.flatnonzero(absent == is_absent)
            if not len(positions):
                continue
            estimator = self.fallback if is_absent else self.estimator
            background = self.background
            if background is not None and is_absent and GENRE in background.columns:
                background = background.assign(**{GENRE: None})
            rows = inputs.take(positions).frame()
            for position, reasons in zip(
                positions, explain(estimator, rows, kind, seed, background).reasons(k), strict=True
            ):
                out[position] = reasons
        return out

    def _inputs(self, X: pd.DataFrame | InputArrays, cache: FeatureCache) -> InputArrays:
        return cache.inputs(X, tuple(TASK_SPECS[self.task].input_columns))

    def without_genre(self, X: pd.DataFrame) -> np.ndarray:
        """The rows the genre-free fallback answers: those without a genre (none without a fallback)."""
        return self._absent(InputArrays.of(X, TASK_SPECS[self.task].input_columns))

    def _absent(self, inputs: InputArrays) -> np.ndarray:
        if self.fallback is None or GENRE not in inputs:
            return np.zeros(len(inputs), dtype=bool)
        return pd.isna(inputs[GENRE])

    def outputs(
        self, X: pd.DataFrame | InputArrays, cache: FeatureCache | None = None, calibrated: bool = True
    ) -> np.ndarray:
        """What the task's spec scores (class probabilities, or predictions) for raw rows: the estimator's,
        or the fallback's for rows without a genre, each through its calibrator and names prior unless
        `calibrated` is off.
        `cache`, shared by the models answering one batch, featurizes once per distinct featurizer
        (components/inference.py)."""
        cache = cache or FeatureCache()
        output = TASK_SPECS[self.task].output

        def answered(estimator: Any, calibrator: ProbabilityCalibrator | None, rows: InputArrays) -> Any:
            out = np.asarray(output(CachedAnswers(estimator, cache), rows))
            if not calibrated:
                return out
            if calibrator is not None:
                out = calibrator.proba(out)
            return out if self.names_prior is None else self.names_prior.pool(out, rows, cache.shared(rows))

        inputs = self._inputs(X, cache)
        absent = self._absent(inputs)
        if not absent.any():
            return answered(self.estimator, self.calibrator, inputs)
        if absent.all():
            return answered(self.fallback, self.fallback_calibrator, inputs)
        given = answered(self.estimator, self.calibrator, cache.subset(inputs, ~absent))
        out = np.empty((len(inputs), *given.shape[1:]), dtype=given.dtype)
        out[~absent] = given
        out[absent] = answered(self.fallback, self.fallback_calibrator, cache.subset(inputs, absent))
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if TASK_SPECS[self.task].kind == "regression":
            raise AttributeError(f"the {self.task} model is a regressor")
        return self.outputs(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The task's answer for raw rows, as its spec defines it (components/tasks.py)."""
        return self.answer(self.outputs(X))

    def answer(self, outputs: np.ndarray) -> np.ndarray:
        """The task's answer (what scoring writes) from `outputs`."""
        return TASK_SPECS[self.task].answer(outputs, self.classes)
