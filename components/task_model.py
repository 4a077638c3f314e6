"""What gets logged and registered per task: one object that takes raw rows and answers in task terms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from components.schema import model_inputs
from components.tasks import TASK_SPECS, TaskName


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
        return self.combine([m.predict(X) for m in self.members])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.combine([m.predict_proba(X) for m in self.members])


class TaskModel(BaseEstimator):
    """A fitted pipeline (or blend) for one task, answering on raw rows:

    popularity -> predicted popularity in [0, 100]; hit -> probability of a hit; genre -> the top-1 genre
    name (`predict_proba` gives every genre's probability in `classes` order).
    """

    def __init__(
        self, task: TaskName, estimator: Any, classes: Sequence[str] | None = None, family: str = ""
    ):
        self.task = task
        self.estimator = estimator
        self.classes = classes
        self.family = family

    def _inputs(self, X: pd.DataFrame) -> pd.DataFrame:

        return model_inputs(X, TASK_SPECS[self.task].input_columns)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if TASK_SPECS[self.task].kind == "regression":
            raise AttributeError(f"the {self.task} model is a regressor")
        return np.asarray(self.estimator.predict_proba(self._inputs(X)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The task's answer for raw rows, as its spec defines it (components/tasks.py)."""
        spec = TASK_SPECS[self.task]
        return spec.answer(spec.output(self.estimator, self._inputs(X)), self.classes)
