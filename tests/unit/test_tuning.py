"""Optuna tuning on grouped CV of training rows: pruning, resuming, failures, determinism, the final fit."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from components import families as families_module
from components.families import FAMILIES, LightGBMFamily, ParamSpec, TaskKind
from components.features import TrackFeaturizer
from components.schema import model_inputs
from components.tracks import primary_artist
from components.tuning import (
    ABANDONED_ATTR,
    FOLD_STEP_OFFSET,
    OWNER_ATTR,
    STALL_STEPS_ATTR,
    NoCompletedTrialError,
    StallMedianPruner,
    TrialRecord,
    fail_abandoned_trials,
    fit_final,
    grouped_folds,
    plan_refit,
    score_output,
    stopped_early,
    tune,
)
from tests.builders import GENRES, synthetic_tracks

# A small, cheap LightGBM space; the learning rate spans "does nothing" (1e-4) to useful, so that the
# median pruner has clearly bad trials to cut.
LGB_SPACE: dict[str, ParamSpec] = {
    "n_estimators": ParamSpec("int", low=10, high=40),
    "learning_rate": ParamSpec("float", low=1e-4, high=0.3, log=True),
    "num_leaves": ParamSpec("int", low=4, high=16),
    "min_child_samples": ParamSpec.fixed(10),
    "early_stopping_rounds": ParamSpec.fixed(5),
}
MLP_SPACE: dict[str, ParamSpec] = {
    "hidden_size": ParamSpec("categorical", choices=(8, 16)),
    "learning_rate": ParamSpec("float", low=1e-3, high=1e-2, log=True),
    "max_epochs": ParamSpec.fixed(4),
    "patience": ParamSpec.fixed(2),
}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # The thread count is not under test: one thread keeps these tiny fits quick on a busy 2-core machine.
    monkeypatch.setattr(families_module, "MAX_THREADS", 1)


@pytest.fixture(scope="module")
def tracks() -> pd.DataFrame:
    return synthetic_tracks(n=360, seed=4)


def make_featurizer(needs_scaling: bool) -> Any:
    """As the pipeline builds it: the MLP (the family that needs scaling) also gets its embedding ids."""
    groups = ("audio", "engineered", "genre", "artist_frequency")
    return TrackFeaturizer(
        groups=groups + (FAMILIES["mlp"].extra_feature_groups if needs_scaling else ()),
        seed=0,
        scale=needs_scaling,
    )


def make_sklearn_scaled_featurizer(needs_scaling: bool) -> Any:
    """Any transformer works: here scaling comes from a separate scikit-learn step."""
    featurizer = TrackFeaturizer(groups=("audio", "engineered", "genre", "artist_frequency"), seed=0)
    if not needs_scaling:
        return featurizer
    return Pipeline([("features", featurizer), ("scale", StandardScaler().set_output(transform="pandas"))])


def run(
    tracks: pd.DataFrame,
    storage: str,
    *,
    family: Any = None,
    space: dict[str, ParamSpec] | None = None,
    task: TaskKind = "regression",
    n_trials: int = 4,
    study_name: str = "study",
    timeout_s: float | None = None,
    **kwargs: Any,
) -> Any:
    X = model_inputs(tracks)
    if task == "regression":
        y, n_classes = tracks["popularity"].to_numpy(), None
    else:
        y, n_classes = tracks["track_genre"].map({g: i for i, g in enumerate(GENRES)}).to_numpy(), len(GENRES)
    if task == "multiclass":
        X = X.drop(columns="track_genre").assign(track_genre="")  # the label is no input of its own model
    return tune(
        family or FAMILIES["lightgbm"],
        space or LGB_SPACE,
        task,
        X,
        y,
        primary_artist(tracks["artists"]).to_numpy(),
        make_featurizer,
        n_trials=n_trials,
        timeout_s=timeout_s,
        cv_folds=3,
        seed=7,
        device="cpu",
        storage=storage,
        study_name=study_name,
        n_classes=n_classes,
        **kwargs,
    )


def sqlite(tmp_path: Path, name: str = "studies.db") -> str:
    return f"sqlite:///{tmp_path / 'optuna' / name}"  # the folder does not exist yet: tune creates it


def test_pruning_cuts_bad_lightgbm_trials(tracks: pd.DataFrame, tmp_path: Path) -> None:
    result = run(tracks, sqlite(tmp_path), n_trials=12)
    assert result.n_trials == 12 and result.n_failed == 0
    assert result.n_pruned > 0, [(t.state, t.params["learning_rate"]) for t in result.trials]
    assert result.direction == "minimize" and result.metric == "rmse"
    complete = [t.value for t in result.trials if t.state == "COMPLETE"]
    assert result.best_value == min(complete)
    assert result.best_params["early_stopping_rounds"] == 5  # fixed values are part of best_params
    # Iteration-level reports (first fold) and fold-level reports are both in the study.
    study = optuna.load_study(study_name="study", storage=sqlite(tmp_path))
    steps = set().union(*(t.intermediate_values for t in study.trials))
    assert {0, FOLD_STEP_OFFSET, FOLD_STEP_OFFSET + 2} <= steps


def _study_with_completed(curves: list[list[float]], fold_scores: list[float]) -> optuna.Study:
    """A study whose completed trials reported `curves` (iteration steps) and one score on fold 0."""
    study = optuna.create_study(direction="minimize")
    for curve, fold_score in zip(curves, fold_scores, strict=True):
        values = {step: value for step, value in enumerate(curve)}
        values[FOLD_STEP_OFFSET] = fold_score
        study.add_trial(
            optuna.trial.create_trial(
                params={}, distributions={}, value=fold_score, intermediate_values=values
            )
        )
    return study


def _running(values: dict[int, float], stall_steps: int | None = None) -> optuna.trial.FrozenTrial:
    attrs = {} if stall_steps is None else {STALL_STEPS_ATTR: stall_steps}
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING,
        params={},
        distributions={},
        intermediate_values=values,
        user_attrs=attrs,
    )


def test_stall_pruner_spares_a_slow_learner_and_prunes_it_once_stalled() -> None:
    # Two fast learners, converged near 1.0 by step 10; a slow one still improving at step 30.
    fast = [2.0 * 0.8**step + 1.0 for step in range(40)]
    study = _study_with_completed([fast, [v + 0.01 for v in fast]], [1.0, 1.01])
    pruner = StallMedianPruner(n_startup_trials=2, n_warmup_steps=5)
    improving = {step: 3.0 - 0.05 * step for step in range(31)}  # behind the median, still improving
    assert not pruner.prune(study, _running(improving, stall_steps=5))
    # The same trial flat for its last 5 steps and still behind: pruned.
    stalled = {**improving, **{step: improving[30] for step in range(31, 36)}}
    assert pruner.prune(study, _running(stalled, stall_steps=5))
    # A longer stall window (a longer early-stopping patience) gives it more time.
    assert not pruner.prune(study, _running(stalled, stall_steps=10))
    # A stalled trial ahead of the median is never pruned.
    ahead = {step: 0.5 for step in range(36)}
    assert not pruner.prune(study, _running(ahead, stall_steps=5))


def test_stall_pruner_judges_a_fold_score_against_the_same_fold_only() -> None:
    study = _study_with_completed([[2.0, 1.0], [2.0, 1.1]], [1.0, 1.1])
    pruner = StallMedianPruner(n_startup_trials=2, n_warmup_steps=0)
    # A good first fold does not shield a worse-than-median score on the fold being judged.
    better_curve = {0: 0.2, 1: 0.1}
    assert pruner.prune(study, _running({**better_curve, FOLD_STEP_OFFSET: 1.2}))
    assert not pruner.prune(study, _running({**better_curve, FOLD_STEP_OFFSET: 1.0}))
    # A fold no completed trial reported on: nothing to compare with, no pruning.
    assert not pruner.prune(study, _running({FOLD_STEP_OFFSET + 1: 9.0}))
    # Before n_startup_trials have completed, nothing is pruned.
    assert not StallMedianPruner(n_startup_trials=3).prune(study, _running({FOLD_STEP_OFFSET: 9.0}))


class PruneAfterLastFold(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.last_step == FOLD_STEP_OFFSET + 2  # run() uses 3 folds


def test_fold_reports_are_running_means_and_the_last_fold_is_never_pruned(
    tracks: pd.DataFrame, tmp_path: Path
) -> None:
    result = run(tracks, sqlite(tmp_path), n_trials=2, pruner=PruneAfterLastFold())
    assert result.n_complete == 2 and result.n_pruned == 0  # all the work was done: nothing to save
    for trial in optuna.load_study(study_name="study", storage=sqlite(tmp_path)).trials:
        folds = trial.user_attrs["fold_scores"]
        reported = [trial.intermediate_values[FOLD_STEP_OFFSET + k] for k in range(3)]
        assert reported == pytest.approx([np.mean(folds[: k + 1]) for k in range(3)])
        assert trial.value == pytest.approx(reported[-1])


def test_tuning_sets_the_stall_window_from_the_family_patience(tracks: pd.DataFrame, tmp_path: Path) -> None:
    run(tracks, sqlite(tmp_path), n_trials=1)
    study = optuna.load_study(study_name="study", storage=sqlite(tmp_path))
    assert study.trials[0].user_attrs[STALL_STEPS_ATTR] == 2  # early_stopping_rounds 5 // 2


def test_resume_runs_only_the_missing_trials(tracks: pd.DataFrame, tmp_path: Path) -> None:
    seen: list[TrialRecord] = []
    first = run(tracks, sqlite(tmp_path), n_trials=2, on_trial=seen.append)
    assert [r.number for r in seen] == [0, 1]
    second = run(tracks, sqlite(tmp_path), n_trials=4, on_trial=seen.append)
    assert [r.number for r in seen] == [0, 1, 2, 3]  # trials 0 and 1 were not run again
    assert second.n_trials == 4 and len(second.trials) == 4
    assert second.trials[:2] == first.trials
    study = optuna.load_study(study_name="study", storage=sqlite(tmp_path))
    assert len(study.trials) == 4
    # Asking for no more trials than the study holds runs nothing.
    third = run(tracks, sqlite(tmp_path), n_trials=3, on_trial=seen.append)
    assert len(seen) == 4 and third.n_trials == 4
    # The same study name cannot be resumed for another family or task.
    with pytest.raises(ValueError, match="was created for"):
        run(tracks, sqlite(tmp_path), family=FAMILIES["mlp"], space=MLP_SPACE, n_trials=5)


def test_a_study_cut_short_by_its_wall_clock_limit_says_so(tracks: pd.DataFrame, tmp_path: Path) -> None:
    """The timeout is a safety net: a study it stops before n_trials is marked, one that ran its trials
    (or had nothing left to run on resume) is not."""
    cut = run(tracks, sqlite(tmp_path), n_trials=3, timeout_s=0.05)  # checked before each trial
    assert cut.n_trials == 1 and cut.stopped_by_timeout  # a trial of 3 folds takes longer than that
    full = run(tracks, sqlite(tmp_path, "other.db"), n_trials=2, timeout_s=600)
    assert full.n_trials == 2 and not full.stopped_by_timeout
    resumed = run(tracks, sqlite(tmp_path, "other.db"), n_trials=2, timeout_s=1e-6)
    assert not resumed.stopped_by_timeout


def test_the_best_trial_keeps_its_out_of_fold_outputs(tracks: pd.DataFrame, tmp_path: Path) -> None:
    """They score as the best trial's folds did; a resumed study whose best trial ran before has none."""
    result = run(tracks, sqlite(tmp_path), n_trials=3, pruner=optuna.pruners.NopPruner())
    assert result.best_oof is not None and result.best_oof.shape == (len(tracks),)
    assert not np.isnan(result.best_oof).any()  # every row is in exactly one validation fold
    best = optuna.load_study(study_name="study", storage=sqlite(tmp_path)).best_trial
    y = tracks["popularity"].to_numpy()
    groups = primary_artist(tracks["artists"]).to_numpy()
    rescored = [score_output("regression", result.best_oof[v], y[v]) for _, v in grouped_folds(groups, 3, 7)]
    assert rescored == pytest.approx(best.user_attrs["fold_scores"])
    # Resumed with one more trial, which does not win: the best ran in the first process.
    resumed = run(tracks, sqlite(tmp_path), n_trials=4, pruner=optuna.pruners.NopPruner())
    assert resumed.n_trials == 4 and resumed.best_value == result.best_value
    assert resumed.best_oof is None


