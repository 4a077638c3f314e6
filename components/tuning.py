"""Optuna tuning of one (task, model family) by grouped cross-validation on the training rows only.

The objective of a trial is the mean validation score over GroupKFold folds (a group, e.g. a primary
artist, never spans two folds, so the score is the one of unseen artists like the holdout's). Per fold the
featurizer is fitted on the fold's training part only. Scores, all minimised:

- regression: RMSE;
- binary: log loss (a proper score, it rates the probabilities and not only their ranking, and every
  library can early-stop and prune on it per iteration, where ROC-AUC would flip the direction);
- multiclass: multi-class log loss over all K classes.

Pruning (StallMedianPruner) acts at two levels: on the first fold the family reports every boosting
iteration or epoch; then after each fold the mean score of the folds so far is reported at step
FOLD_STEP_OFFSET + fold index (no pruning after the last fold: the work is done). The offset keeps the two
kinds of steps apart, so a fold-level value is only ever compared with other trials' means over the same
folds. At the iteration level a trial behind the median is pruned only once it has stopped improving: a
low learning rate is behind at every early step, and plain median pruning cut those trials whatever they
would have reached.

Studies live in the given Optuna storage: re-running `tune` with the same study name resumes it and only
runs the trials still missing up to `n_trials`.

The study and the refit plan share the folds and the early-stopping conventions (kept iterations per fold,
patience) that tie tuning to the final fit, so they stay together; how a study treats its trials (the
pruner, trials a killed process left RUNNING) is components/trials.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState
from sklearn.metrics import log_loss, mean_squared_error
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline

from components.families import Family, ParamSpec, suggest_params
from components.tasks import TaskKind
from components.trials import (
    ABANDONED_ATTR,
    FOLD_STEP_OFFSET,
    OWNER_ATTR,
    STALL_STEPS_ATTR,
    StallMedianPruner,
    fail_abandoned_trials,
)

DIRECTION = "minimize"  # every metric below is a loss
METRIC_NAMES: dict[str, str] = {"regression": "rmse", "binary": "log_loss", "multiclass": "log_loss"}
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class TrialRecord:
    number: int
    params: dict[str, Any]
    value: float | None
    state: str  # COMPLETE, PRUNED or FAIL
    duration_s: float


@dataclass(frozen=True)
class TuningResult:
    family: str
    task: TaskKind
    best_params: dict[str, Any]
    best_value: float
    direction: str
    n_trials: int  # finished trials in the study (resumed ones included)
    n_complete: int
    n_pruned: int
    n_failed: int
    trials: list[TrialRecord]
    study_name: str
    metric: str = "rmse"
    # Iterations (or epochs) early stopping kept on each CV fold of the best trial; None: not iterative.
    best_kept_iterations: list[int] | None = None
    # The best trial's out-of-fold outputs on the tuning rows, in their order (predictions, or class
    # probabilities): what a blend of finalists is scored on without refitting them. None when the best
    # trial ran in an earlier process (a resumed study).
    best_oof: np.ndarray | None = field(default=None, compare=False, repr=False)
    # The study's wall-clock limit (a safety net) stopped it before its trial count: its result depends on
    # how fast the machine was, so it is reported wherever the result is.
    stopped_by_timeout: bool = False
    # Trials a killed process left RUNNING that this call marked FAIL (they count in n_failed).
    abandoned_trials: list[int] = field(default_factory=list)


class NoCompletedTrialError(RuntimeError):
    """Every trial of the study was pruned or failed: there is no best parameter set."""


def predict_output(task: TaskKind, estimator: Any, X: Any) -> np.ndarray:
    """What the tuning metric scores: predictions for regression, class probabilities otherwise."""
    if task == "regression":
        return np.asarray(estimator.predict(X), dtype="float64")
    return np.asarray(estimator.predict_proba(X), dtype="float64")


def score_output(task: TaskKind, output: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> float:
    """The tuning metric of outputs from `predict_output` (or a mean of several models' outputs)."""
    if task == "regression":
        return float(math.sqrt(mean_squared_error(y, output)))
    k = 2 if task == "binary" else int(n_classes or 0)
    proba = np.array(output, dtype="float64")  # a copy: clipped and renormalised below
    if proba.shape[1] != k:
        raise ValueError(f"predict_proba returned {proba.shape[1]} columns for {k} classes")
    # Floating-point sums drift from 1 (float32 softmax, widened columns): renormalise before scoring.
    proba = np.clip(proba, 1e-15, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    return float(log_loss(np.asarray(y).astype("int64"), proba, labels=list(range(k))))


def grouped_folds(groups: np.ndarray, cv_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, valid) row positions of `cv_folds` folds; no group is on both sides of any fold. Seeded
    shuffle of the groups, so the folds are reproducible and not tied to the data's order."""
    # Integer group codes (a missing group is one group of its own): GroupKFold's shuffle is very slow on
    # object (string) groups, about 20 s for 70k rows.
    codes = pd.factorize(np.asarray(groups), use_na_sentinel=False)[0]
    n_groups = len(np.unique(codes))
    if cv_folds < 2 or n_groups < cv_folds:
        raise ValueError(f"cv_folds={cv_folds} needs 2 <= cv_folds <= number of groups ({n_groups})")
    splitter = GroupKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(codes), 1)), groups=codes))


