"""The LightGBM family: gradient-boosted trees (deterministic, row-wise), early stopping and per-iteration
pruning through LightGBM's own callbacks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import lightgbm as lgb
import numpy as np

from components.families.base import MAX_THREADS, Family
from components.families.estimators import LGBMFixedClassifier
from components.tasks import TaskKind

if TYPE_CHECKING:
    import optuna


class LightGBMFamily(Family):
    name = "lightgbm"
    iterations_param = "n_estimators"
    patience_param = "early_stopping_rounds"
    defaults: ClassVar[Mapping[str, Any]] = {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        # LightGBM's default, not searched: a fixed-parameter fit may raise it (params.yaml train.baseline).
        "min_child_weight": 1e-3,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "reg_alpha": 0.0,
        "early_stopping_rounds": 30,
        # Not searched; a fixed-parameter fit (the ablation baseline, params.yaml) may set it.
        "n_jobs": MAX_THREADS,
    }
    _metric: ClassVar[dict[str, str]] = {
        "regression": "rmse",
        "binary": "binary_logloss",
        "multiclass": "multi_logloss",
    }

    def build(
        self, task: TaskKind, params: Mapping[str, Any], seed: int, device: str, n_classes: int | None = None
    ) -> Any:
        p = self.resolve_params(params)
        k = self.n_outputs(task, n_classes)
        common = {
            **{key: value for key, value in p.items() if key != "early_stopping_rounds"},
            # LightGBM's own early stopping; turned off by fit when there is no eval set.
            "early_stopping_round": int(p["early_stopping_rounds"]),
            "metric": self._metric[task],
            "random_state": seed,
            "deterministic": True,  # with force_row_wise: bit-identical results for the same seed
            "force_row_wise": True,
            "verbose": -1,
        }
        # LightGBM's GPU build is optional and rarely installed: it stays on the CPU whatever `device`.
        if task == "regression":
            return lgb.LGBMRegressor(objective="regression", **common)
        if task == "binary":
            return LGBMFixedClassifier(objective="binary", **common)
        return LGBMFixedClassifier(objective="multiclass", num_class=k, **common)

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
        kwargs: dict[str, Any] = {"sample_weight": sample_weight}
        callbacks: list[Any] = []
        if eval_set is None:
            estimator.set_params(early_stopping_round=0)
        else:
            kwargs.update(eval_X=(eval_set[0],), eval_y=(np.asarray(eval_set[1]),))
            if trial is not None:
                from optuna_integration import LightGBMPruningCallback

                callbacks.append(LightGBMPruningCallback(trial, estimator.get_params()["metric"]))
        return estimator.fit(X, y, callbacks=callbacks or None, **kwargs)

    def kept_iterations(self, estimator: Any) -> int | None:
        best = int(getattr(estimator, "best_iteration_", 0) or 0)  # 1-based; 0 without early stopping
        return best or None