class FlakyLightGBM(LightGBMFamily):
    """LightGBM whose fit raises for one value of an extra parameter."""

    name = "flaky"
    defaults: ClassVar[dict[str, Any]] = {**LightGBMFamily.defaults, "explode": False}

    def build(self, task: Any, params: Any, seed: int, device: str, n_classes: int | None = None) -> Any:
        params = dict(params)
        estimator = super().build(
            task, {k: v for k, v in params.items() if k != "explode"}, seed, device, n_classes
        )
        estimator.explode_ = params.get("explode", False)
        return estimator

    def fit(self, estimator: Any, X: Any, y: Any, **kwargs: Any) -> Any:
        if estimator.explode_:
            raise RuntimeError("boom")
        return super().fit(estimator, X, y, **kwargs)


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tracks: pd.DataFrame, tmp_path: Path) -> None:
    space = {**LGB_SPACE, "explode": ParamSpec("categorical", choices=(False, True))}
    seen: list[TrialRecord] = []
    result = run(
        tracks, sqlite(tmp_path), family=FlakyLightGBM(), space=space, n_trials=6, on_trial=seen.append
    )
    assert result.n_trials == 6 and len(seen) == 6
    assert result.n_failed > 0 and result.n_complete > 0
    assert all(t.state == "FAIL" for t in result.trials if t.params["explode"])
    assert all(t.value is None for t in result.trials if t.state == "FAIL")
    assert result.best_params["explode"] is False