def _record(trial: FrozenTrial) -> TrialRecord:
    duration = trial.duration
    return TrialRecord(
        number=trial.number,
        params=dict(trial.params),
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        state=trial.state.name,
        duration_s=duration.total_seconds() if duration is not None else 0.0,
    )


def _ensure_sqlite_parent(storage: str) -> None:
    """SQLite creates the database file but not its folder (e.g. optuna/ in a fresh checkout)."""
    prefix = "sqlite:///"
    if storage.startswith(prefix) and storage[len(prefix) :] not in ("", ":memory:"):
        Path(storage[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)


def tune(
    family: Family,
    space: Mapping[str, ParamSpec],
    task: TaskKind,
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    make_featurizer: Callable[[bool], Any],
    *,
    n_trials: int,
    timeout_s: float | None,
    cv_folds: int,
    seed: int,
    device: str,
    storage: str,
    study_name: str,
    n_classes: int | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    trial_owner: Mapping[str, str] | None = None,
    owner_gone: Callable[[Mapping[str, str]], bool] | None = None,
) -> TuningResult:
    """Tune `family` for `task` on the training rows (X, y), folds grouped by `groups`.

    `make_featurizer(needs_scaling)` returns a fresh unfitted transformer (fit_transform(X, y) /
    transform(X)). A trial that raises anything but TrialPruned is recorded as FAIL and the study goes on.
    Same inputs and seed on a fresh study give the same trials; a resumed study reseeds its sampler, so
    its later trials differ from those of one uninterrupted run. `pruner` overrides the default
    StallMedianPruner.

    Each trial records `trial_owner` (who runs it) as its user attr OWNER_ATTR. A trial left RUNNING whose
    owner `owner_gone` says no longer exists (a killed process) is marked FAIL, with ABANDONED_ATTR saying
    why, before the study goes on; it does not count towards `n_trials`. Trials of a live owner are left
    alone.
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    if not (len(X) == len(y) == len(groups)):
        raise ValueError(f"X, y and groups differ in length: {len(X)}, {len(y)}, {len(groups)}")
    if task == "multiclass" and not n_classes:
        raise ValueError("multiclass tuning needs n_classes")
    X = X.reset_index(drop=True)
    folds = grouped_folds(groups, cv_folds, seed)
    # A fold's features do not depend on the trial's params: featurize each fold once, on first use.
    fold_cache: dict[int, tuple[Any, Any]] = {}
    best_oof: dict[str, Any] = {}  # the best completed trial of this process: number, value, outputs

    def fold_features(k: int) -> tuple[Any, Any]:
        if k not in fold_cache:
            train_idx, valid_idx = folds[k]
            featurizer = make_featurizer(family.needs_scaling)
            fold_cache[k] = (
                featurizer.fit_transform(X.iloc[train_idx], y[train_idx]),
                featurizer.transform(X.iloc[valid_idx]),
            )
        return fold_cache[k]

    def objective(trial: optuna.Trial) -> float:
        if trial_owner is not None:
            trial.set_user_attr(OWNER_ATTR, dict(trial_owner))
        params = suggest_params(trial, space)
        if family.patience_param is not None:
            patience = int(family.resolve_params(params)[family.patience_param])
            trial.set_user_attr(STALL_STEPS_ATTR, max(1, patience // 2))
        scores = []
        kept: list[int] = []
        oof: np.ndarray | None = None
        for k, (train_idx, valid_idx) in enumerate(folds):
            X_train, X_valid = fold_features(k)
            estimator = family.build(task, params, seed, device, n_classes)
            # Per-iteration pruning on the first fold only: later folds would report the same steps again.
            family.fit(
                estimator,
                X_train,
                y[train_idx],
                eval_set=(X_valid, y[valid_idx]),
                trial=trial if k == 0 else None,
            )
            output = predict_output(task, estimator, X_valid)
            if oof is None:
                oof = np.full((len(y), *output.shape[1:]), np.nan)
            oof[valid_idx] = output
            fold_score = score_output(task, output, y[valid_idx], n_classes)
            if not math.isfinite(fold_score):
                raise ValueError(f"non-finite validation score on fold {k}: {fold_score}")
            scores.append(fold_score)
            trial.set_user_attr("fold_scores", scores)
            fold_kept = family.kept_iterations(estimator)
            if fold_kept is not None:
                kept.append(fold_kept)
                trial.set_user_attr("kept_iterations", kept)
            # The running mean (the objective so far) is steadier than one fold's score. After the last
            # fold the work is done: the trial completes, and TPE learns from its full score.
            trial.report(float(np.mean(scores)), step=FOLD_STEP_OFFSET + k)
            if k < len(folds) - 1 and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {k}")
        value = float(np.mean(scores))
        if not best_oof or value < best_oof["value"]:
            best_oof.update(number=trial.number, value=value, output=oof)
        return value

    _ensure_sqlite_parent(storage)
    study_storage = optuna.storages.get_storage(storage)
    study = optuna.create_study(
        storage=study_storage,
        study_name=study_name,
        direction=DIRECTION,
        load_if_exists=True,
        # A few random trials, then TPE; seeded so that a run is reproducible.
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
        # Prune once two trials have completed; a lagging trial at the iteration level only once it has
        # stalled for half its early-stopping window (the rest of the window would rarely rescue it).
        pruner=pruner or StallMedianPruner(n_startup_trials=2, n_warmup_steps=10),
    )
    if study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ValueError(f"study {study_name!r} exists with direction {study.direction.name}, not minimize")
    # A study resumes only for what it was created for: mixing families or tasks would make it meaningless.
    identity = {"family": family.name, "task": task, "metric": METRIC_NAMES[task]}
    recorded = {key: study.user_attrs[key] for key in identity if key in study.user_attrs}
    if recorded and recorded != identity:
        raise ValueError(f"study {study_name!r} was created for {recorded}, not {identity}")
    for key, value in identity.items():
        study.set_user_attr(key, value)

    abandoned = fail_abandoned_trials(study, study_storage, owner_gone, trial_owner) if owner_gone else []
    done = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in _FINISHED and ABANDONED_ATTR not in t.user_attrs
    ]
    remaining = max(0, n_trials - len(done))
    stopped_by_timeout = False
    if remaining:
        callbacks = [lambda _study, frozen: on_trial(_record(frozen))] if on_trial is not None else None
        # catch=(Exception,): a failing trial is recorded as FAIL (Optuna logs why) and the study goes on.
        study.optimize(
            objective, n_trials=remaining, timeout=timeout_s, catch=(Exception,), callbacks=callbacks
        )
        # Optuna stops between trials once the timeout has passed; fewer finished trials than asked is that.
        finished = sum(t.state in _FINISHED for t in study.get_trials(deepcopy=False))
        stopped_by_timeout = finished - len(done) < remaining

    trials = [_record(t) for t in study.get_trials(deepcopy=False) if t.state in _FINISHED]
    counts = {state: sum(t.state == state.name for t in trials) for state in _FINISHED}
    if counts[TrialState.COMPLETE] == 0:
        raise NoCompletedTrialError(
            f"study {study_name!r}: no completed trial ({counts[TrialState.PRUNED]} pruned, "
            f"{counts[TrialState.FAIL]} failed)"
        )
    best = study.best_trial
    return TuningResult(
        family=family.name,
        task=task,
        best_params=dict(best.params),
        best_value=float(best.value),
        direction=DIRECTION,
        n_trials=len(trials),
        n_complete=counts[TrialState.COMPLETE],
        n_pruned=counts[TrialState.PRUNED],
        n_failed=counts[TrialState.FAIL],
        trials=trials,
        study_name=study_name,
        metric=METRIC_NAMES[task],
        best_kept_iterations=best.user_attrs.get("kept_iterations"),
        best_oof=best_oof["output"] if best_oof.get("number") == best.number else None,
        stopped_by_timeout=stopped_by_timeout,
        abandoned_trials=abandoned,
    )


@dataclass(frozen=True)
class RefitPlan:
    """The parameters of a final fit on all training rows, and how its iteration count was found."""

    params: dict[str, Any]
    iterations: int | None = None  # the count given to the final fit (None: the tuned params stand)
    kept_on_inner: int | None = None  # iterations early stopping kept on the inner split
    inner_rows: int | None = None  # rows the inner fit trained on
    validation_rows: int | None = None
    iterations_param: str | None = None

    def for_rows(self, n_rows: int) -> dict[str, Any]:
        """The params for a fit on `n_rows` rows of the same kind (the other protocol's training rows, about
        as many): the kept count scaled by the row ratio, without another early-stopping fit. Meant for
        ratios near 1; an MLP on far fewer rows needs more epochs, not fewer."""
        if self.kept_on_inner is None or self.inner_rows is None or self.iterations_param is None:
            return dict(self.params)
        return {
            **self.params,
            self.iterations_param: max(1, round(self.kept_on_inner * n_rows / self.inner_rows)),
        }


def plan_refit(
    family: Family,
    task: TaskKind,
    params: Mapping[str, Any],
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    make_featurizer: Callable[[bool], Any],
    seed: int,
    device: str,
    validation_share: float,
    n_classes: int | None = None,
    sample_weight: np.ndarray | None = None,
) -> RefitPlan:
    """How many iterations a final fit on all of (X, y) should run.

    A tuned iteration count is a ceiling that early stopping cut short on small CV folds: refitting all rows
    with it, unstopped, overfits (LightGBM popularity on the artist holdout: RMSE 17.30 at the tuned 300
    trees, 16.59 at the count found here). So the family is fitted once on the rows outside a grouped
    `validation_share` of them, early-stopping on that share with the tuned count as the ceiling; the final
    fit then runs the kept count scaled up by the row ratio (more rows take more iterations). Families that
    do not iterate, and `validation_share` 0, keep the tuned params.
    """
    key = family.iterations_param
    if key is None or validation_share <= 0:
        return RefitPlan(params=dict(params))
    y = np.asarray(y)
    n_splits = max(2, round(1 / validation_share))
    inner, valid = grouped_folds(np.asarray(groups), n_splits, seed)[0]
    X = X.reset_index(drop=True)
    featurizer = make_featurizer(family.needs_scaling)
    inner_X = featurizer.fit_transform(X.iloc[inner], y[inner])
    estimator = family.build(task, dict(params), seed, device, n_classes)
    family.fit(
        estimator,
        inner_X,
        y[inner],
        sample_weight=None if sample_weight is None else np.asarray(sample_weight)[inner],
        eval_set=(featurizer.transform(X.iloc[valid]), y[valid]),
    )
    kept = family.kept_iterations(estimator)
    if kept is None:  # nothing was stopped (e.g. no eval metric): the tuned ceiling stands
        return RefitPlan(params=dict(params), inner_rows=len(inner), validation_rows=len(valid))
    plan = RefitPlan(
        params=dict(params),
        kept_on_inner=kept,
        inner_rows=len(inner),
        validation_rows=len(valid),
        iterations_param=key,
    )
    planned = plan.for_rows(len(y))  # one scaling rule for this fit and for the other protocol's
    return replace(plan, params=planned, iterations=planned[key])


def stopped_early(kept_per_fold: Sequence[int] | None, ceiling: Any) -> bool:
    """Did early stopping cut any CV fold of the best trial short of the tuned ceiling? When every fold ran
    to the ceiling, an early-stopping fit would only run to it again: the refit can skip that fit."""
    if not kept_per_fold or ceiling is None:
        return False
    return any(int(k) < int(ceiling) for k in kept_per_fold)


def fit_final(
    family: Family,
    task: TaskKind,
    params: Mapping[str, Any],
    X: pd.DataFrame,
    y: np.ndarray,
    make_featurizer: Callable[[bool], Any],
    seed: int,
    device: str,
    n_classes: int | None = None,
    sample_weight: np.ndarray | None = None,
) -> Pipeline:
    """Featurizer + estimator fitted on all given rows (no eval set, so no early stopping or pruning),
    as one Pipeline that predicts from raw rows."""
    y = np.asarray(y)
    featurizer = make_featurizer(family.needs_scaling)
    features = featurizer.fit_transform(X.reset_index(drop=True), y)
    estimator = family.build(task, dict(params), seed, device, n_classes)
    family.fit(estimator, features, y, sample_weight=sample_weight)
    return Pipeline([("features", featurizer), ("model", estimator)])
