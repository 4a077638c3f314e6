"""The XGBoost family: histogram gradient boosting (on the GPU with device cuda), early stopping and
per-iteration pruning."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import xgboost as xgb

from components.families.base import MAX_THREADS, Family
from components.families.estimators import XGBFixedClassifier
from components.tasks import TaskKind

if TYPE_CHECKING:
    import optuna


class XGBoostFamily(Family):
    name = "xgboost"
    iterations_param = "n_estimators"
    patience_param = "early_stopping_rounds"
    defaults: ClassVar[Mapping[str, Any]] = {
        "n_estimators": 300,
        "learning_rate": 0.1,
        "max_depth": 6,
        "min_child_weight": 1.0,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "reg_alpha": 0.0,
        "max_bin": 256,
        "early_stopping_rounds": 30,
    }
    _metric: ClassVar[dict[str, str]] = {"regression": "rmse", "binary": "logloss", "multiclass": "mlogloss"}

    def build(
        self, task: TaskKind, params: Mapping[str, Any], seed: int, device: str, n_classes: int | None = None
    ) -> Any:
        p = self.resolve_params(params)
        k = self.n_outputs(task, n_classes)
        common = {
            **p,
            "eval_metric": self._metric[task],
            "tree_method": "hist",
            "device": "cuda" if device == "cuda" else "cpu",
            "random_state": seed,
            "n_jobs": MAX_THREADS,
            "verbosity": 0,
        }
        if task == "regression":
            return xgb.XGBRegressor(objective="reg:squarederror", **common)
        if task == "binary":
            return XGBFixedClassifier(objective="binary:logistic", **common)
        return XGBFixedClassifier(objective="multi:softprob", num_class=k, **common)

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
        if eval_set is None:
            # XGBoost refuses early stopping without a validation set.
            estimator.set_params(early_stopping_rounds=None)
            return estimator.fit(X, y, sample_weight=sample_weight, verbose=False)
        callbacks = None
        if trial is not None:
            from optuna_integration import XGBoostPruningCallback

            key = f"validation_0-{estimator.get_params()['eval_metric']}"
            callbacks = [XGBoostPruningCallback(trial, key)]
        estimator.set_params(callbacks=callbacks)
        try:
            estimator.fit(X, y, sample_weight=sample_weight, eval_set=[eval_set], verbose=False)
        finally:
            # The callback holds the trial (and its storage): keep it out of the fitted, picklable model.
            estimator.set_params(callbacks=None)
        return estimator

    def kept_iterations(self, estimator: Any) -> int | None:
        try:
            return int(estimator.best_iteration) + 1  # 0-based; absent without early stopping
        except AttributeError:
            return None