def test_no_completed_trial_is_a_clear_error(tracks: pd.DataFrame, tmp_path: Path) -> None:
    space = {**LGB_SPACE, "explode": ParamSpec.fixed(True)}
    with pytest.raises(NoCompletedTrialError, match="2 failed"):
        run(tracks, sqlite(tmp_path), family=FlakyLightGBM(), space=space, n_trials=2)


def test_same_seed_same_study(tracks: pd.DataFrame, tmp_path: Path) -> None:
    first = run(tracks, sqlite(tmp_path, "a.db"), n_trials=4)
    second = run(tracks, sqlite(tmp_path, "b.db"), n_trials=4)
    assert first.best_params == second.best_params
    assert [(t.params, t.value, t.state) for t in first.trials] == [
        (t.params, t.value, t.state) for t in second.trials
    ]


class PruneAfterFirstTrial(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number > 0


def test_mlp_prunes_per_epoch(tracks: pd.DataFrame, tmp_path: Path) -> None:
    result = run(
        tracks,
        sqlite(tmp_path),
        family=FAMILIES["mlp"],
        space=MLP_SPACE,
        n_trials=2,
        pruner=PruneAfterFirstTrial(),
    )
    assert [t.state for t in result.trials] == ["COMPLETE", "PRUNED"]
    study = optuna.load_study(study_name="study", storage=sqlite(tmp_path))
    # The pruned trial stopped in the epoch callback of the first fold: one report, at epoch 0.
    assert list(study.trials[1].intermediate_values) == [0]
    # The completed trial reported its epochs (first fold) and then each fold's score.
    assert {0, FOLD_STEP_OFFSET, FOLD_STEP_OFFSET + 1, FOLD_STEP_OFFSET + 2} <= set(
        study.trials[0].intermediate_values
    )


def test_multiclass_tuning_and_final_fit(tracks: pd.DataFrame, tmp_path: Path) -> None:
    result = run(tracks, sqlite(tmp_path), task="multiclass", n_trials=2)
    assert result.metric == "log_loss" and result.n_complete >= 1
    assert result.best_value < np.log(len(GENRES)) * 3  # a finite, sane log loss
    X = model_inputs(tracks).assign(track_genre="")
    y = tracks["track_genre"].map({g: i for i, g in enumerate(GENRES)}).to_numpy()
    keep = y != 3  # one class absent from the final training rows still gets its column
    model = fit_final(
        FAMILIES["lightgbm"],
        "multiclass",
        result.best_params,
        X[keep],
        y[keep],
        make_featurizer,
        seed=7,
        device="cpu",
        n_classes=len(GENRES),
    )
    assert [name for name, _ in model.steps] == ["features", "model"]
    proba = model.predict_proba(X.head(20))
    assert proba.shape == (20, len(GENRES)) and np.allclose(proba.sum(axis=1), 1.0)
    assert model.predict(X.head(20)).shape == (20,)


def test_fit_final_regression_with_scaling_predicts_raw_rows(tracks: pd.DataFrame) -> None:
    X = model_inputs(tracks)
    y = tracks["popularity"].to_numpy()
    params = {"max_epochs": 3, "hidden_size": 16}
    for factory in (make_featurizer, make_sklearn_scaled_featurizer):
        model = fit_final(FAMILIES["mlp"], "regression", params, X, y, factory, seed=1, device="cpu")
        # The scaling travels inside the features step, so raw rows go straight in.
        prediction = model.predict(X.head(10))
        assert prediction.shape == (10,) and np.isfinite(prediction).all()
    network = fit_final(FAMILIES["mlp"], "regression", params, X, y, make_featurizer, seed=1, device="cpu")
    assert network.named_steps["model"].embedding_columns_ == ["genre_index"]


# Ceilings far above what ~300 noisy rows support, with fast learning: early stopping must cut each short.
ITERATING_FAMILIES: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_estimators": 300, "learning_rate": 0.3, "early_stopping_rounds": 5},
    "xgboost": {"n_estimators": 300, "learning_rate": 0.3, "early_stopping_rounds": 5},
    "catboost": {"iterations": 300, "learning_rate": 0.3, "early_stopping_rounds": 5},
    "mlp": {"max_epochs": 60, "patience": 2, "learning_rate": 0.01, "hidden_size": 16},
}


