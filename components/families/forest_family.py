"""The random forest family (scikit-learn): no iterations to stop early; the classifier keeps every class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from components.families.base import MAX_THREADS, Family
from components.families.estimators import FixedClassesClassifier
from components.tasks import TaskKind

if TYPE_CHECKING:
    import optuna


class RandomForestFamily(Family):
    name = "random_forest"
    defaults: ClassVar[Mapping[str, Any]] = {
        "n_estimators": 100,
        "max_depth": 16,
        "min_samples_leaf": 5,
        "max_features": 0.3,
        "max_samples": 0.7,
    }

    def build(
        self, task: TaskKind, params: Mapping[str, Any], seed: int, device: str, n_classes: int | None = None
    ) -> Any:
        p = self.resolve_params(params)
        k = self.n_outputs(task, n_classes)
        common = {**p, "random_state": seed, "n_jobs": MAX_THREADS}
        if task == "regression":
            return RandomForestRegressor(**common)
        return FixedClassesClassifier(RandomForestClassifier(**common), n_classes=k)

    def fit(
        self,
        estimator: Any,
        X: Any,
        y: np.ndarray,
        *,
        sample_weight: np.ndarray | None = None,
        eval_set: tuple[Any, np.ndarray] | None = None,
        trial: optuna.Trial | None = None,
    ) -> Any:
        # No iterations to stop early or prune: tuning reports and prunes once per fold.
        return estimator.fit(X, y, sample_weight=sample_weight)
