"""The registry of model families that tuning can search over, and their search spaces.

A family knows how to build a scikit-learn compatible estimator for a task kind from a flat parameter dict,
and how to fit it with early stopping on an eval set and Optuna pruning wired to the library's own
per-iteration hook. Adding a family is one `Family` subclass instance in `FAMILIES` plus one block in
configs/families.yaml (its search space); `load_search_spaces` checks that the two agree.

Classification labels are integer-encoded 0..K-1 by the caller. Every classifier here is built for all K
classes up front, so a label missing from a training fold still gets its (near-zero) column and
`predict_proba` always returns K columns in class order.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import catboost as cb
import lightgbm as lgb
import numpy as np
import xgboost as xgb
import yaml
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:
    import optuna

TaskKind = Literal["regression", "binary", "multiclass"]
TASK_KINDS: tuple[TaskKind, ...] = ("regression", "binary", "multiclass")
MAX_THREADS = 2  # the project's budget of cores per fit


# --- search spaces ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter's search range. A fixed value is a categorical with a single choice: Optuna
    records it in the trial's params (so best_params is complete) without searching it."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.type in ("int", "float"):
            if self.low is None or self.high is None:
                raise ValueError(f"{self.type} parameter needs low and high")
            for bound in (self.low, self.high, self.step):
                # YAML 1.1 reads `1e-3` as a string: say so rather than fail later inside Optuna.
                if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
                    raise ValueError(f"bound {bound!r} is not a number (write 0.001 or 1.0e-3, not 1e-3)")
            if self.low > self.high:
                raise ValueError(f"low {self.low} is above high {self.high}")
            if self.log and self.low <= 0:
                raise ValueError("a log-scale range needs low > 0")
            if self.log and self.step is not None:
                raise ValueError("step and log cannot be combined")
            if self.choices is not None:
                raise ValueError(f"{self.type} parameter takes low/high, not choices")
            if self.type == "int" and not all(
                float(v).is_integer() for v in (self.low, self.high, self.step or 1)
            ):
                raise ValueError("int parameter bounds and step must be integers")
        elif self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical parameter needs a non-empty list of choices")
            if any(v is not None for v in (self.low, self.high, self.step)) or self.log:
                raise ValueError("categorical parameter takes choices only")
            for choice in self.choices:
                if choice is not None and not isinstance(choice, bool | int | float | str):
                    raise ValueError(f"categorical choice {choice!r} must be None, bool, int, float or str")
        else:
            raise ValueError(f"unknown parameter type {self.type!r}: int, float or categorical")

    @classmethod
    def fixed(cls, value: Any) -> ParamSpec:
        return cls(type="categorical", choices=(value,))

    @property
    def is_fixed(self) -> bool:
        return self.type == "categorical" and self.choices is not None and len(self.choices) == 1


SearchSpace = dict[str, ParamSpec]
_SPEC_KEYS = {"type", "low", "high", "log", "step", "choices"}


def _parse_spec(where: str, raw: Any) -> ParamSpec:
    if not isinstance(raw, Mapping):
        if isinstance(raw, list):
            raise ValueError(f"{where}: a list is ambiguous; write {{type: categorical, choices: [...]}}")
        return ParamSpec.fixed(raw)  # a scalar is a fixed value
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; a range takes {sorted(_SPEC_KEYS)}")
    try:
        choices = raw.get("choices")
        return ParamSpec(
            type=raw.get("type", "categorical" if choices is not None else ""),
            low=raw.get("low"),
            high=raw.get("high"),
            log=bool(raw.get("log", False)),
            step=raw.get("step"),
            choices=tuple(choices) if choices is not None else None,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def load_search_spaces(
    path: Path | str,
    task: TaskKind | None = None,
    profile: str | None = None,
    known_profiles: Collection[str] | None = None,
) -> dict[str, SearchSpace]:
    """Read configs/families.yaml: family -> {param: ParamSpec}.

    Layout: `families: {<name>: {space: {...}, overrides: {<task kind>: {...}},
    profiles: {<tuning profile>: {<task kind>: {...}}}}}`. A parameter is either a range
    (`{type, low, high, log, step}` or `{type: categorical, choices}`) or a scalar (fixed). With `task`,
    that task's overrides replace or add entries (e.g. cheaper ranges for the 114-class task); with
    `profile` too, that profile's entries for the task go on top (e.g. wider ranges for `--profile full`).
    The file must name exactly the families of FAMILIES, only parameters each family's build accepts and,
    when `known_profiles` is given (train.profiles of params.yaml), only those profiles.
    """
    path = Path(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if set(raw) != {"families"}:
        raise ValueError(f"{path}: expected a single top-level key 'families', found {sorted(raw)}")
    blocks = raw["families"] or {}
    unknown_families = sorted(set(blocks) - set(FAMILIES))
    missing_families = sorted(set(FAMILIES) - set(blocks))
    if unknown_families or missing_families:
        raise ValueError(
            f"{path}: families must match the registry {sorted(FAMILIES)}: "
            f"unknown {unknown_families}, missing {missing_families}"
        )
    spaces: dict[str, SearchSpace] = {}
    for name, block in blocks.items():
        family = FAMILIES[name]
        block = block or {}
        extra_keys = sorted(set(block) - {"space", "overrides", "profiles"})
        if extra_keys:
            raise ValueError(
                f"{path}: {name}: unknown keys {extra_keys}; expected 'space', 'overrides' and 'profiles'"
            )
        by_profile = block.get("profiles") or {}
        if known_profiles is not None:
            bad_profiles = sorted(set(by_profile) - set(known_profiles))
            if bad_profiles:
                raise ValueError(
                    f"{path}: {name}.profiles: unknown tuning profiles {bad_profiles}; "
                    f"train.profiles has {sorted(known_profiles)}"
                )
        # Layers of per-task-kind entries: the task kind's overrides, then each profile's.
        layers = {"overrides": block.get("overrides")} | {
            f"profiles.{profile_name}": by_kind for profile_name, by_kind in by_profile.items()
        }
        # Every section is validated, not only the requested task's, so a typo fails whatever the task.
        sections = {"space": block.get("space") or {}}
        for layer, by_kind in layers.items():
            by_kind = by_kind or {}
            if not isinstance(by_kind, Mapping):
                raise ValueError(f"{path}: {name}.{layer}: expected task kind -> parameters, got {by_kind!r}")
            bad_tasks = sorted(set(by_kind) - set(TASK_KINDS))
            if bad_tasks:
                raise ValueError(
                    f"{path}: {name}.{layer}: unknown task kinds {bad_tasks}; known {TASK_KINDS}"
                )
            sections |= {f"{layer}.{kind}": entries or {} for kind, entries in by_kind.items()}
        parsed: dict[str, SearchSpace] = {}
        for section, entries in sections.items():
            unknown = sorted(set(entries) - family.param_names)
            if unknown:
                raise ValueError(
                    f"{path}: {name}.{section}: unknown parameters {unknown}; "
                    f"{name} accepts {sorted(family.param_names)}"
                )
            parsed[section] = {
                param: _parse_spec(f"{path}: {name}.{section}.{param}", spec)
                for param, spec in entries.items()
            }
        space = dict(parsed["space"])
        if task is not None:
            space.update(parsed.get(f"overrides.{task}", {}))
            if profile is not None:
                space.update(parsed.get(f"profiles.{profile}.{task}", {}))
        spaces[name] = space
    return spaces


def suggest_params(trial: optuna.Trial, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Draw one value per parameter, in the space's order (a stable order keeps seeded runs reproducible)."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "int":
            step = int(spec.step) if spec.step is not None else 1
            params[name] = trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
        elif spec.type == "float":
            params[name] = trial.suggest_float(
                name, float(spec.low), float(spec.high), step=spec.step, log=spec.log
            )
        else:
            params[name] = trial.suggest_categorical(name, list(spec.choices or ()))
    return params


# --- device -----------------------------------------------------------------------------------------------
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


# --- estimators with a fixed class set --------------------------------------------------------------------
def _as_proba(raw: np.ndarray) -> np.ndarray:
    """Binary objectives return P(class 1) only: widen to the two columns predict_proba promises."""
    raw = np.asarray(raw, dtype="float64")
    return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw


class LGBMFixedClassifier(ClassifierMixin, lgb.LGBMModel):
    """LightGBM over the classes 0..K-1 (objective binary or multiclass with num_class=K).
    LGBMClassifier infers its classes from y, so a label missing from a training fold would drop a column
    and an eval row of that label could not even be encoded."""

    def predict_proba(self, X: Any, **kwargs: Any) -> np.ndarray:
        return _as_proba(lgb.LGBMModel.predict(self, X, **kwargs))

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        return np.argmax(self.predict_proba(X, **kwargs), axis=1)

    @property
    def classes_(self) -> np.ndarray:
        return np.arange(int(self.get_params().get("num_class", 2)))


class XGBFixedClassifier(ClassifierMixin, xgb.XGBModel):
    """XGBoost over the classes 0..K-1 (XGBClassifier rejects a y that does not hold every class)."""

    def predict_proba(self, X: Any, **kwargs: Any) -> np.ndarray:
        return _as_proba(xgb.XGBModel.predict(self, X, **kwargs))

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        return np.argmax(self.predict_proba(X, **kwargs), axis=1)

    @property
    def classes_(self) -> np.ndarray:
        return np.arange(int(self.get_params().get("num_class") or 2))


class CatBoostFixedClassifier(cb.CatBoostClassifier):
    """CatBoostClassifier with class_names=0..K-1 whose predict returns a flat label vector (CatBoost's
    multiclass predict returns an (n, 1) column)."""

    def predict(self, data: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        return np.argmax(self.predict_proba(data), axis=1)


class FixedClassesClassifier(ClassifierMixin, BaseEstimator):
    """Wraps a scikit-learn classifier so that predict_proba has n_classes columns in class order, those
    of classes absent from the training rows being 0 (for estimators, like forests, that cannot be told
    the class set)."""

    def __init__(self, estimator: Any, n_classes: int) -> None:
        self.estimator = estimator
        self.n_classes = n_classes

    def fit(self, X: Any, y: Any, sample_weight: np.ndarray | None = None) -> FixedClassesClassifier:
        self.estimator_ = clone(self.estimator).fit(X, y, sample_weight=sample_weight)
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        present = self.estimator_.predict_proba(X)
        proba = np.zeros((present.shape[0], self.n_classes), dtype="float64")
        proba[:, np.asarray(self.estimator_.classes_, dtype="int64")] = present
        return proba

    def predict(self, X: Any) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.estimator_.feature_importances_


# --- families ---------------------------------------------------------------------------------------------
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
    # prunes a lagging trial only once it has stalled for half of it (components.tuning.StallMedianPruner).
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


class LightGBMFamily(Family):
    name = "lightgbm"
    iterations_param = "n_estimators"
    patience_param = "early_stopping_rounds"
    defaults: ClassVar[Mapping[str, Any]] = {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "reg_alpha": 0.0,
        "early_stopping_rounds": 30,
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
            "n_jobs": MAX_THREADS,
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


class MLPFamily(Family):
    name = "mlp"
    needs_scaling = True
    iterations_param = "max_epochs"
    patience_param = "patience"
    # Integer genre_index / artist_bucket columns, which the network embeds (trees do better without).
    extra_feature_groups = ("ids",)
    defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 128,
        "n_layers": 2,
        "dropout": 0.1,
        "learning_rate": 1e-3,
        "weight_decay": 0.0,
        "batch_size": 256,
        "max_epochs": 30,
        "patience": 5,
        "embedding_dim": 8,
        "embed_artist": False,
    }

    def build(
        self, task: TaskKind, params: Mapping[str, Any], seed: int, device: str, n_classes: int | None = None
    ) -> Any:
        from components.torch_mlp import TorchMLPClassifier, TorchMLPRegressor  # torch loads only when used

        p = self.resolve_params(params)
        k = self.n_outputs(task, n_classes)
        common = {
            **p,
            "seed": seed,
            "device": "cuda" if device == "cuda" else "cpu",
            "n_threads": MAX_THREADS,
        }
        if task == "regression":
            return TorchMLPRegressor(**common)
        return TorchMLPClassifier(n_classes=k, **common)

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
        callback = None
        if trial is not None and eval_set is not None:
            import optuna

            def callback(epoch: int, val_loss: float) -> None:
                trial.report(val_loss, step=epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        return estimator.fit(X, y, sample_weight=sample_weight, eval_set=eval_set, epoch_callback=callback)

    def kept_iterations(self, estimator: Any) -> int | None:
        best = int(getattr(estimator, "best_epoch_", -1))  # 0-based; -1 without an eval set
        return best + 1 if best >= 0 else None


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (LightGBMFamily(), XGBoostFamily(), CatBoostFamily(), RandomForestFamily(), MLPFamily())
}