@pytest.mark.parametrize("name", sorted(ITERATING_FAMILIES))
def test_final_fit_runs_the_early_stopped_count_not_the_tuned_ceiling(
    tracks: pd.DataFrame, name: str
) -> None:
    family = FAMILIES[name]
    params = ITERATING_FAMILIES[name]
    key = family.iterations_param
    X, y = model_inputs(tracks), tracks["popularity"].to_numpy()
    groups = primary_artist(tracks["artists"]).to_numpy()
    plan_once = functools.partial(
        plan_refit, family, "regression", params, X, y, groups, make_featurizer, seed=3, device="cpu"
    )
    plan = plan_once(validation_share=0.2)
    assert plan.inner_rows is not None and plan.validation_rows is not None
    assert plan.inner_rows + plan.validation_rows == len(y)
    assert 1 <= plan.kept_on_inner < params[key]  # early stopping cut the inner fit short
    assert plan.iterations == round(plan.kept_on_inner * len(y) / plan.inner_rows)
    assert plan.params == {**params, key: plan.iterations}  # only the count changes
    again = plan_once(validation_share=0.2)
    assert again == plan  # seeded: the same split and the same count
    model = fit_final(family, "regression", plan.params, X, y, make_featurizer, seed=3, device="cpu")
    assert np.isfinite(model.predict(X.head(5))).all()
    # Another row count (the other protocol, a CV fold) scales the kept count without a second fit.
    assert plan.for_rows(plan.inner_rows) == {**params, key: plan.kept_on_inner}
    assert plan.for_rows(2 * plan.inner_rows)[key] == 2 * plan.kept_on_inner


