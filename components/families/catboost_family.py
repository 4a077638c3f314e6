"""The CatBoost family: ordered boosting (on the GPU with device cuda), early stopping and per-iteration
pruning."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import catboost as cb
import numpy as np

from components.families.base import MAX_THREADS, Family
from components.families.estimators import CatBoostFixedClassifier
from components.tasks import TaskKind

if TYPE_CHECKING:
    import optuna


class CatBoostFamily(Family):
    name = "catboost"
    iterations_param = "iterations"
    patience_param = "early_stopping_rounds"
    defaults: ClassVar[Mapping[str, Any]] = {
        "iterations": 300,
        "learning_rate": 0.1,
        "depth": 6,
        "l2_leaf_reg": 3.0,
        "random_strength": 1.0,
        "bagging_temperature": 1.0,
        "border_count": 128,
        "early_stopping_rounds": 30,
    }
    _metric: ClassVar[dict[str, str]] = {
        "regression": "RMSE",
        "binary": "Logloss",
        "multiclass": "MultiClass",
    }

    def build(
        self, task: TaskKind, params: Mapping[str, Any], seed: int, device: str, n_classes: int | None = None
    ) -> Any:
        p = self.resolve_params(params)
        k = self.n_outputs(task, n_classes)
        common = {
            **p,
            "loss_function": self._metric[task],
            "eval_metric": self._metric[task],
            "random_seed": seed,
            "thread_count": MAX_THREADS,
            "task_type": "GPU" if device == "cuda" else "CPU",
            "allow_writing_files": False,  # no catboost_info/ directory in the working tree
            "logging_level": "Silent",
        }
        if task == "regression":
            return cb.CatBoostRegressor(**common)
        return CatBoostFixedClassifier(class_names=list(range(k)), **common)

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
            estimator.set_params(early_stopping_rounds=None)
            return estimator.fit(X, y, sample_weight=sample_weight)
        pruning = None
        # CatBoost runs no Python callbacks on the GPU: there, only fold-level pruning applies.
        if trial is not None and estimator.get_params().get("task_type") != "GPU":
            from optuna.exceptions import ExperimentalWarning
            from optuna_integration import CatBoostPruningCallback

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                pruning = CatBoostPruningCallback(trial, estimator.get_params()["eval_metric"])
        estimator.fit(
            X,
            y,
            sample_weight=sample_weight,
            eval_set=(eval_set[0], np.asarray(eval_set[1])),
            use_best_model=True,
            callbacks=[pruning] if pruning is not None else None,
        )
        if pruning is not None:
            pruning.check_pruned()  # CatBoost cannot raise from a callback: it stops, and we raise here
        return estimator

    def kept_iterations(self, estimator: Any) -> int | None:
        best = estimator.get_best_iteration()  # 0-based; None without an eval set
        return None if best is None else int(best) + 1
