"""What every model family is: how it builds, fits and early-stops an estimator for a task kind, the device it
trains on, and the project's thread budget per fit."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from components.tasks import TASK_KINDS, TaskKind

if TYPE_CHECKING:
    import optuna

MAX_THREADS = 2  # the project's budget of cores per fit


def resolve_device(device: Literal["auto", "cpu", "cuda"]) -> str:
    """The device to train on: cuda only when torch sees a GPU; cuda requested without one falls back to
    the CPU with a warning, never an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "cpu":
        return "cpu"
    import torch  # imported here: torch is heavy and only needed to answer this question

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        warnings.warn("device 'cuda' requested but CUDA is not available: using the CPU", stacklevel=2)
    return "cpu"


class Family(ABC):
    """One model family. `defaults` lists every parameter build accepts (the keys of the YAML space) with
    the value used when a params dict leaves it out."""

    name: ClassVar[str]
    needs_scaling: ClassVar[bool] = False  # trees are scale-free; the MLP needs standardised inputs
    extra_feature_groups: ClassVar[tuple[str, ...]] = ()  # feature groups this family wants on top
    defaults: ClassVar[Mapping[str, Any]]
    # The parameter counting boosting iterations or epochs, which early stopping cuts short (None: the
    # family does not iterate). Its tuned value is a ceiling; the final fit finds the count to use.
    iterations_param: ClassVar[str | None] = None
    # The early-stopping window (iterations or epochs without improvement before a fit stops); tuning
    # prunes a lagging trial only once it has stalled for half of it (components.trials.StallMedianPruner).
    patience_param: ClassVar[str | None] = None

    @property
    def param_names(self) -> frozenset[str]:
        return frozenset(self.defaults)

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - self.param_names)
        if unknown:
            raise ValueError(
                f"{self.name}: unknown parameters {unknown}; accepted {sorted(self.param_names)}"
            )
        return {**self.defaults, **params}

    @staticmethod
    def n_outputs(task: TaskKind, n_classes: int | None) -> int:
        """The class count a classifier is built for (2 for binary; required for multiclass)."""
        if task == "regression":
            return 1
        if task == "binary":
            if n_classes not in (None, 2):
                raise ValueError(f"binary task with n_classes={n_classes}")
            return 2
        if task == "multiclass":
            if n_classes is None or n_classes < 2:
                raise ValueError("multiclass task needs n_classes >= 2 (labels 0..n_classes-1)")
            return int(n_classes)
        raise ValueError(f"unknown task kind {task!r}; known {TASK_KINDS}")

    @abstractmethod
    def build(
        self, task: TaskKind, params: Mapping[str, Any], seed: int, device: str, n_classes: int | None = None
    ) -> Any:
        """A fresh unfitted estimator with the scikit-learn API (predict; predict_proba for classifiers)."""

    @abstractmethod
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
        """Fit; with eval_set, early-stop on it; with a trial too, report each iteration and prune."""

    def kept_iterations(self, estimator: Any) -> int | None:
        """How many iterations (or epochs) the last fit with an eval set kept: the best one, counted from 1.
        None when the family does not iterate or the fit had no eval set."""
        return None

    def __repr__(self) -> str:
        return f"<family {self.name}>"