def test_tuning_records_the_iterations_each_fold_kept(tracks: pd.DataFrame, tmp_path: Path) -> None:
    result = run(tracks, sqlite(tmp_path), n_trials=3, pruner=optuna.pruners.NopPruner())
    kept = result.best_kept_iterations
    assert kept is not None and len(kept) == 3  # one count per CV fold of the best trial
    assert all(1 <= k <= result.best_params["n_estimators"] for k in kept)
    forest = run(
        tracks,
        sqlite(tmp_path, "forest.db"),
        family=FAMILIES["random_forest"],
        space={"n_estimators": ParamSpec.fixed(10), "max_depth": ParamSpec.fixed(4)},
        n_trials=1,
    )
    assert forest.best_kept_iterations is None  # nothing iterates, nothing to record
    # A refit plans its count only when early stopping cut some fold short of the ceiling.
    assert stopped_early([12, 40, 40], 40) and not stopped_early([40, 40, 40], 40)
    assert not stopped_early(None, 40) and not stopped_early([12], None)


def test_refit_keeps_the_params_of_families_that_do_not_iterate(tracks: pd.DataFrame) -> None:
    X, y = model_inputs(tracks), tracks["popularity"].to_numpy()
    groups = primary_artist(tracks["artists"]).to_numpy()
    forest = {"n_estimators": 20, "max_depth": 4}
    plan = plan_refit(
        FAMILIES["random_forest"], "regression", forest, X, y, groups, make_featurizer, 3, "cpu", 0.1
    )
    assert plan.params == forest and plan.iterations is None and plan.inner_rows is None
    boosted = ITERATING_FAMILIES["lightgbm"]
    off = plan_refit(FAMILIES["lightgbm"], "regression", boosted, X, y, groups, make_featurizer, 3, "cpu", 0)
    assert off.params == boosted and off.iterations is None  # share 0: the tuned ceiling, unstopped


def test_folds_never_share_a_group() -> None:
    groups = np.array([f"artist{i % 23}" for i in range(200)], dtype=object)
    groups[:5] = None  # rows without a group form one group of their own
    folds = grouped_folds(groups, cv_folds=4, seed=1)
    assert len(folds) == 4
    assert sorted(np.concatenate([valid for _, valid in folds]).tolist()) == list(range(200))
    for train, valid in folds:
        assert not set(groups[train]) & set(groups[valid])
    assert all(
        np.array_equal(a[1], b[1]) for a, b in zip(folds, grouped_folds(groups, 4, seed=1), strict=True)
    )
    with pytest.raises(ValueError, match="number of groups"):
        grouped_folds(np.array(["a", "a", "b", "c"]), cv_folds=4, seed=1)


def test_only_trials_of_an_owner_that_is_gone_are_failed(tmp_path: Path) -> None:
    storage = optuna.storages.get_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    for owner in ("dead", "alive"):
        study.ask().set_user_attr(OWNER_ATTR, {"who": owner})
    study.ask()  # a RUNNING trial that records no owner: nobody can say it was abandoned

    failed = fail_abandoned_trials(study, storage, lambda owner: owner["who"] == "dead", {"who": "me"})

    states = [t.state for t in study.get_trials()]
    assert failed == [0]
    assert states == [
        optuna.trial.TrialState.FAIL,
        optuna.trial.TrialState.RUNNING,
        optuna.trial.TrialState.RUNNING,
    ]
    assert study.trials[0].user_attrs[ABANDONED_ATTR]["marked_by"] == {"who": "me"}
